"""Scores: create (``POST /scores``), list (v1, v2, v3), get, delete.

``POST /api/public/scores`` takes one score (answered 200 ``{"id"}``) or the JSON list SDK v5
sends (202 ``{"message": "Accepted"}``, or 207 ``{"accepted", "rejected", "errors"}`` when some
are invalid — the valid ones are stored). Scores are validated by :func:`semconv.legacy.validate_score`
and stored through the WAL like every write. A missing id becomes a UUID (as Langfuse does;
SDK v5 always sends its own 16-hex id).

Reads: ``GET /scores`` (v1: trace scores only, no CORRECTION), ``GET /v2/scores`` (all scores,
more filters), both page-paginated with a ``trace`` object per item; ``GET /v3/scores``
(keyset cursor, polymorphic ``value``, field groups); ``GET /scores/{id}``,
``GET /v2/scores/{id}``. ``DELETE /scores/{id}`` writes a durable tombstone and answers 202.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from collector.api.common import BadRequest, NotFound, Page, Paged, Project, context, parse_time
from collector.api.ingestion import (
    Budgeted,
    append_durably,
    json_response,
    now_micros,
    read_json,
    refuse_if_full,
    write_credentials,
)
from collector.api.shapes import SCORE_V3_GROUPS, score, score_trace, score_v1, score_v3
from semconv import legacy
from storage.reads import scores as reads
from storage.reads.scores import ScoreFilter
from storage.wal import Signal

router = APIRouter(prefix="/api/public", tags=["scores"])

NOT_FOUND = "Score not found within authorized project"
V1_FIELD_GROUPS = ("score", "trace")
V1_EXCLUDED_TYPES = ["CORRECTION"]  # v1 lists the "listable" types only
_EPOCH = dt.datetime(1970, 1, 1)


# ------------------------------------------------------------------------------------ helpers
def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _multi(values: list[str] | None) -> list[str]:
    """A repeatable parameter whose values may also be comma lists."""
    return [part for value in values or () for part in _csv(value)]


def _enum(value: str | None, allowed: tuple[str, ...], name: str) -> list[str]:
    if value is None or value == "":
        return []
    if value not in allowed:
        raise BadRequest(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return [value]


def _reject_json_filter(value: str | None) -> None:
    if value:
        raise BadRequest(
            "filter: the JSON filter parameter is not supported by Spanfuse; use the individual query parameters"
        )


def score_filter(
    userId: str | None = Query(None, description="Scores of traces of this user"),
    name: str | None = Query(None),
    fromTimestamp: str | None = Query(None, description="Inclusive lower bound (ISO-8601)"),
    toTimestamp: str | None = Query(None, description="Exclusive upper bound (ISO-8601)"),
    environment: Annotated[list[str] | None, Query(description="Repeatable")] = None,
    source: str | None = Query(None, description="API, EVAL or ANNOTATION"),
    operator: str | None = Query(None, description="<, >, <=, >=, != or = (with value)"),
    value: float | None = Query(None),
    scoreIds: str | None = Query(None, description="Comma-separated score ids"),
    configId: str | None = Query(None),
    queueId: str | None = Query(None),
    dataType: str | None = Query(None, description="NUMERIC, CATEGORICAL, BOOLEAN, TEXT or CORRECTION"),
    traceTags: Annotated[list[str] | None, Query(description="The trace has all of these tags (repeatable)")] = None,
    filter: str | None = Query(None, description="Not supported"),  # Langfuse's parameter name
) -> ScoreFilter:
    """The filters ``GET /scores`` and ``GET /v2/scores`` share (a FastAPI dependency)."""
    _reject_json_filter(filter)
    if operator is not None and operator not in reads.COMPARISONS:
        raise BadRequest(f"operator: expected one of {', '.join(reads.COMPARISONS)}, got {operator!r}")
    return ScoreFilter(
        ids=_csv(scoreIds),
        names=[name] if name else [],
        sources=_enum(source, legacy.SOURCES, "source"),
        data_types=_enum(dataType, legacy.DATA_TYPES, "dataType"),
        environments=_multi(environment),
        config_ids=[configId] if configId else [],
        queue_ids=[queueId] if queueId else [],
        since=parse_time(fromTimestamp, "fromTimestamp"),
        until=parse_time(toTimestamp, "toTimestamp"),
        comparison=(operator, value) if operator is not None and value is not None else None,
        user_id=userId or None,
        trace_tags=_multi(traceTags),
    )


ScoreFilters = Depends(score_filter)


def _with_trace(fields: str | None, f: ScoreFilter) -> bool:
    """Whether list items carry the ``trace`` object (``fields`` defaults to score,trace)."""
    groups = set(_csv(fields)) & set(V1_FIELD_GROUPS) if fields else set(V1_FIELD_GROUPS)
    include = "trace" in groups
    if f.needs_trace and not include:
        raise BadRequest(
            "fields: filtering by trace properties (userId, traceTags) needs the 'trace' field group; "
            "add 'trace' to fields"
        )
    return include


def _page(
    request: Request, project_id: str, f: ScoreFilter, page: Page, *, with_trace: bool, v1: bool
) -> dict[str, Any]:
    rows, total = reads.list_scores(
        context(request).query, project_id, f, offset=page.offset, limit=page.limit, with_trace=with_trace
    )
    data = []
    for row in rows:
        item = score_v1(row) if v1 else score(row)
        if with_trace:
            item["trace"] = score_trace(row, with_session=not v1)
        data.append(item)
    return {"data": data, "meta": page.meta(total)}


# ------------------------------------------------------------------------------------ create
@router.post("/scores")
async def create_scores(request: Request, hold: Budgeted) -> Response:
    """Create one score (200 ``{"id"}``) or a list of scores (202, or 207 when some are invalid).

    Accepts Basic credentials or ``Authorization: Bearer <public key>`` (Langfuse's scores access).
    """
    project_id, _scope = write_credentials(request)
    ctx = context(request)
    if (refusal := refuse_if_full(ctx)) is not None:
        return refusal
    body = await read_json(request, hold)
    now = now_micros()
    if isinstance(body, dict):
        try:
            row = legacy.validate_score(body, default_timestamp=now, public_api=True)
        except legacy.InvalidBody as exc:
            raise BadRequest(f"Invalid request data: {exc}", str(exc)) from None
        refusal = await append_durably(ctx, Signal.SCORES, project_id, {"scores": [row]}, 1)
        return refusal or json_response({"id": row["id"]})
    if not isinstance(body, list) or not body:
        raise BadRequest("Invalid request data: expected a score object or a non-empty list of scores")
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for index, item in enumerate(body):
        try:
            rows.append(legacy.validate_score(item, default_timestamp=now, public_api=True))
        except legacy.InvalidBody as exc:
            errors.append({"message": f"score {index}: {exc}"})
    if rows:
        refusal = await append_durably(ctx, Signal.SCORES, project_id, {"scores": legacy.fold_scores(rows)}, len(rows))
        if refusal is not None:
            return refusal
    if errors:
        return json_response({"accepted": len(rows), "rejected": len(errors), "errors": errors}, 207)
    return json_response({"message": "Accepted"}, 202)


# ------------------------------------------------------------------------------------ v1 / v2
@router.get("/scores")
def list_scores_v1(
    request: Request,
    project_id: str = Project,
    page: Page = Paged,
    f: ScoreFilter = ScoreFilters,
    fields: str | None = Query(None, description="score, trace (default both)"),
) -> dict[str, Any]:
    """Scores of traces (ScoreV1 plus ``trace {userId, tags, environment}``), newest first."""
    f.traces_only = True
    f.exclude_data_types = V1_EXCLUDED_TYPES
    return _page(request, project_id, f, page, with_trace=_with_trace(fields, f), v1=True)


@router.get("/v2/scores")
def list_scores_v2(
    request: Request,
    project_id: str = Project,
    page: Page = Paged,
    f: ScoreFilter = ScoreFilters,
    sessionId: str | None = Query(None, description="Comma-separated"),
    datasetRunId: str | None = Query(None, description="Comma-separated"),
    traceId: str | None = Query(None, description="Comma-separated"),
    observationId: str | None = Query(None, description="Comma-separated"),
    fields: str | None = Query(None, description="score, trace (default both)"),
) -> dict[str, Any]:
    """All scores (Score plus ``trace {userId, tags, environment, sessionId}``), newest first."""
    f.session_ids = _csv(sessionId)
    f.dataset_run_ids = _csv(datasetRunId)
    f.trace_ids = _csv(traceId)
    f.observation_ids = _csv(observationId)
    return _page(request, project_id, f, page, with_trace=_with_trace(fields, f), v1=False)


@router.get("/v2/scores/{score_id}")
def get_score_v2(request: Request, score_id: str, project_id: str = Project) -> dict[str, Any]:
    """One score (any kind) as Langfuse's ``Score``; 404 when it is not in the caller's project."""
    row = reads.get_score(context(request).query, project_id, score_id)
    if row is None:
        raise NotFound(NOT_FOUND)
    return score(row)


@router.get("/scores/{score_id}")
def get_score_v1(request: Request, score_id: str, project_id: str = Project) -> dict[str, Any]:
    """One trace score as ``ScoreV1``; 404 for scores of sessions or dataset runs (as in Langfuse)."""
    row = reads.get_score(context(request).query, project_id, score_id)
    if row is None or not row.get("trace_id") or row["data_type"] in V1_EXCLUDED_TYPES:
        raise NotFound(NOT_FOUND)
    return score_v1(row)


@router.delete("/scores/{score_id}", status_code=202)
def delete_score(request: Request, score_id: str, project_id: str = Project) -> Response:
    """Delete a score of the caller's project: a durable tombstone, then 202.

    Like Langfuse the answer does not depend on whether the score exists (it may still be on
    its way through the WAL; the tombstone hides it whenever it lands). Another project's score
    with the same id is untouched.
    """
    reads.tombstone_score(context(request).config.data_dir, project_id, score_id)
    return json_response({"message": "Score deletion queued successfully"}, 202)


# ------------------------------------------------------------------------------------ v3
V3_PARAMETERS = frozenset(
    {
        "limit",
        "cursor",
        "fields",
        "id",
        "name",
        "source",
        "dataType",
        "environment",
        "configId",
        "queueId",
        "authorUserId",
        "value",
        "valueMin",
        "valueMax",
        "traceId",
        "sessionId",
        "observationId",
        "experimentId",
        "fromTimestamp",
        "toTimestamp",
        "userId",
        "traceTags",
    }
)


def encode_cursor(row: dict[str, Any]) -> str:
    """An opaque, URL-safe position after ``row`` in (timestamp DESC, id DESC) order."""
    moment = row["timestamp"]
    delta = moment.replace(tzinfo=None) - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raw = orjson.dumps({"v": 1, "ts": micros, "id": row["id"]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = orjson.loads(raw)
        if decoded.get("v") != 1 or not isinstance(decoded.get("id"), str) or not isinstance(decoded.get("ts"), int):
            raise ValueError("unknown cursor version")
        return _EPOCH + dt.timedelta(microseconds=decoded["ts"]), decoded["id"]
    except (binascii.Error, ValueError, AttributeError, OverflowError):
        raise BadRequest("Invalid cursor format") from None


def _csv_enum(value: str | None, allowed: tuple[str, ...], name: str) -> list[str]:
    values = [v.upper() for v in _csv(value)]
    for v in values:
        if v not in allowed:
            raise BadRequest(f'Invalid {name} value: "{v}". Allowed: {", ".join(allowed)}')
    return values


def _number(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise BadRequest(f"{name}: expected a finite number")
    return number


def _v3_values(f: ScoreFilter, values: list[str], value_min: float | None, value_max: float | None) -> None:
    """``value`` / ``valueMin`` / ``valueMax``: need exactly one data type, as Langfuse checks."""
    if not values and value_min is None and value_max is None:
        return
    if len(f.data_types) != 1:
        raise BadRequest("value, valueMin and valueMax need exactly one dataType")
    data_type = f.data_types[0]
    if (value_min is not None or value_max is not None) and data_type != "NUMERIC":
        raise BadRequest("valueMin and valueMax need dataType=NUMERIC")
    f.value_min, f.value_max = value_min, value_max
    if not values:
        return
    if data_type == "NUMERIC":
        f.numeric_values = [n for n in (_number(v, "value") for v in values) if n is not None]
    elif data_type == "BOOLEAN":
        flags = {"true": 1.0, "false": 0.0}
        if any(v.lower() not in flags for v in values):
            raise BadRequest('value: a BOOLEAN value is "true" or "false"')
        f.numeric_values = [flags[v.lower()] for v in values]
    elif data_type == "CATEGORICAL":
        f.string_values = values
    else:
        raise BadRequest("value: filtering by value needs dataType NUMERIC, BOOLEAN or CATEGORICAL")


@router.get("/v3/scores")
def list_scores_v3(
    request: Request,
    project_id: str = Project,
    limit: int = Query(50, ge=1, le=100, description="Items per page, at most 100"),
    cursor: str | None = Query(None, description="meta.cursor of the previous page"),
    fields: str | None = Query(None, description="Extra groups: details, subject, annotation"),
    id: str | None = Query(None, description="Comma-separated"),  # Langfuse's parameter name
    name: str | None = Query(None, description="Comma-separated"),
    source: str | None = Query(None, description="Comma-separated; API, EVAL, ANNOTATION"),
    dataType: str | None = Query(None, description="Comma-separated"),
    environment: str | None = Query(None, description="Comma-separated"),
    configId: str | None = Query(None, description="Comma-separated"),
    queueId: str | None = Query(None, description="Comma-separated"),
    authorUserId: str | None = Query(None, description="Comma-separated"),
    value: str | None = Query(None, description="Comma-separated exact values; needs one dataType"),
    valueMin: str | None = Query(None, description="Inclusive; needs dataType=NUMERIC"),
    valueMax: str | None = Query(None, description="Inclusive; needs dataType=NUMERIC"),
    traceId: str | None = Query(None, description="Comma-separated"),
    sessionId: str | None = Query(None, description="Comma-separated"),
    observationId: str | None = Query(None, description="Comma-separated; needs traceId"),
    experimentId: str | None = Query(None, description="Comma-separated dataset run ids"),
    fromTimestamp: str | None = Query(None, description="Inclusive lower bound (ISO-8601)"),
    toTimestamp: str | None = Query(None, description="Exclusive upper bound (ISO-8601)"),
    userId: str | None = Query(None, description="Not available in v3: use /v2/scores"),
    traceTags: str | None = Query(None, description="Not available in v3: use /v2/scores"),
) -> dict[str, Any]:
    """Scores newest first with a keyset cursor (stable under inserts) and a polymorphic ``value``."""
    unknown = sorted(set(request.query_params) - V3_PARAMETERS)
    if unknown:
        raise BadRequest(f"Unrecognized query parameter(s): {', '.join(unknown)}")
    if userId or traceTags:
        raise BadRequest("userId and traceTags are not supported by /v3/scores; use GET /api/public/v2/scores")
    groups = set(_csv(fields)) or {"core"}
    if groups - set(SCORE_V3_GROUPS):
        raise BadRequest(f"fields: unknown group(s) {', '.join(sorted(groups - set(SCORE_V3_GROUPS)))}")
    f = ScoreFilter(
        ids=_csv(id),
        names=_csv(name),
        sources=_csv_enum(source, legacy.SOURCES, "source"),
        data_types=_csv_enum(dataType, legacy.DATA_TYPES, "dataType"),
        environments=_csv(environment),
        config_ids=_csv(configId),
        queue_ids=_csv(queueId),
        author_user_ids=_csv(authorUserId),
        trace_ids=_csv(traceId),
        session_ids=_csv(sessionId),
        observation_ids=_csv(observationId),
        dataset_run_ids=_csv(experimentId),
        since=parse_time(fromTimestamp, "fromTimestamp"),
        until=parse_time(toTimestamp, "toTimestamp"),
    )
    if f.observation_ids and not f.trace_ids:
        raise BadRequest("observationId requires traceId: observation ids are scoped to a trace")
    subjects = [
        n for n, v in (("traceId", f.trace_ids), ("sessionId", f.session_ids), ("experimentId", f.dataset_run_ids)) if v
    ]
    if len(subjects) > 1:
        raise BadRequest(f"{' and '.join(subjects)} are mutually exclusive")
    _v3_values(f, _csv(value), _number(valueMin, "valueMin"), _number(valueMax, "valueMax"))
    after = decode_cursor(cursor) if cursor else None
    rows = reads.list_scores_after(context(request).query, project_id, f, after=after, limit=limit + 1)
    meta: dict[str, Any] = {"limit": limit}
    if len(rows) > limit:
        rows = rows[:limit]
        meta["cursor"] = encode_cursor(rows[-1])
    return {"data": [score_v3(row, groups) for row in rows], "meta": meta}
