"""Observations: ``GET /api/public/observations`` (v1, pages), ``/observations/{id}`` and ``/v2/observations`` (cursor).

v1 items are Langfuse's ``ObservationsView`` (every key the v3/v4 clients require, I/O parsed as
JSON); v2 items are ``ObservationV2`` restricted to the requested field groups, with I/O as the
raw stored strings (Langfuse v2 no longer parses it).

Legacy token counts (``usage`` and ``promptTokens``/``completionTokens``/``totalTokens``) follow
Langfuse's rule (keys containing "input" are input, keys containing "output" are output) extended
to our disjoint buckets: ``input``, ``cache_read``, ``cache_write`` and ``input_audio`` are input
side; ``output``, ``reasoning`` and ``output_audio`` are output side; ``total`` is the stored
total (their sum); other counters (e.g. ``web_search_queries``) count on neither side. The same
rule splits ``costDetails`` into ``calculatedInputCost`` / ``calculatedOutputCost``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from collector.api.common import (
    BadRequest,
    NotFound,
    Page,
    Paged,
    Project,
    context,
    iso,
    json_object,
    json_value,
    parse_time,
    seconds_between,
)
from storage.reads import observations as reads
from storage.reads.traces import get_traces

router = APIRouter(prefix="/api/public", tags=["observations"])

ObservationType = Literal[
    "GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR", "EMBEDDING", "GUARDRAIL"
]
Level = Literal["DEBUG", "DEFAULT", "WARNING", "ERROR"]

INPUT_SIDE = frozenset({"input", "cache_read", "cache_write", "input_audio"})
OUTPUT_SIDE = frozenset({"output", "reasoning", "output_audio"})


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def _side(key: str) -> str | None:
    if key in INPUT_SIDE or (key != "total" and "input" in key):
        return "input"
    if key in OUTPUT_SIDE or (key != "total" and "output" in key):
        return "output"
    return None


def split_usage(details: dict[str, Any] | None) -> tuple[float, float, float | None]:
    """(input side, output side, total) of a usage or cost map (see the module doc)."""
    sides = {"input": 0, "output": 0}
    for key, value in (details or {}).items():
        side = _side(key)
        if side is not None and value is not None:
            sides[side] += value
    total = (details or {}).get("total")
    return sides["input"], sides["output"], total


def _usage(row: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in (row.get("usage_details") or {}).items() if v is not None}


def _costs(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in (row.get("cost_details") or {}).items() if v is not None}


def observation_v1(row: dict[str, Any], project_id: str) -> dict[str, Any]:
    """A stored observation as Langfuse's ``ObservationsView`` (plus ``costSource``)."""
    usage, costs = _usage(row), _costs(row)
    tokens_in, tokens_out, tokens_total = split_usage(usage)
    total_tokens = int(tokens_total if tokens_total is not None else tokens_in + tokens_out)
    cost_in, cost_out, cost_total = split_usage(costs)
    if cost_total is None:
        cost_total = row.get("total_cost")
    if cost_total is None and costs:
        cost_total = cost_in + cost_out
    start = row["start_time"]
    return {
        "id": row["id"],
        "projectId": project_id,
        "traceId": row["trace_id"],
        "parentObservationId": row.get("parent_observation_id"),
        "name": row.get("name"),
        "type": row["type"],
        "environment": row.get("environment") or "default",
        "startTime": iso(start),
        "endTime": iso(row.get("end_time")),
        "version": row.get("version"),
        "createdAt": iso(row.get("ingested_at")),
        "updatedAt": iso(row.get("ingested_at")),
        "input": json_value(row.get("input")),
        "output": json_value(row.get("output")),
        "metadata": json_object(row.get("metadata")),
        "level": row.get("level") or "DEFAULT",
        "statusMessage": row.get("status_message"),
        "model": row.get("model"),
        "modelParameters": json_object(row.get("model_parameters")),
        "completionStartTime": iso(row.get("completion_start_time")),
        "promptId": None,
        "promptName": row.get("prompt_name"),
        "promptVersion": row.get("prompt_version"),
        "usageDetails": usage,
        "costDetails": costs,
        "usage": {"unit": "TOKENS", "input": int(tokens_in), "output": int(tokens_out), "total": total_tokens},
        "unit": "TOKENS",
        "promptTokens": int(tokens_in),
        "completionTokens": int(tokens_out),
        "totalTokens": total_tokens,
        "usagePricingTierName": None,
        "usagePricingTierId": None,
        "modelId": row.get("matched_model"),
        "inputPrice": None,
        "outputPrice": None,
        "totalPrice": None,
        "calculatedInputCost": cost_in if costs else None,
        "calculatedOutputCost": cost_out if costs else None,
        "calculatedTotalCost": cost_total,
        "latency": seconds_between(start, row.get("end_time")),
        "timeToFirstToken": seconds_between(start, row.get("completion_start_time")),
        "costSource": row.get("cost_source"),
    }


