"""``POST /api/public/ingestion``: Langfuse's legacy batch endpoint, and what REST writes share.

SDK v2 sends everything here (traces, observations and their updates, scores), SDK v3/v4 their
scores and trace tag updates. Like OTLP, a write is validated completely first, then stored as
one WAL record of normalised events (:mod:`semconv.legacy`), and answered only once that record
is fsynced; the Parquet pipeline maps it into rows later. The answer is Langfuse's 207
``{"successes": [{"id", "status": 201}], "errors": [{"id", "status", "message", "error"}]}``
with one entry per envelope (``sdk-log`` events are validated and dropped, in neither list).

Credentials: HTTP Basic (public:secret key) may write anything; ``Authorization: Bearer
<public key>`` is Langfuse's *scores* access level and may only write scores — other events
get a 401 entry each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request, Response

from collector.admission import Hold
from collector.api.common import ApiContext, ApiError, context
from collector.auth import INVALID_CREDENTIALS, AuthError
from collector.receivers.http import HttpError, read_held_body
from semconv import legacy
from storage.wal import Signal, WalClosed, WalFull, WalWriteFailed

router = APIRouter(prefix="/api/public", tags=["ingestion"])

RETRY_AFTER_SECONDS = 1
Scope = Literal["project", "scores"]


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json", headers=headers)


def now_micros() -> int:
    return time.time_ns() // 1000


def write_credentials(request: Request) -> tuple[str, Scope]:
    """(project, access level) of a write: Basic keys → ``project``; a Bearer public key → ``scores``."""
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(
            401, "Missing credentials: send HTTP Basic auth with your public key and secret key.", "Unauthorized"
        )
    ctx = context(request)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        token = token.strip()
        for project in ctx.config.projects:
            if token and project.public_key == token:
                return project.id, "scores"
        raise ApiError(401, INVALID_CREDENTIALS, "Unauthorized")
    try:
        return ctx.auth.project_for(header), "project"
    except AuthError as exc:
        raise ApiError(401, str(exc), "Unauthorized") from None


def _retry_later(status: int, message: str) -> Response:
    return json_response(
        {"message": message, "error": "RetryLater"}, status, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def refuse_if_full(ctx: ApiContext) -> Response | None:
    """A 429/503 answer when the WAL cannot take a write now (checked before reading the body)."""
    try:
        ctx.ingestor.check_room()
    except WalFull as exc:
        return _retry_later(429, str(exc))
    return None


async def request_budget(request: Request) -> AsyncIterator[Hold]:  # (async: FastAPI runs a plain one in a thread)
    """A write's share of the receivers' request budget (:mod:`collector.admission`), held until
    it is answered; taken by :func:`read_json`, which raises ``Busy`` (429) past the limit."""
    with context(request).ingestor.budget.hold() as hold:
        yield hold


Budgeted = Annotated[Hold, Depends(request_budget)]


async def read_json(request: Request, hold: Hold) -> Any:
    """The request body as JSON (gzip/deflate undone, size-limited, held in ``hold``); 400/413/415 otherwise."""
    protocols = context(request).config.receivers.otlp.protocols
    limit = protocols.http.max_request_body_size if protocols.http is not None else 16 * 1024 * 1024
    try:
        body = await read_held_body(request, limit, hold, json=True)
    except HttpError as exc:
        raise ApiError(exc.status, exc.message, "InvalidRequestError") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "Invalid request data", f"body is not valid JSON: {exc}") from None


async def append_durably(
    ctx: ApiContext, signal: int, project_id: str, payload: dict[str, Any], items: int
) -> Response | None:
    """Append one WAL record and wait for its fsync; a 429/503 answer when that cannot happen."""
    telemetry = ctx.ingestor.telemetry
    labels = (project_id, "http", Signal.NAMES[signal])
    telemetry.received.labels(*labels).inc(items)
    try:
        future = ctx.ingestor.wal.append(signal, project_id, orjson.dumps(payload))
    except WalFull as exc:
        telemetry.rejected.labels(*labels, "unavailable").inc(items)
        return _retry_later(429, str(exc))
    except WalClosed as exc:
        telemetry.rejected.labels(*labels, "unavailable").inc(items)
        return _retry_later(503, str(exc))
    try:
        await asyncio.wrap_future(future)
    except WalWriteFailed as exc:
        telemetry.rejected.labels(*labels, "wal_write_failed").inc(items)
        return _retry_later(503, str(exc))
    telemetry.accepted.labels(*labels).inc(items)
    return None


@router.post("/ingestion", status_code=207)
async def ingestion(request: Request, hold: Budgeted) -> Response:
    """Langfuse's legacy batch ``{batch: [{id, timestamp, type, body}], metadata?}``; answers 207.

    Event types: trace-create, span-create/-update, generation-create/-update, event-create,
    agent/tool/chain/retriever/evaluator/embedding/guardrail-create, score-create, sdk-log and
    the legacy observation-create/-update. Updates are merged into the observation they update.
    """
    project_id, scope = write_credentials(request)
    ctx = context(request)
    if (refusal := refuse_if_full(ctx)) is not None:
        return refusal
    body = await read_json(request, hold)
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, list):
        return json_response(
            {
                "message": "Invalid request data",
                "error": "batch: expected an array of events",
                "errors": [{"path": ["batch"], "message": "expected an array of events"}],
            },
            400,
        )
    validated = legacy.validate_batch(batch, scores_only=scope == "scores")
    if validated.events:
        refusal = await append_durably(
            ctx, Signal.INGESTION, project_id, {"events": validated.events}, len(validated.events)
        )
        if refusal is not None:
            return refusal
    return json_response({"successes": validated.successes, "errors": validated.errors}, 207)
