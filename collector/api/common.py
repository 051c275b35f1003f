"""What every Langfuse-compatible REST route shares: auth, errors, pagination, times, JSON.

Conventions (../shared/reference/langfuse-server.md §3): Basic auth ``public_key:secret_key``;
errors as ``{"message", "error"}``; page pagination ``page`` ≥ 1 and ``limit`` 1..100 (default
50) answered with ``meta {page, limit, totalItems, totalPages}``; times as ISO-8601 UTC with
milliseconds and ``Z``; stored JSON columns parsed back into JSON where they are JSON.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector.admission import Busy
from collector.auth import Authenticator, AuthError
from collector.config import Config
from collector.ingest import Ingestor
from storage.query import QueryTimeout, TableQuery

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ApiError(Exception):
    """An error answered as ``{"message": ..., "error": ...}`` with ``status``."""

    def __init__(self, status: int, message: str, error: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error


class NotFound(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(404, message, "LangfuseNotFoundError")


class BadRequest(ApiError):
    def __init__(self, message: str, error: Any = None) -> None:
        super().__init__(400, message, error if error is not None else message)


@dataclass
class ApiContext:
    """The server parts the REST routes use (set once when the app is built)."""

    config: Config
    auth: Authenticator
    query: TableQuery
    ingestor: Ingestor
    version: str


def context(request: Request) -> ApiContext:
    return request.app.state.api


def authenticated_project(request: Request) -> str:
    """The caller's project from Basic credentials; REST reads never fall back to anonymous."""
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(
            401, "Missing credentials: send HTTP Basic auth with your public key and secret key.", "Unauthorized"
        )
    try:
        project = context(request).auth.project_for(header)
    except AuthError as exc:
        raise ApiError(401, str(exc), "Unauthorized") from None
    return project


Project = Depends(authenticated_project)


@dataclass(frozen=True)
class Page:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def meta(self, total: int) -> dict[str, int]:
        return {
            "page": self.page,
            "limit": self.limit,
            "totalItems": total,
            "totalPages": math.ceil(total / self.limit) if total else 0,
        }


# Beyond this a page's offset no longer fits the query engine's 64-bit integers (and no project has
# 10^9 pages of 100 items): a larger page is a 400, not an overflow.
MAX_PAGE = 1_000_000_000


def page_params(
    page: int = Query(1, ge=1, le=MAX_PAGE, description=f"Page number, starting at 1 (at most {MAX_PAGE})"),
    limit: int = Query(50, ge=1, le=100, description="Items per page, at most 100"),
) -> Page:
    return Page(page, limit)


Paged = Depends(page_params)


def iso(value: dt.datetime | int | None) -> str | None:
    """ISO-8601 UTC with milliseconds and ``Z``; ints are microseconds since the epoch."""
    if value is None:
        return None
    if isinstance(value, int):
        value = _EPOCH + dt.timedelta(microseconds=value)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_time(value: str | None, name: str) -> dt.datetime | None:
    """A query-string timestamp (ISO-8601, offset allowed, naive = UTC) as a naive UTC datetime."""
    if value is None or value == "":
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
        if moment.tzinfo is not None:  # 0001-01-01T00:00+14:00 is before year 1 in UTC: OverflowError
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise BadRequest(f"{name}: expected an ISO-8601 timestamp, got {value!r}") from None
    return moment


def json_value(text: str | None) -> Any:
    """A stored JSON column as JSON (None stays None; text that is not JSON stays text)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def json_object(text: str | None) -> dict[str, Any]:
    """A stored JSON column that must read as an object (metadata): {} when empty or not an object."""
    value = json_value(text)
    return value if isinstance(value, dict) else ({} if value is None else {"value": value})


def seconds_between(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def install_error_handlers(app: FastAPI) -> None:
    """Langfuse's error shapes for API errors, validation errors and query timeouts."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"message": exc.message, "error": exc.error}, status_code=exc.status)

    def unauthorized(request: Request) -> JSONResponse | None:
        # FastAPI validates a body before it runs the credentials dependency: answer 401, not a
        # description of the body, to a caller without valid keys.
        try:
            authenticated_project(request)
        except ApiError as error:
            return JSONResponse({"message": error.message, "error": error.error}, status_code=error.status)
        return None

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if (refused := unauthorized(request)) is not None:
            return refused
        issues = [
            {"path": [str(p) for p in err.get("loc", ())[1:]], "message": err.get("msg", "invalid")}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{'.'.join(i['path']) or 'body'}: {i['message']}" for i in issues)
        return JSONResponse({"message": f"Invalid request data: {summary}", "error": issues}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown routes, wrong methods, unparsable bodies: Langfuse's shape, the status kept.
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 400 and (refused := unauthorized(request)) is not None:
            return refused
        return JSONResponse(
            {"message": str(exc.detail), "error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"message": str(exc), "error": "RetryLater"}, status_code=429, headers={"Retry-After": "1"})

    @app.exception_handler(QueryTimeout)
    async def timeout(request: Request, exc: QueryTimeout) -> JSONResponse:
        return JSONResponse(
            {"message": f"{exc}; narrow the time range or filters", "error": "QueryTimeout"},
            status_code=503,
            headers={"Retry-After": "1"},
        )


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "error": {}},
    "required": ["message"],
}
_ERRORS = {
    "400": "Invalid request data (parameters or body)",
    "401": "Missing or invalid credentials",
    "404": "Not found within the authorized project",
}


def document_errors(app: FastAPI) -> None:
    """Declare the API's real error answers in the OpenAPI document.

    FastAPI documents a 422 for every route with parameters; the API answers invalid input with
    Langfuse's 400 ``{"message", "error"}`` instead (see :func:`install_error_handlers`), and
    401 / 404 the same way.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for path, methods in document.get("paths", {}).items():
            if not path.startswith("/api/public/") or path == "/api/public/health":
                continue
            for operation in methods.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status, description in _ERRORS.items():
                    responses.setdefault(
                        status,
                        {"description": description, "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
                    )
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
