"""The FastAPI application on the HTTP listener: OTLP export paths and ``/metrics``.

The Langfuse-compatible REST API mounts here too, so one port serves everything.

Access: every route needs a project's credentials except ``GET /api/public/health`` (liveness)
and the API's own documentation (``/docs``, ``/openapi.json``), which describe the API and hold
no data, keys or configuration — the same schema Langfuse publishes. ``/metrics`` counts every
project's traffic, so it takes the credentials of any project (Prometheus ``basic_auth``).
Request bodies are limited on every route to the OTLP receiver's ``max_request_body_size``.
A read that fails on a damaged Parquet file (one copied in, or broken while running) sets the
file aside into ``quarantine/`` and answers 503 with ``Retry-After``: the retry reads the rest.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import duckdb
import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from collector.api import install_api
from collector.api.common import ApiContext, authenticated_project
from collector.receivers.http import ROUTES as OTLP_ROUTES
from collector.receivers.http import OtlpHttpHandler, add_otlp_routes
from collector.telemetry import Telemetry
from storage.parquet_writer import quarantine_named_in

log = logging.getLogger("spanfuse.api")

_SLASHES = re.compile(r"/{2,}")


class CollapseSlashes:
    """ASGI middleware: ``//api/public/...`` (a base URL ending in ``/``) routes like ``/api/public/...``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = dict(scope, path=_SLASHES.sub("/", scope["path"]))
            scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised inside the app's ``receive`` once a body passes the limit."""


class LimitBodySize:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 without being read whole.

    A declared ``Content-Length`` over the limit is refused before any byte is read; a chunked
    body is counted as it streams and refused as soon as it passes the limit. The OTLP export
    paths are left to their own handler, which enforces the same limit and answers in the
    request's encoding (a ``google.rpc.Status``), as the OTLP specification asks.
    """

    def __init__(self, app: Any, limit: int, exempt: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send, f"body of {int(value)} bytes exceeds the limit of {self.limit} bytes")
                return
        received = 0
        too_large = False
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, too_large
            if too_large:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if too_large and not started:
                return  # whatever the app answers to the aborted read, the answer is 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except Exception:
            if not too_large or started:
                raise
        if too_large and not started:
            await self._refuse(send, f"body exceeds the limit of {self.limit} bytes")

    @staticmethod
    async def _refuse(send: Any, message: str) -> None:
        body = orjson.dumps({"message": message, "error": "PayloadTooLarge"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(otlp: OtlpHttpHandler, telemetry: Telemetry, api: ApiContext) -> FastAPI:
    """The HTTP application: OTLP export paths, the REST API and ``/metrics``."""
    app = FastAPI(
        title="Spanfuse",
        version=api.version,
        description="Langfuse-compatible public API over OpenTelemetry data stored as Parquet.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(LimitBodySize, limit=otlp.max_body_bytes, exempt=frozenset(OTLP_ROUTES))
    app.add_middleware(CollapseSlashes)  # added last, so it runs first: the limit sees the collapsed path
    add_otlp_routes(app, otlp)
    install_api(app, api)

    data_dir = Path(api.config.data_dir)

    @app.exception_handler(duckdb.Error)
    async def storage_error(request: Request, exc: duckdb.Error) -> JSONResponse:
        moved = quarantine_named_in(data_dir, str(exc))
        if moved:
            return JSONResponse(
                {"message": f"{len(moved)} damaged data file(s) were set aside; retry", "error": "DamagedFile"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        log.error("query failed path=%s", request.url.path, exc_info=exc)
        return JSONResponse({"message": "Internal Server Error", "error": "InternalError"}, status_code=500)

    app.state.telemetry = telemetry
    app.add_api_route("/metrics", metrics, include_in_schema=False, dependencies=[Depends(authenticated_project)])
    return app


def metrics(request: Request) -> Response:
    """Prometheus text. Module-level, as every route: see ``collector.receivers.http._ENDPOINTS``."""
    telemetry: Telemetry = request.app.state.telemetry
    return Response(telemetry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
