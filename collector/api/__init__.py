"""Langfuse's public REST API (``/api/public/...``) over the Parquet tables, one module per resource."""

from __future__ import annotations

from fastapi import FastAPI

from collector.api import ingestion, metrics, observations, projects, scores, sessions, traces
from collector.api.common import ApiContext, document_errors, install_error_handlers

ROUTERS = [
    projects.router,
    traces.router,
    sessions.router,
    observations.router,
    metrics.router,
    scores.router,
    ingestion.router,
]


def install_api(app: FastAPI, api: ApiContext) -> None:
    """Mount every REST router on ``app`` with the shared context and error shapes."""
    app.state.api = api
    install_error_handlers(app)
    document_errors(app)
    for router in ROUTERS:
        app.include_router(router)
