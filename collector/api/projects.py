"""``GET /api/public/health`` (no auth) and ``GET /api/public/projects`` (what ``auth_check()`` calls)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from collector.api.common import Project, context

router = APIRouter(prefix="/api/public", tags=["health", "projects"])


@router.get("/health")
def health(request: Request) -> dict[str, str]:
    """Liveness: ``{status, version}``; needs no credentials."""
    return {"status": "OK", "version": context(request).version}


@router.get("/projects")
def projects(request: Request, project_id: str = Project) -> dict[str, Any]:
    """The project the credentials belong to, in Langfuse's shape (the SDK's auth check reads it)."""
    project = context(request).config.project(project_id)
    return {
        "data": [
            {
                "id": project.id,
                "name": project.name,
                "organization": {"id": "spanfuse", "name": "Spanfuse"},
                "metadata": {},
            }
        ]
    }
