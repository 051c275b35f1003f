"""Traces: ``GET /api/public/traces``, ``GET``/``DELETE /api/public/traces/{traceId}``, ``DELETE /api/public/traces``.

A trace is read merged from its partial facts (see :mod:`storage.reads.traces`). List items are
Langfuse's ``TraceWithDetails`` (observation and score ids, latency and cost over the trace's
observations); the single trace is ``TraceWithFullDetails`` (full observations and scores).
Deleting writes durable tombstones before answering; reads hide the trace at once and
compaction drops its rows.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from collector.api.common import BadRequest, NotFound, Page, Paged, Project, context, iso, json_value, parse_time
from collector.api.observations import environment_list, json_response, observation_v1, reject_json_filter
from collector.api.shapes import score
from storage.reads import traces as reads

router = APIRouter(prefix="/api/public", tags=["traces"])

FIELD_GROUPS = ("core", "io", "scores", "observations", "metrics")
# Langfuse's orderBy fields -> merged trace columns.
ORDER_FIELDS = {
    "id": "id",
    "timestamp": "timestamp",
    "name": "name",
    "userId": "user_id",
    "release": "release",
    "version": "version",
    "public": "public",
    "bookmarked": "bookmarked",
    "sessionId": "session_id",
}


def trace_object(row: dict[str, Any], project_id: str, *, io: bool = True) -> dict[str, Any]:
    """A merged trace as Langfuse's ``Trace`` (every key present; empty ones null, ``{}`` or ``[]``)."""
    return {
        "id": row["id"],
        "externalId": None,
        "timestamp": iso(row["timestamp"]),
        "name": row.get("name"),
        "input": json_value(row.get("input")) if io else None,
        "output": json_value(row.get("output")) if io else None,
        "sessionId": row.get("session_id"),
        "release": row.get("release"),
        "version": row.get("version"),
        "userId": row.get("user_id"),
        "metadata": (row.get("metadata") or {}) if io else {},
        "tags": list(row.get("tags") or []),
        "public": bool(row.get("public")),
        "bookmarked": False,
        "environment": row.get("environment") or "default",
        "projectId": project_id,
        "createdAt": iso(row.get("created_at")),
        "updatedAt": iso(row.get("updated_at")),
    }


def html_path(project_id: str, trace_id: str) -> str:
    return f"/project/{project_id}/traces/{trace_id}"


def parse_order(value: str | None) -> tuple[str, bool]:
    """``field.asc|desc`` -> (column, descending); the default is ``timestamp.desc``."""
    if not value:
        return "timestamp", True
    field, _, direction = value.partition(".")
    if field not in ORDER_FIELDS:
        raise BadRequest(f"orderBy: unknown field {field!r}; expected one of {', '.join(ORDER_FIELDS)}")
    if direction.lower() not in ("asc", "desc"):
        raise BadRequest(f"orderBy: expected '<field>.asc' or '<field>.desc', got {value!r}")
    return ORDER_FIELDS[field], direction.lower() == "desc"


def parse_fields(value: str | None) -> frozenset[str]:
    """Requested field groups (all when absent; unknown names are ignored, as Langfuse does)."""
    if value is None:
        return frozenset(FIELD_GROUPS)
    return frozenset(f.strip() for f in value.split(",") if f.strip() in FIELD_GROUPS)


