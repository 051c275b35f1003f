"""The FastAPI application on the HTTP listener: OTLP export paths and ``/metrics``.

The Langfuse-compatible REST API mounts here too, so one port serves everything.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Response

from collector.api import install_api
from collector.api.common import ApiContext
from collector.receivers.http import OtlpHttpHandler, add_otlp_routes
from collector.telemetry import Telemetry

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


def create_app(otlp: OtlpHttpHandler, telemetry: Telemetry, api: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Spanfuse",
        version=api.version,
        description="Langfuse-compatible public API over OpenTelemetry data stored as Parquet.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(CollapseSlashes)
    add_otlp_routes(app, otlp)
    install_api(app, api)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(telemetry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
