"""The HTTP listener: responses on kept-alive connections are not held back by Nagle's algorithm."""

from __future__ import annotations

import socket

import httpx

from collector.http_server import HttpServer


async def _app(scope, receive, send):  # the smallest ASGI app: a two-part response (headers, body)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_accepted_connections_have_tcp_nodelay():
    # Without TCP_NODELAY each keep-alive response's second segment waited for the client's
    # delayed ACK: ~40 ms per request on Linux loopback, on every REST and OTLP/HTTP call.
    server = HttpServer("127.0.0.1:0", _app)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
            for _ in range(3):
                assert client.get("/").text == "ok"
            connections = list(server._server.server_state.connections)
            assert connections
            for protocol in connections:
                sock = protocol.transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.stop()