@router.get("/traces")
def list_traces(
    request: Request,
    project_id: str = Project,
    page: Page = Paged,
    user_id: str | None = Query(None, alias="userId"),
    name: str | None = Query(None),
    session_id: str | None = Query(None, alias="sessionId"),
    tags: Annotated[list[str] | None, Query(description="Repeatable; a trace must carry all of them")] = None,
    from_timestamp: str | None = Query(None, alias="fromTimestamp", description="ISO-8601, inclusive"),
    to_timestamp: str | None = Query(None, alias="toTimestamp", description="ISO-8601, exclusive"),
    order_by: str | None = Query(None, alias="orderBy", description="<field>.asc|desc; default timestamp.desc"),
    version: str | None = Query(None),
    release: str | None = Query(None),
    environment: Annotated[list[str] | None, Query()] = None,
    fields: str | None = Query(None, description=f"Comma-separated field groups: {', '.join(FIELD_GROUPS)}"),
    filter_: str | None = Query(None, alias="filter", include_in_schema=False),
) -> Response:
    """Traces (merged from their facts) as Langfuse's ``Traces`` page."""
    reject_json_filter(filter_)
    column, descending = parse_order(order_by)
    groups = parse_fields(fields)
    f = reads.TraceFilter(
        user_id=user_id,
        name=name,
        session_id=session_id,
        tags=[t for t in tags or () if t],
        since=parse_time(from_timestamp, "fromTimestamp"),
        until=parse_time(to_timestamp, "toTimestamp"),
        version=version,
        release=release,
        environments=environment_list(environment),
    )
    query = context(request).query
    rows = reads.list_traces(
        query, project_id, f, order_by=column, descending=descending, limit=page.limit, offset=page.offset
    )
    total = len(rows) if page.offset == 0 and len(rows) < page.limit else reads.count_traces(query, project_id, f)
    ids = [r["id"] for r in rows]
    stats: dict[str, dict[str, Any]] = {}
    if groups & {"observations", "metrics"} and rows:
        stats = reads.observation_stats(query, project_id, ids, since=min(r["timestamp"] for r in rows))
    scores = reads.score_ids(query, project_id, ids) if "scores" in groups else {}
    data = []
    for row in rows:
        item = trace_object(row, project_id, io="io" in groups)
        stat = stats.get(row["id"], {})
        item |= {
            "htmlPath": html_path(project_id, row["id"]),
            "observations": stat.get("observation_ids", []) if "observations" in groups else [],
            "scores": scores.get(row["id"], []) if "scores" in groups else [],
            "latency": (stat.get("latency") or 0.0) if "metrics" in groups else -1,
            "totalCost": (stat.get("total_cost") or 0.0) if "metrics" in groups else -1,
        }
        data.append(item)
    return json_response({"data": data, "meta": page.meta(total)})


@router.get("/traces/{trace_id}")
def get_trace(request: Request, trace_id: str, project_id: str = Project) -> Response:
    """One trace with its observations and scores, as Langfuse's ``TraceWithFullDetails``."""
    found = reads.trace_details(context(request).query, project_id, trace_id)
    if found is None:
        raise NotFound(f"Trace {trace_id} not found within authorized project")
    row, rows, score_rows = found
    observations = [observation_v1(o, project_id) for o in rows]
    scores = [score(s) for s in score_rows]
    item = trace_object(row, project_id)
    item |= {
        "htmlPath": html_path(project_id, trace_id),
        "observations": observations,
        "scores": scores,
        "latency": reads.latency(rows),
        "totalCost": sum(o["calculatedTotalCost"] or 0.0 for o in observations),
    }
    return json_response(item)


def _delete(request: Request, project_id: str, trace_ids: list[str]) -> None:
    reads.tombstone_traces(context(request).config.data_dir, project_id, trace_ids)


@router.delete("/traces/{trace_id}")
def delete_trace(request: Request, trace_id: str, project_id: str = Project) -> Response:
    """Delete a trace: answered once its tombstone is durable; it disappears from every read at once."""
    _delete(request, project_id, [trace_id])
    return json_response({"message": "Trace deleted successfully"})


class DeleteTracesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    traceIds: list[str] = Field(min_length=1, description="At least 1 traceId is required.")


@router.delete("/traces")
def delete_traces(request: Request, body: DeleteTracesBody, project_id: str = Project) -> Response:
    """Delete several traces (``{"traceIds": [...]}``)."""
    _delete(request, project_id, body.traceIds)
    return json_response({"message": "Traces deleted successfully"})
