"""Metrics: ``GET /api/public/metrics/daily`` and the query API (``/api/public/v2/metrics``, v1 ``/metrics``).

The query object (``?query=<json>``) is validated here with pydantic (shape, enums, limits,
``fromTimestamp < toTimestamp``) and then by the engine in :mod:`storage.reads.metrics`, which
knows the views, dimensions, measures and filter operators; either failure is a 400 that says
what was wrong. See ../shared/reference/langfuse-server.md §3 "Metrics".
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from collector.api.common import BadRequest, Page, Paged, Project, context, iso, parse_time
from storage.reads.metrics import (
    DailyFilter,
    FilterSpec,
    MetricSpec,
    MetricsQuery,
    MetricsQueryError,
    daily_metrics,
    run_metrics,
)

router = APIRouter(prefix="/api/public", tags=["metrics"])


# ------------------------------------------------------------------------------------------ daily
_TAGS = Query(None, description="Repeatable; a trace must carry all of them")
_ENVIRONMENTS = Query(None, description="Repeatable; any of these environments")


@router.get("/metrics/daily")
def get_daily_metrics(
    request: Request,
    project_id: str = Project,
    page: Page = Paged,
    trace_name: str | None = Query(None, alias="traceName", description="Only traces with this name"),
    user_id: str | None = Query(None, alias="userId", description="Only traces of this user"),
    tags: list[str] | None = _TAGS,
    environment: list[str] | None = _ENVIRONMENTS,
    from_timestamp: str | None = Query(None, alias="fromTimestamp", description="ISO-8601, inclusive"),
    to_timestamp: str | None = Query(None, alias="toTimestamp", description="ISO-8601, exclusive"),
) -> dict[str, Any]:
    """Per UTC day (newest first): traces, observations, cost, and usage per model."""
    since = parse_time(from_timestamp, "fromTimestamp")
    until = parse_time(to_timestamp, "toTimestamp")
    if since is not None and until is not None and since >= until:
        raise BadRequest("fromTimestamp must be earlier than toTimestamp")
    days = daily_metrics(
        context(request).query,
        project_id,
        DailyFilter(
            trace_name=trace_name,
            user_id=user_id,
            tags=[t for t in tags or () if t],
            environments=[e for e in environment or () if e],
            since=since,
            until=until,
        ),
    )
    return {"data": days[page.offset : page.offset + page.limit], "meta": page.meta(len(days))}


# ------------------------------------------------------------------------------------------ query
class _Dimension(BaseModel):
    field: str


class _Metric(BaseModel):
    measure: str
    aggregation: Literal["sum", "avg", "count", "max", "min", "p50", "p75", "p90", "p95", "p99", "histogram", "uniq"]


class _Filter(BaseModel):
    column: str
    operator: str
    value: Any = None
    type: str | None = None
    key: str | None = None


class _TimeDimension(BaseModel):
    granularity: Literal["auto", "minute", "hour", "day", "week", "month"]


class _OrderBy(BaseModel):
    field: str
    direction: Literal["asc", "desc"]


class _Config(BaseModel):
    bins: int | None = Field(None, ge=1, le=100)
    row_limit: int | None = Field(None, ge=1, le=1000)


class MetricsQueryModel(BaseModel):
    """Langfuse's metrics query object (unknown keys are ignored, as zod does)."""

    model_config = ConfigDict(extra="ignore")

    view: str
    dimensions: list[_Dimension] | None = None
    metrics: list[_Metric] = Field(min_length=1)
    filters: list[_Filter] | None = None
    timeDimension: _TimeDimension | None = None
    fromTimestamp: dt.datetime
    toTimestamp: dt.datetime
    orderBy: list[_OrderBy] | None = None
    config: _Config | None = None
    chartConfig: _Config | None = None  # the name the Langfuse UI uses

    @field_validator("fromTimestamp", "toTimestamp")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is not None:
            try:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            except OverflowError:  # e.g. 0001-01-01T00:00+14:00: before year 1 in UTC
                raise ValueError("timestamp out of range once converted to UTC") from None
        return value

    @model_validator(mode="after")
    def _range(self) -> MetricsQueryModel:
        if self.fromTimestamp >= self.toTimestamp:
            raise ValueError("fromTimestamp must be earlier than toTimestamp")
        return self

    def to_query(self, version: str) -> MetricsQuery:
        config = self.config or self.chartConfig or _Config()
        return MetricsQuery(
            view=self.view,
            since=self.fromTimestamp,
            until=self.toTimestamp,
            dimensions=tuple(d.field for d in self.dimensions or ()),
            metrics=tuple(MetricSpec(m.measure, m.aggregation) for m in self.metrics),
            filters=tuple(FilterSpec(f.column, f.operator, f.value, f.type, f.key) for f in self.filters or ()),
            granularity=self.timeDimension.granularity if self.timeDimension else None,
            order_by=tuple((o.field, o.direction) for o in self.orderBy) if self.orderBy else None,
            row_limit=config.row_limit or 100,
            version=version,
        )


def parse_query(text: str | None) -> MetricsQueryModel:
    """The ``query`` parameter as a validated query object, or a 400 saying what is wrong."""
    if not text:
        raise BadRequest("Invalid request data: query: the 'query' parameter (a JSON object) is required")
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Invalid request data: query is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise BadRequest("Invalid request data: query must be a JSON object")
    try:
        return MetricsQueryModel.model_validate(document)
    except ValidationError as exc:
        issues = [
            {"path": [str(p) for p in err.get("loc", ())], "message": err.get("msg", "invalid")}
            for err in exc.errors(include_url=False)
        ]
        summary = "; ".join(f"{'.'.join(i['path']) or 'query'}: {i['message']}" for i in issues)
        raise BadRequest(f"Invalid query: {summary}", issues) from None


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime):
            value = iso(value)
        elif isinstance(value, dt.date):
            value = value.isoformat()
        out[key] = value
    return out


def _answer(request: Request, project_id: str, text: str | None, version: str) -> dict[str, Any]:
    query = parse_query(text).to_query(version)
    try:
        rows = run_metrics(context(request).query, project_id, query)
    except MetricsQueryError as exc:
        raise BadRequest(f"Invalid query: {exc}") from None
    return {"data": [_json_row(r) for r in rows]}


@router.get("/v2/metrics")
def get_metrics_v2(
    request: Request,
    project_id: str = Project,
    query: str | None = Query(None, description="The query object as JSON"),
) -> dict[str, Any]:
    """Langfuse metrics v2: views observations, scores-numeric, scores-boolean, scores-categorical."""
    return _answer(request, project_id, query, "v2")


@router.get("/metrics")
def get_metrics_v1(
    request: Request,
    project_id: str = Project,
    query: str | None = Query(None, description="The query object as JSON"),
) -> dict[str, Any]:
    """Langfuse metrics v1 (deprecated): as v2, plus the traces view and high-cardinality dimensions."""
    return _answer(request, project_id, query, "v1")