def environment_list(values: list[str] | None) -> list[str]:
    return [v for value in values or () for v in value.split(",") if v]


def reject_json_filter(filter_: str | None) -> None:
    if filter_:
        raise BadRequest(
            "filter: the JSON filter parameter is not supported by Spanfuse; "
            "use the individual query parameters (name, type, traceId, level, …)"
        )


def observation_filter(
    type: Annotated[ObservationType | None, Query()] = None,
    name: str | None = Query(None),
    user_id: str | None = Query(None, alias="userId"),
    level: Annotated[Level | None, Query()] = None,
    trace_id: str | None = Query(None, alias="traceId"),
    version: str | None = Query(None),
    parent_observation_id: str | None = Query(None, alias="parentObservationId"),
    environment: Annotated[list[str] | None, Query()] = None,
    from_start_time: str | None = Query(None, alias="fromStartTime", description="ISO-8601, inclusive"),
    to_start_time: str | None = Query(None, alias="toStartTime", description="ISO-8601, exclusive"),
    filter_: str | None = Query(None, alias="filter", include_in_schema=False),
) -> reads.ObservationFilter:
    """The filters the v1 and v2 observation lists share (a FastAPI dependency)."""
    reject_json_filter(filter_)
    return reads.ObservationFilter(
        trace_id=trace_id,
        type=type,
        name=name,
        level=level,
        version=version,
        parent_observation_id=parent_observation_id,
        environments=environment_list(environment),
        since=parse_time(from_start_time, "fromStartTime"),
        until=parse_time(to_start_time, "toStartTime"),
        user_id=user_id,
    )


ObservationFilters = Depends(observation_filter)


# ------------------------------------------------------------------------------------ v1
@router.get("/observations")
def list_observations_v1(
    request: Request,
    project_id: str = Project,
    page: Page = Paged,
    f: reads.ObservationFilter = ObservationFilters,
) -> Response:
    """Observations, newest start first, as Langfuse's ``ObservationsViews`` page."""
    query = context(request).query
    rows = reads.list_observations(query, project_id, f, limit=page.limit, offset=page.offset)
    total = len(rows) if page.offset == 0 and len(rows) < page.limit else reads.count_observations(query, project_id, f)
    return json_response({"data": [observation_v1(r, project_id) for r in rows], "meta": page.meta(total)})


@router.get("/observations/{observation_id}")
def get_observation_v1(request: Request, observation_id: str, project_id: str = Project) -> Response:
    """One observation as ``ObservationsView``; 404 when the project has none with this id."""
    row = reads.get_observation(context(request).query, project_id, observation_id)
    if row is None:
        raise NotFound(f"Observation {observation_id} not found within authorized project")
    return json_response(observation_v1(row, project_id))


# ------------------------------------------------------------------------------------ v2
FIELD_GROUPS = ("core", "basic", "time", "io", "metadata", "model", "usage", "prompt", "metrics", "trace_context")
DEFAULT_GROUPS = frozenset({"core", "basic"})
METADATA_VALUE_CHARS = 200


def raw_io(text: str | None) -> str | None:
    """Stored I/O as Langfuse v2 returns it: the text as sent (a JSON string value unquoted)."""
    if text is not None and text.startswith('"'):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        if isinstance(value, str):
            return value
    return text


def truncated_metadata(text: str | None, expand: set[str]) -> dict[str, Any]:
    """Metadata with values longer than 200 characters cut, except the keys in ``expand``."""
    metadata = json_object(text)
    for key, value in metadata.items():
        if key in expand or value is None or isinstance(value, bool | int | float):
            continue
        text_value = value if isinstance(value, str) else orjson.dumps(value).decode()
        if len(text_value) > METADATA_VALUE_CHARS:
            metadata[key] = text_value[:METADATA_VALUE_CHARS]
    return metadata


