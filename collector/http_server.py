"""Run an ASGI app with uvicorn on a socket we bind ourselves (so port 0 works in tests)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn

from collector.config import split_endpoint


class HttpServer:
    """uvicorn in a background thread; :meth:`stop` lets in-flight requests finish."""

    def __init__(self, endpoint: str, app: Any) -> None:
        host, port = split_endpoint(endpoint)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on accepted sockets whose proto
        # says TCP, and without it every keep-alive response waited ~40 ms for a delayed ACK.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._endpoint = endpoint
        self._host = host
        self._requested_port = port
        self._app = app
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> None:
        """Listen; raises :class:`OSError` naming the endpoint if it cannot."""
        try:
            self._socket.bind((self._host, self._requested_port))
        except OSError as exc:
            raise OSError(exc.errno, f"HTTP endpoint {self._endpoint}: {exc.strerror}") from exc
        self._socket.listen(1024)
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()

        def run() -> None:
            async def serve() -> None:
                started.set()
                assert self._server is not None
                await self._server.serve(sockets=[self._socket])

            asyncio.run(serve())

        self._thread = threading.Thread(target=run, name="http", daemon=True)
        self._thread.start()
        started.wait()
        while not self._server.started and self._thread.is_alive():
            threading.Event().wait(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._socket.close()
