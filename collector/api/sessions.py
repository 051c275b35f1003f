"""Sessions: ``GET /api/public/sessions`` and ``GET /api/public/sessions/{sessionId}``.

A session is the set of traces sharing a session id (after merging trace facts); it was
created at its first trace's timestamp and has that trace's environment.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from collector.api.common import NotFound, Page, Paged, Project, context, iso, parse_time
from collector.api.observations import environment_list, json_response
from collector.api.traces import trace_object
from storage.reads import traces as reads

router = APIRouter(prefix="/api/public", tags=["sessions"])


def session_object(session_id: str, created_at: Any, environment: str | None, project_id: str) -> dict[str, Any]:
    return {
        "id": session_id,
        "createdAt": iso(created_at),
        "projectId": project_id,
        "environment": environment or "default",
    }


@router.get("/sessions")
def list_sessions(
    request: Request,
    project_id: str = Project,
    page: Page = Paged,
    from_timestamp: str | None = Query(None, alias="fromTimestamp", description="On createdAt; ISO-8601, inclusive"),
    to_timestamp: str | None = Query(None, alias="toTimestamp", description="On createdAt; ISO-8601, exclusive"),
    environment: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Sessions, newest first, as Langfuse's ``PaginatedSessions``."""
    f = reads.SessionFilter(
        since=parse_time(from_timestamp, "fromTimestamp"),
        until=parse_time(to_timestamp, "toTimestamp"),
        environments=environment_list(environment),
    )
    query = context(request).query
    rows = reads.list_sessions(query, project_id, f, limit=page.limit, offset=page.offset)
    total = len(rows) if page.offset == 0 and len(rows) < page.limit else reads.count_sessions(query, project_id, f)
    data = [session_object(r["id"], r["created_at"], r["environment"], project_id) for r in rows]
    return json_response({"data": data, "meta": page.meta(total)})


@router.get("/sessions/{session_id}")
def get_session(request: Request, session_id: str, project_id: str = Project) -> Response:
    """One session with all its traces (oldest first, not paginated), as ``SessionWithTraces``."""
    traces = reads.session_traces(context(request).query, project_id, session_id)
    if not traces:
        raise NotFound("Session not found within authorized project")
    first = traces[0]
    item = session_object(session_id, first["timestamp"], first.get("environment"), project_id)
    item["traces"] = [trace_object(t, project_id) for t in traces]
    return json_response(item)