def observation_v2(
    row: dict[str, Any],
    groups: frozenset[str],
    project_id: str,
    trace: dict[str, Any] | None,
    is_root: bool,
    expand: set[str],
) -> dict[str, Any]:
    """A stored observation as Langfuse's ``ObservationV2`` with the keys of ``groups``."""
    start = row["start_time"]
    item: dict[str, Any] = {
        "id": row["id"],
        "traceId": row["trace_id"],
        "startTime": iso(start),
        "endTime": iso(row.get("end_time")),
        "projectId": project_id,
        "parentObservationId": row.get("parent_observation_id"),
        "type": row["type"],
    }
    trace = trace or {}
    if "basic" in groups:
        item |= {
            "isRootObservation": is_root,
            "name": row.get("name"),
            "level": row.get("level") or "DEFAULT",
            "statusMessage": row.get("status_message"),
            "version": row.get("version"),
            "environment": row.get("environment") or "default",
            "bookmarked": False,
            "public": bool(trace.get("public")),
            "userId": trace.get("user_id"),
            "sessionId": trace.get("session_id"),
        }
    if "time" in groups:
        item |= {
            "completionStartTime": iso(row.get("completion_start_time")),
            "createdAt": iso(row.get("ingested_at")),
            "updatedAt": iso(row.get("ingested_at")),
        }
    if "io" in groups:
        item |= {"input": raw_io(row.get("input")), "output": raw_io(row.get("output"))}
    if "metadata" in groups:
        item["metadata"] = truncated_metadata(row.get("metadata"), expand)
    if "model" in groups:
        item |= {
            "model": row.get("model"),
            "providedModelName": row.get("model"),
            "internalModelId": row.get("matched_model"),
            "modelParameters": json_object(row.get("model_parameters")),
        }
    if "usage" in groups:
        item |= {
            "usageDetails": _usage(row),
            "costDetails": _costs(row),
            "totalCost": row.get("total_cost"),
            "usagePricingTierName": None,
            "costSource": row.get("cost_source"),
        }
    if "prompt" in groups:
        item |= {"promptId": None, "promptName": row.get("prompt_name"), "promptVersion": row.get("prompt_version")}
    if "metrics" in groups:
        item |= {
            "latency": seconds_between(start, row.get("end_time")),
            "timeToFirstToken": seconds_between(start, row.get("completion_start_time")),
        }
    if "trace_context" in groups:
        item |= {"traceName": trace.get("name"), "tags": trace.get("tags") or [], "release": trace.get("release")}
    item |= {
        "modelId": row.get("matched_model") if "model" in groups else None,
        "inputPrice": None,
        "outputPrice": None,
        "totalPrice": None,
    }
    return item


def encode_cursor(row: dict[str, Any]) -> str:
    key = {"lastStartTimeTo": row["start_time"].isoformat(), "lastId": row["id"], "lastTraceId": row["trace_id"]}
    return base64.b64encode(orjson.dumps(key)).decode()


def decode_cursor(text: str) -> reads.Cursor:
    try:
        padded = text.strip().replace("-", "+").replace("_", "/")
        key = orjson.loads(base64.b64decode(padded + "=" * (-len(padded) % 4), validate=True))
        start = dt.datetime.fromisoformat(key["lastStartTimeTo"].replace("Z", "+00:00"))
        if start.tzinfo is not None:
            start = start.astimezone(dt.UTC).replace(tzinfo=None)
        cursor = reads.Cursor(start, key["lastId"], key["lastTraceId"])
        if not isinstance(cursor.id, str) or not isinstance(cursor.trace_id, str):
            raise TypeError
    except (binascii.Error, orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        raise BadRequest("cursor: invalid cursor format; pass meta.cursor of the previous page unchanged") from None
    return cursor


def _groups(fields: str | None) -> frozenset[str]:
    if not fields:
        return DEFAULT_GROUPS
    return frozenset({"core"} | {f.strip() for f in fields.split(",") if f.strip() in FIELD_GROUPS})


@router.get("/v2/observations")
def list_observations_v2(
    request: Request,
    project_id: str = Project,
    fields: str | None = Query(None, description=f"Comma-separated field groups: {', '.join(FIELD_GROUPS)}"),
    expand_metadata: str | None = Query(None, alias="expandMetadata"),
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = Query(None, description="meta.cursor of the previous page"),
    parse_io_as_json: str | None = Query(None, alias="parseIoAsJson"),
    f: reads.ObservationFilter = ObservationFilters,
    session_id: str | None = Query(None, alias="sessionId"),
    is_root_observation: bool | None = Query(None, alias="isRootObservation"),
) -> Response:
    """Observations, newest start first, by cursor; ``meta.cursor`` is absent on the last page."""
    if parse_io_as_json is not None and parse_io_as_json.lower() == "true":
        raise BadRequest(
            "parseIoAsJson=true is no longer supported on the v2 observations endpoint. Input/output fields are "
            "always returned as raw strings. Remove the parseIoAsJson parameter or set it to false."
        )
    groups = _groups(fields)
    f.session_id = session_id
    f.is_root = is_root_observation
    after = decode_cursor(cursor) if cursor else None
    query = context(request).query
    rows = reads.observations_after(query, project_id, f, cursor=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    traces: dict[str, dict[str, Any]] = {}
    if groups & {"basic", "trace_context"}:
        traces = get_traces(query, project_id, sorted({r["trace_id"] for r in rows}), orphans=False)
    parents = reads.arrived_parents(query, project_id, rows) if "basic" in groups else set()
    expand = {k.strip() for k in (expand_metadata or "").split(",") if k.strip()}
    data = [
        observation_v2(
            r,
            groups,
            project_id,
            traces.get(r["trace_id"]),
            not r.get("parent_observation_id") or (r["trace_id"], r["parent_observation_id"]) not in parents,
            expand,
        )
        for r in rows
    ]
    meta = {"cursor": encode_cursor(rows[-1])} if more else {}
    return json_response({"data": data, "meta": meta})
