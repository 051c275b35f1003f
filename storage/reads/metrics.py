"""Langfuse's metrics over the Parquet tables: daily usage and the metrics query engine.

Two read models:

* :func:`daily_metrics` — ``GET /api/public/metrics/daily``: per UTC day, traces, observations,
  cost and per-model usage.
* :func:`run_metrics` — ``GET /api/public/(v2/)metrics?query=``: a query object (view,
  dimensions, metrics, filters, time bucket) compiled to one DuckDB statement.

Everything a caller may name is looked up in fixed tables (:data:`VIEWS`, :data:`AGGREGATIONS`,
:data:`OPERATORS`, :data:`GRANULARITIES`); only those tables' SQL reaches the statement, and
every value from the caller is a bound parameter.

**Partition pruning.** Tables are read through the query layer's live rows (deduplicated, deleted
traces and scores left out; :func:`storage.reads.sources`) limited to the ``date=`` partitions of
the time range widened by a day (``TableQuery.query(dates=...)``: trace facts may sit on the day
before or after an observation), so files of other days are never opened; a ``date`` condition
on each read (:func:`_rows`) narrows observations and scores to the exact days.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from storage.parquet_writer import partition_date
from storage.partition_index import may_hold_any
from storage.query import COMPACTED_FILE_PREFIX, HIVE_OPTIONS, TableQuery
from storage.reads import equal, half_open, merged_facts, sources, where
from storage.reads.daily_rollup import FileRollup, rollups_of

# Trace facts of a trace lie within this distance of its observations (spans crossing midnight);
# partitions farther away are not read when merging facts.
TRACE_FACTS_MARGIN = dt.timedelta(days=1)

# Our usage buckets (semconv/usage.py) per side; any other key naming a side counts too, as in Langfuse.
INPUT_BUCKETS = ("input", "cache_read", "cache_write", "input_audio")
OUTPUT_BUCKETS = ("output", "reasoning", "output_audio")
KNOWN_USAGE_KEYS = (*INPUT_BUCKETS, *OUTPUT_BUCKETS, "total")


class MetricsQueryError(ValueError):
    """A metrics query names something that does not exist or combines things that do not fit."""


# ----------------------------------------------------------------------------------------- sources
def _rows(alias: str, first: dt.date | None, last: dt.date | None, params: list[Any]) -> str:
    """The live rows of a source (see :func:`storage.reads.sources`) whose ``date=`` partition is
    within ``first..last``: the ``date`` condition lets DuckDB skip every other partition's files."""
    clauses = []
    if first is not None:
        clauses.append("date >= ?::DATE")
        params.append(first)
    if last is not None:
        clauses.append("date <= ?::DATE")
        params.append(last)
    return f"SELECT * FROM {alias} {where(clauses)}"


def _merged_facts(rows_cte: str) -> str:
    """Trace facts merged per trace id (:func:`storage.reads.merged_facts`), the columns metrics use."""
    return merged_facts(rows_cte, ("name", "user_id", "session_id", "release", "version", "environment"))


def _side_key(key: str, buckets: tuple[str, ...], word: str) -> str:
    """Whether a usage (or cost) key counts towards one side: our buckets, or any key naming the side."""
    names = ", ".join(f"'{b}'" for b in buckets)
    return f"({key} IN ({names}) OR contains(lower({key}), '{word}'))"


def _side_sum(column: str, buckets: tuple[str, ...], word: str, value_type: str = "HUGEINT") -> str:
    """Sum of the map entries of one usage side, per row (:func:`_side_key`); ``value_type`` is
    that of ``list_sum`` over the map's values (HUGEINT for counts, DOUBLE for costs).

    A map whose keys are all distinct known buckets (``cardinality`` equals the number of known
    keys it contains: no other key, no repeated key) — every map our own pipeline writes — is
    summed by direct lookups; only other maps run the per-entry lambda, several times dearer. No
    other known key names a side, so both give the same sum. The first term is cast so that counts
    add up without BIGINT overflow. Floating-point sums depend on the order of their terms, so a
    DOUBLE map takes the lookups only when at most two of the side's buckets are present (two
    terms add up the same either way); otherwise the lambda adds them in the map's order.
    """
    lookups = [f"coalesce({column}['{b}'], 0)" for b in buckets]
    lookups[0] = f"CAST({lookups[0]} AS {value_type})"

    def present(keys: tuple[str, ...]) -> str:
        return "(" + " + ".join(f"map_contains({column}, '{k}')::INTEGER" for k in keys) + ")"

    direct = f"cardinality({column}) = {present(KNOWN_USAGE_KEYS)}"
    if value_type != "HUGEINT" and len(buckets) > 2:
        direct += f" AND {present(buckets)} <= 2"
    per_entry = (
        f"coalesce(list_sum(list_transform(list_filter(map_entries({column}), "
        f"lambda e: {_side_key('e.key', buckets, word)}), lambda e: e.value)), 0)"
    )
    return f"CASE WHEN {column} IS NULL THEN 0 WHEN {direct} THEN {' + '.join(lookups)} ELSE {per_entry} END"


def _widen(day: dt.date | None, days: int) -> dt.date | None:
    if day is None:
        return None
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return day


# ------------------------------------------------------------------------------------------ daily
@dataclass
class DailyFilter:
    trace_name: str | None = None
    user_id: str | None = None
    tags: list[str] = field(default_factory=list)  # the trace must carry all of them
    environments: list[str] = field(default_factory=list)  # any of them
    since: dt.datetime | None = None  # inclusive, naive UTC
    until: dt.datetime | None = None  # exclusive


def _model_days(kept: list[str], kept_params: list[Any], params: list[Any], keys: tuple[str, ...] = ()) -> str:
    """CTE items folding the observations of the CTE ``obs`` (with ``day``) that meet all of
    ``kept`` into ``model_rows``: per (``keys``, day, model) the observations, distinct traces,
    cost and usage sides. ``kept_params`` are the parameters of ``kept``, appended to ``params``
    once per use.

    The usage map, the dearest column to read, is read by ``usage_entries`` alone; the other
    columns once more by ``model_days``. Usage is summed per (day, model, key) over the map entries
    and only then split into sides: the side test runs once per distinct key instead of once per
    entry (per-row lookups or lambdas over the map cost more than the rest of the statement).
    Integer sums, so the order is moot. ``total`` is each row's usage_details['total'] (the
    first such entry), carried on the row's first entry only (unnest pads the one-element list
    with nulls).
    """
    group = ", ".join((*keys, "day", "model"))
    on = " AND ".join([*(f"u.{k} = m.{k}" for k in (*keys, "day")), "u.model IS NOT DISTINCT FROM m.model"])
    params += kept_params
    params += kept_params
    return f"""
        model_days AS (
            SELECT {group}, count(*) AS observations, count(DISTINCT trace_id) AS traces,
                   sum(coalesce(total_cost, 0)) AS total_cost
            FROM obs {where(kept)} GROUP BY {group}
        ),
        usage_entries AS (
            SELECT {group}, unnest(map_keys(usage_details)) AS key, unnest(map_values(usage_details)) AS value,
                   unnest([usage_details['total']]) AS total
            FROM obs {where(["usage_details IS NOT NULL", *kept])}
        ),
        usage_keys AS (
            SELECT {group}, key, sum(value) AS value, sum(total) AS total FROM usage_entries GROUP BY {group}, key
        ),
        usage_days AS (
            SELECT {group},
                   sum(value) FILTER (WHERE {_side_key("key", INPUT_BUCKETS, "input")}) AS input_usage,
                   sum(value) FILTER (WHERE {_side_key("key", OUTPUT_BUCKETS, "output")}) AS output_usage,
                   sum(total) AS total_usage
            FROM usage_keys GROUP BY {group}
        ),
        model_rows AS (
            SELECT m.*, u.input_usage, u.output_usage, u.total_usage
            FROM model_days m LEFT JOIN usage_days u ON {on}
        )"""


_MODEL_COLUMNS = ("observations", "traces", "total_cost", "input_usage", "output_usage", "total_usage")


def _whole_day(day: dt.date, f: DailyFilter) -> bool:
    """Whether ``day`` lies wholly within ``f``'s time range."""
    if f.since is not None and dt.datetime.combine(day, dt.time()) < f.since:
        return False
    if f.until is not None:
        try:
            return dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) <= f.until
        except OverflowError:
            return False
    return True


def _rolled_up_days(tq: TableQuery, project_id: str, f: DailyFilter) -> dict[dt.date, list[dict[str, Any]]]:
    """The per-model rows of the days that per-file rollups answer (:mod:`storage.reads.daily_rollup`):
    days within the time range whose partition is one compacted file (each observation once),
    whose rows all started that day, and that holds no deleted trace. Only without trace or
    environment filters: those depend on trace facts and rows that a file's rollup does not keep."""
    rollups = rollups_of(tq)
    partitions = tq.partitions("observations", project_id, None)
    if partitions:
        rollups.forget_others(partitions[0][0].parent, {p / name for p, names in partitions for name in names})
    files: dict[dt.date, Path] = {}
    for partition, names in partitions:
        day = partition_date(partition)
        if len(names) == 1 and names[0].startswith(COMPACTED_FILE_PREFIX) and _whole_day(day, f):
            files[day] = partition / names[0]
    if not files:
        return {}
    deleted = tq.deleted_trace_hashes(project_id)
    if len(deleted):  # a day whose file may hold a deleted trace is read (and the trace left out) as usual
        for partition, hashes in tq.observation_trace_hashes(partitions):
            day = partition_date(partition)
            if day in files and any(may_hold_any(h, deleted) for h in hashes):
                del files[day]
    try:
        found = rollups.get(files.values(), lambda paths: _roll_up(tq, project_id, paths))
    except duckdb.Error:  # a file gone or damaged: the statement reads the days and reports it
        return {}
    return {day: list(found[path].rows) for day, path in files.items() if found[path].usable}


def _roll_up(tq: TableQuery, project_id: str, paths: list[Path]) -> dict[Path, FileRollup]:
    """Per-(day, model) rows of compacted observations files, each its partition's only file;
    one statement for all of them, grouped by partition too."""
    by_date = {partition_date(p.parent): p for p in paths}
    params: list[Any] = [[str(p) for p in paths]]
    sql = f"""
        WITH obs AS NOT MATERIALIZED (
            SELECT date, trace_id, CAST(start_time AS DATE) AS day, model, usage_details, total_cost
            FROM read_parquet(?, {HIVE_OPTIONS}, union_by_name = true)
        ),
        {_model_days([], [], params, keys=("date",))}
        SELECT * FROM model_rows ORDER BY date, model NULLS LAST
    """
    rows: dict[dt.date, list[dict[str, Any]]] = {day: [] for day in by_date}
    for row in tq.query(project_id, sql, params):
        rows[row.pop("date")].append(row)
    return {
        by_date[day]: FileRollup(all(r["day"] == day for r in day_rows), tuple(day_rows))
        for day, day_rows in rows.items()
    }


def daily_metrics(tq: TableQuery, project_id: str, f: DailyFilter) -> list[dict[str, Any]]:
    """Every day with traces or observations, newest first, in Langfuse's daily-metrics shape.

    Traces count on the day of their timestamp; observations (and their cost and usage) on the
    day they started. Trace filters (name, user, tags) keep the observations of matching traces;
    ``environments`` filters traces by their environment and observations by theirs.

    Without filters, the per-model rows of days whose partition is one compacted file come from
    per-file rollups (:func:`_rolled_up_days`); the statement then reads those days' observations
    only to count traces per day.
    """
    filtered = bool(f.trace_name is not None or f.user_id is not None or f.tags or f.environments)
    rolled_up = {} if filtered else _rolled_up_days(tq, project_id, f)
    rows = _daily_rows(tq, project_id, f, rolled_up)
    if any(row["day"] in rolled_up and row["observations"] is not None for row in rows):
        # Observations of a rolled-up day in another day's partition (not written so, but the
        # rollup would then not be the day's whole story): read every day instead.
        rows = _daily_rows(tq, project_id, f, {})
    elif rolled_up:  # each rolled-up day's model rows (in the statement's order) under its trace count
        traces = {row["day"]: row["day_traces"] for row in rows}
        merged = [row for row in rows if row["day"] not in rolled_up]
        for day, models in rolled_up.items():
            if models:
                merged += [{**model, "day_traces": traces.get(day)} for model in models]
            elif day in traces:
                merged.append({"day": day, "day_traces": traces[day], "observations": None})
        rows = sorted(merged, key=lambda row: row["day"], reverse=True)  # stable: models stay in order
    days: dict[dt.date, dict[str, Any]] = {}
    for row in rows:
        item = days.get(row["day"])
        if item is None:
            item = days[row["day"]] = {
                "date": row["day"].isoformat(),
                "countTraces": int(row["day_traces"] or 0),
                "countObservations": 0,
                "totalCost": 0.0,
                "usage": [],
            }
        if row["observations"] is None:
            continue
        item["countObservations"] += int(row["observations"])
        item["totalCost"] += float(row["total_cost"] or 0.0)
        item["usage"].append(
            {
                "model": row["model"],
                "inputUsage": int(row["input_usage"] or 0),
                "outputUsage": int(row["output_usage"] or 0),
                "totalUsage": int(row["total_usage"] or 0),
                "countObservations": int(row["observations"]),
                "countTraces": int(row["traces"]),
                "totalCost": float(row["total_cost"] or 0.0),
            }
        )
    return list(days.values())


def _daily_rows(
    tq: TableQuery, project_id: str, f: DailyFilter, rolled_up: dict[dt.date, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Rows of (day, day's trace count, model, the model's counts, cost and usage), newest day
    first; observations whose partition is one of the ``rolled_up`` days are left out of the
    per-model rows (those days' files are not opened for them)."""
    first = f.since.date() if f.since else None
    last = (f.until - dt.timedelta(microseconds=1)).date() if f.until else None
    params: list[Any] = []
    obs_rows = _rows("o_src", first, last, params)
    fact_rows = _rows("t_src", _widen(first, -TRACE_FACTS_MARGIN.days), _widen(last, 1), params)

    obs_where = ["TRUE", *half_open("start_time", f.since, f.until, params)]

    trace_params: list[Any] = []
    trace_where = equal((("name", f.trace_name), ("user_id", f.user_id)), trace_params)
    if f.tags:
        trace_where.append("list_has_all(coalesce(tags, []), ?)")
        trace_params.append(list(f.tags))
    trace_filtered = bool(trace_where)
    if f.environments:
        trace_where.append("list_contains(?, environment)")
        trace_params.append(list(f.environments))

    time_params: list[Any] = []
    time_where = half_open("timestamp", f.since, f.until, time_params)

    kept: list[str] = []  # the observations counted in the per-model rows
    kept_params: list[Any] = []
    if trace_filtered:  # observations of the traces that match (environment is each row's own)
        kept.append("trace_id IN (SELECT id FROM matching)")
    if f.environments:
        kept.append("list_contains(?, environment)")
        kept_params.append(list(f.environments))
    if rolled_up:  # a plain IN list on the partition column: those days' files are not opened for it
        kept.append(f"date NOT IN ({', '.join('?' * len(rolled_up))})")
        kept_params.extend(rolled_up)
    model_params: list[Any] = []
    model_ctes = _model_days(kept, kept_params, model_params)

    sql = f"""
        WITH {sources(o_src="observations", t_src="traces")},
        obs_rows AS ({obs_rows}),
        fact_rows AS ({fact_rows}),
        obs AS NOT MATERIALIZED (
            SELECT date, trace_id, CAST(start_time AS DATE) AS day, start_time, model, usage_details, total_cost,
                   environment
            FROM obs_rows WHERE {" AND ".join(obs_where)}
        ),
        facts AS ({_merged_facts("fact_rows")}),
        starts AS (SELECT trace_id, min(start_time) AS start_time FROM obs GROUP BY trace_id),
        all_traces AS (
            SELECT coalesce(t.id, s.trace_id) AS id, coalesce(t.timestamp, s.start_time) AS timestamp,
                   t.name, t.user_id, t.tags, t.environment
            FROM facts t FULL JOIN starts s ON s.trace_id = t.id
        ),
        matching AS (SELECT * FROM all_traces {"WHERE " + " AND ".join(trace_where) if trace_where else ""}),
        trace_days AS (
            SELECT CAST(timestamp AS DATE) AS day, count(*) AS traces FROM matching
            {"WHERE " + " AND ".join(time_where) if time_where else ""} GROUP BY day
        ),
        {model_ctes}
        SELECT coalesce(m.day, d.day) AS day, d.traces AS day_traces, m.model,
               {", ".join(f"m.{c}" for c in _MODEL_COLUMNS)}
        FROM model_rows m
        FULL JOIN trace_days d ON d.day = m.day
        ORDER BY day DESC, m.model NULLS LAST
    """
    params += trace_params + time_params + model_params
    window = (_widen(first, -TRACE_FACTS_MARGIN.days), _widen(last, TRACE_FACTS_MARGIN.days))
    return tq.query(project_id, sql, params, dates=window)


# ---------------------------------------------------------------------------------- query engine
@dataclass(frozen=True)
class Field:
    """A column a query may group or filter by: SQL over the view's row aliases, and its kind."""

    sql: str
    kind: str = "string"  # string | number | datetime | boolean | array
    trace: bool = False  # reads the merged trace facts (alias ``t``)
    high_cardinality: bool = False  # not a dimension in v2 (filter on it instead)


@dataclass(frozen=True)
class View:
    name: str
    versions: frozenset[str]
    table: str  # the table whose partitions the time range prunes
    time: str  # SQL of the view's time column
    time_fields: tuple[str, ...]  # names a filter may use for it
    dimensions: dict[str, Field]
    measures: dict[str, str]  # name -> row-level SQL
    segment: str = "TRUE"  # constant condition of the view (e.g. score data types)


_LATENCY_MS = "(epoch_us({end}) - epoch_us({start})) / 1000.0"

_OBSERVATION_DIMENSIONS = {
    "id": Field("o.id", high_cardinality=True),
    "traceId": Field("o.trace_id", high_cardinality=True),
    "parentObservationId": Field("o.parent_observation_id", high_cardinality=True),
    "name": Field("o.name"),
    "type": Field("o.type"),
    "level": Field("o.level"),
    "version": Field("o.version"),
    "environment": Field("o.environment"),
    "providedModelName": Field("o.model"),
    "model": Field("o.model"),
    "promptName": Field("o.prompt_name"),
    "promptVersion": Field("o.prompt_version", "number"),
    "isRootObservation": Field("(o.parent_observation_id IS NULL)", "boolean"),
    "startTimeMonth": Field("strftime(o.start_time, '%Y-%m')"),
    "traceName": Field("t.name", trace=True),
    "userId": Field("t.user_id", trace=True, high_cardinality=True),
    "sessionId": Field("t.session_id", trace=True, high_cardinality=True),
    "tags": Field("t.tags", "array", trace=True),
    "release": Field("t.release", trace=True),
    "traceRelease": Field("t.release", trace=True),
    "traceVersion": Field("t.version", trace=True),
    "traceEnvironment": Field("t.environment", trace=True),
}

_OBSERVATION_MEASURES = {
    "count": "1",
    "latency": _LATENCY_MS.format(start="o.start_time", end="o.end_time"),
    "streamingLatency": _LATENCY_MS.format(start="o.completion_start_time", end="o.end_time"),
    "timeToFirstToken": _LATENCY_MS.format(start="o.start_time", end="o.completion_start_time"),
    "inputTokens": _side_sum("o.usage_details", INPUT_BUCKETS, "input"),
    "outputTokens": _side_sum("o.usage_details", OUTPUT_BUCKETS, "output"),
    "totalTokens": "coalesce(o.usage_details['total'], 0)",
    "inputCost": _side_sum("o.cost_details", INPUT_BUCKETS, "input", "DOUBLE"),
    "outputCost": _side_sum("o.cost_details", OUTPUT_BUCKETS, "output", "DOUBLE"),
    "totalCost": "o.total_cost",
    "tokensPerSecond": "o.usage_details['total'] / nullif((epoch_us(o.end_time) - epoch_us(o.start_time)) / 1e6, 0)",
    "outputTokensPerSecond": (
        f"{_side_sum('o.usage_details', OUTPUT_BUCKETS, 'output')} / "
        "nullif((epoch_us(o.end_time) - epoch_us(o.completion_start_time)) / 1e6, 0)"
    ),
}

_TRACE_DIMENSIONS = {
    "id": Field("t.id", high_cardinality=True),
    "name": Field("t.name"),
    "traceName": Field("t.name"),
    "tags": Field("t.tags", "array"),
    "userId": Field("t.user_id", high_cardinality=True),
    "sessionId": Field("t.session_id", high_cardinality=True),
    "release": Field("t.release"),
    "version": Field("t.version"),
    "environment": Field("t.environment"),
    "timestampMonth": Field("strftime(t.timestamp, '%Y-%m')"),
}

_TRACE_MEASURES = {
    "count": "1",
    "observationsCount": "coalesce(t.observations, 0)",
    "latency": _LATENCY_MS.format(start="t.first_start", end="t.last_end"),
    "totalCost": "t.total_cost",
    "totalTokens": "coalesce(t.total_tokens, 0)",
    "inputTokens": "coalesce(t.input_tokens, 0)",
    "outputTokens": "coalesce(t.output_tokens, 0)",
}


def _score_dimensions(value: dict[str, Field]) -> dict[str, Field]:
    return {
        "id": Field("s.id", high_cardinality=True),
        "traceId": Field("s.trace_id", high_cardinality=True),
        "observationId": Field("s.observation_id", high_cardinality=True),
        "sessionId": Field("coalesce(s.session_id, t.session_id)", trace=True, high_cardinality=True),
        "name": Field("s.name"),
        "source": Field("s.source"),
        "dataType": Field("s.data_type"),
        "configId": Field("s.config_id"),
        "environment": Field("s.environment"),
        "timestampMonth": Field("strftime(s.timestamp, '%Y-%m')"),
        "timestampDay": Field("strftime(s.timestamp, '%Y-%m-%d')"),
        "traceName": Field("t.name", trace=True),
        "userId": Field("t.user_id", trace=True, high_cardinality=True),
        "tags": Field("t.tags", "array", trace=True),
        "release": Field("t.release", trace=True),
        "traceRelease": Field("t.release", trace=True),
        "traceVersion": Field("t.version", trace=True),
        **value,
    }


_BOTH = frozenset({"v1", "v2"})

VIEWS: dict[str, View] = {
    "observations": View(
        "observations",
        _BOTH,
        "observations",
        "o.start_time",
        ("start_time", "startTime"),
        _OBSERVATION_DIMENSIONS,
        _OBSERVATION_MEASURES,
    ),
    "traces": View(
        "traces",
        frozenset({"v1"}),
        "traces",
        "t.timestamp",
        ("timestamp",),
        _TRACE_DIMENSIONS,
        _TRACE_MEASURES,
    ),
    "scores-numeric": View(
        "scores-numeric",
        _BOTH,
        "scores",
        "s.timestamp",
        ("timestamp",),
        _score_dimensions({"value": Field("s.value", "number")}),
        {"count": "1", "value": "s.value"},
        "s.data_type IN ('NUMERIC', 'BOOLEAN')",
    ),
    "scores-boolean": View(
        "scores-boolean",
        frozenset({"v2"}),
        "scores",
        "s.timestamp",
        ("timestamp",),
        _score_dimensions({"value": Field("s.value", "number"), "booleanValue": Field("(s.value <> 0)", "boolean")}),
        {"count": "1", "value": "s.value"},
        "s.data_type = 'BOOLEAN'",
    ),
    "scores-categorical": View(
        "scores-categorical",
        _BOTH,
        "scores",
        "s.timestamp",
        ("timestamp",),
        _score_dimensions({"stringValue": Field("s.string_value")}),
        {"count": "1"},
        "s.data_type = 'CATEGORICAL'",
    ),
}

AGGREGATIONS: dict[str, str] = {
    "sum": "coalesce(sum({}), 0)",  # a sum over no values is 0, not null
    "avg": "avg({})",
    "count": "count({})",
    "max": "max({})",
    "min": "min({})",
    "p50": "quantile_cont({}, 0.5)",
    "p75": "quantile_cont({}, 0.75)",
    "p90": "quantile_cont({}, 0.9)",
    "p95": "quantile_cont({}, 0.95)",
    "p99": "quantile_cont({}, 0.99)",
    "uniq": "count(DISTINCT {})",
}
UNSUPPORTED_AGGREGATIONS = {"histogram"}

# granularity -> (date_trunc unit, step)
GRANULARITIES: dict[str, tuple[str, dt.timedelta | None]] = {
    "minute": ("minute", dt.timedelta(minutes=1)),
    "hour": ("hour", dt.timedelta(hours=1)),
    "day": ("day", dt.timedelta(days=1)),
    "week": ("week", dt.timedelta(weeks=1)),
    "month": ("month", None),
}


@dataclass(frozen=True)
class Operator:
    sql: str  # ``{c}`` is the column, ``?`` the value
    kinds: frozenset[str]  # column kinds it applies to
    value: str  # scalar | list | none


_SCALAR_KINDS = frozenset({"string", "number", "datetime", "boolean"})
_ORDERED = frozenset({"number", "datetime"})

OPERATORS: dict[str, Operator] = {
    "=": Operator("{c} = ?", _SCALAR_KINDS, "scalar"),
    "!=": Operator("{c} IS DISTINCT FROM ?", _SCALAR_KINDS, "scalar"),
    "<>": Operator("{c} IS DISTINCT FROM ?", _SCALAR_KINDS, "scalar"),
    ">": Operator("{c} > ?", _ORDERED, "scalar"),
    "<": Operator("{c} < ?", _ORDERED, "scalar"),
    ">=": Operator("{c} >= ?", _ORDERED, "scalar"),
    "<=": Operator("{c} <= ?", _ORDERED, "scalar"),
    "contains": Operator("contains({c}, ?)", frozenset({"string"}), "scalar"),
    "does not contain": Operator("NOT contains(coalesce({c}, ''), ?)", frozenset({"string"}), "scalar"),
    "starts with": Operator("starts_with({c}, ?)", frozenset({"string"}), "scalar"),
    "ends with": Operator("ends_with({c}, ?)", frozenset({"string"}), "scalar"),
    "any of": Operator("list_contains(?, {c})", frozenset({"string", "number"}), "list"),
    "none of": Operator("({c} IS NULL OR NOT list_contains(?, {c}))", frozenset({"string", "number"}), "list"),
    "is null": Operator("{c} IS NULL", _SCALAR_KINDS, "none"),
    "is not null": Operator("{c} IS NOT NULL", _SCALAR_KINDS, "none"),
}
# Array columns (tags) have their own meaning for the option operators.
ARRAY_OPERATORS: dict[str, Operator] = {
    "any of": Operator("list_has_any(coalesce({c}, []), ?)", frozenset({"array"}), "list"),
    "all of": Operator("list_has_all(coalesce({c}, []), ?)", frozenset({"array"}), "list"),
    "none of": Operator("NOT list_has_any(coalesce({c}, []), ?)", frozenset({"array"}), "list"),
    "is null": Operator("len(coalesce({c}, [])) = 0", frozenset({"array"}), "none"),
    "is not null": Operator("len(coalesce({c}, [])) > 0", frozenset({"array"}), "none"),
}


@dataclass(frozen=True)
class MetricSpec:
    measure: str
    aggregation: str

    @property
    def alias(self) -> str:
        return f"{self.aggregation}_{self.measure}"


@dataclass(frozen=True)
class FilterSpec:
    column: str
    operator: str
    value: Any = None
    type: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class MetricsQuery:
    view: str
    since: dt.datetime  # naive UTC, inclusive
    until: dt.datetime  # naive UTC, inclusive (as Langfuse)
    dimensions: tuple[str, ...] = ()
    metrics: tuple[MetricSpec, ...] = ()
    filters: tuple[FilterSpec, ...] = ()
    granularity: str | None = None  # None: no time dimension
    order_by: tuple[tuple[str, str], ...] | None = None
    row_limit: int = 100
    version: str = "v2"


def auto_granularity(since: dt.datetime, until: dt.datetime) -> str:
    """Langfuse's ``auto``: about 50 buckets over the range."""
    hours = (until - since).total_seconds() / 3600
    if hours < 2:
        return "minute"
    if hours < 72:
        return "hour"
    if hours < 1440:
        return "day"
    if hours < 8760:
        return "week"
    return "month"


def bucket_start(moment: dt.datetime, granularity: str) -> dt.datetime:
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "day":
        return day
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def _buckets(since: dt.datetime, until: dt.datetime, granularity: str) -> Iterator[dt.datetime]:
    moment = bucket_start(since, granularity)
    step = GRANULARITIES[granularity][1]
    while moment <= until:
        yield moment
        if step is None:  # month
            moment = moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
        else:
            moment += step


@dataclass
class _Compiled:
    view: View
    granularity: str | None
    dimensions: list[tuple[str, Field]]
    metrics: list[MetricSpec]
    where: list[str]
    where_params: list[Any]
    since: dt.datetime
    until: dt.datetime
    needs_trace: bool
    order: list[tuple[str, str]]


def _validate(q: MetricsQuery) -> _Compiled:
    view = VIEWS.get(q.view)
    if view is None or q.version not in view.versions:
        allowed = sorted(name for name, v in VIEWS.items() if q.version in v.versions)
        raise MetricsQueryError(f"Invalid view '{q.view}' for {q.version}. Must be one of: {', '.join(allowed)}")

    dimensions: list[tuple[str, Field]] = []
    for name in dict.fromkeys(q.dimensions):
        dim = view.dimensions.get(name)
        if dim is None:
            raise MetricsQueryError(
                f"Invalid dimension '{name}' for view '{view.name}'. Must be one of: {', '.join(view.dimensions)}"
            )
        if q.version == "v2" and dim.high_cardinality:
            raise MetricsQueryError(
                f"Dimension '{name}' has high cardinality and cannot be grouped by in v2 metrics; filter on it instead"
            )
        dimensions.append((name, dim))

    metrics: list[MetricSpec] = []
    for metric in dict.fromkeys(q.metrics):
        if metric.measure not in view.measures:
            raise MetricsQueryError(
                f"Invalid measure '{metric.measure}' for view '{view.name}'. Must be one of: {', '.join(view.measures)}"
            )
        if metric.aggregation in UNSUPPORTED_AGGREGATIONS:
            raise MetricsQueryError(f"Aggregation '{metric.aggregation}' is not supported by this server")
        if metric.aggregation not in AGGREGATIONS:
            raise MetricsQueryError(
                f"Invalid aggregation '{metric.aggregation}'. Must be one of: {', '.join(AGGREGATIONS)}"
            )
        metrics.append(metric)

    granularity = q.granularity
    if granularity == "auto":
        granularity = auto_granularity(q.since, q.until)
    if granularity is not None and granularity not in GRANULARITIES:
        raise MetricsQueryError(f"Invalid granularity '{granularity}'")

    since, until = q.since, q.until
    where: list[str] = []
    where_params: list[Any] = []
    needs_trace = any(d.trace for _, d in dimensions)
    for i, flt in enumerate(q.filters):
        clause, values, column = _filter(view, flt, i)
        where.append(clause)
        where_params.extend(values)
        if column.trace:
            needs_trace = True
        if column.kind == "datetime" and column.sql == view.time and values:
            moment = values[0]
            if flt.operator in (">", ">=", "="):
                since = max(since, moment)
            if flt.operator in ("<", "<=", "="):
                until = min(until, moment)

    aliases = {name for name, _ in dimensions} | {m.alias for m in metrics}
    if not metrics:
        aliases.add("count")
    if granularity is not None:
        aliases.add("time_dimension")
    if q.order_by:
        order = []
        for name, direction in q.order_by:
            if name not in aliases:
                raise MetricsQueryError(
                    f"Invalid orderBy field '{name}'. Must be one of the query's fields: {', '.join(sorted(aliases))}"
                )
            order.append((name, direction))
    elif granularity is not None:
        order = [("time_dimension", "asc")]
    elif metrics:
        order = [(metrics[0].alias, "desc")]
    elif dimensions:
        order = [(dimensions[0][0], "asc")]
    else:
        order = []
    return _Compiled(view, granularity, dimensions, metrics, where, where_params, since, until, needs_trace, order)


def _filter(view: View, flt: FilterSpec, index: int) -> tuple[str, list[Any], Field]:
    if flt.column in view.time_fields:
        column = Field(view.time, "datetime")
    elif flt.column == "metadata" and view.name != "traces":
        if not flt.key:
            raise MetricsQueryError(f"filters[{index}]: a metadata filter needs a 'key'")
        alias = "o" if view.name == "observations" else "s"
        column = Field(f"json_extract_string({alias}.metadata, ?)", "string")
    elif flt.column in view.dimensions:
        column = view.dimensions[flt.column]
    else:
        names = [*view.dimensions, *view.time_fields]
        raise MetricsQueryError(
            f"filters[{index}]: invalid filter column '{flt.column}' for view '{view.name}'. "
            f"Must be one of: {', '.join(names)}"
        )
    table = ARRAY_OPERATORS if column.kind == "array" else OPERATORS
    op = table.get(flt.operator)
    if op is None or column.kind not in op.kinds:
        allowed = [name for name, o in table.items() if column.kind in o.kinds]
        raise MetricsQueryError(
            f"filters[{index}]: invalid operator '{flt.operator}' for {column.kind} column '{flt.column}'. "
            f"Must be one of: {', '.join(allowed)}"
        )
    column_params: list[Any] = []
    if flt.column == "metadata" and column.sql.startswith("json_extract_string("):
        column_params.append('$."' + str(flt.key).replace('"', '\\"') + '"')
    value: Any = None
    if op.value == "scalar":
        value = _scalar(column.kind, flt, index)
    elif op.value == "list":
        if not isinstance(flt.value, list) or not flt.value:
            raise MetricsQueryError(f"filters[{index}]: operator '{flt.operator}' needs a non-empty list of values")
        kind = "string" if column.kind == "array" else column.kind
        value = [_scalar(kind, FilterSpec(flt.column, flt.operator, v), index) for v in flt.value]
    sql: list[str] = []
    params: list[Any] = []
    for part in re.split(r"(\{c\}|\?)", op.sql):  # the column and the value may each appear more than once
        if part == "{c}":
            sql.append(column.sql)
            params.extend(column_params)
        elif part == "?":
            sql.append("?")
            params.append(value)
        else:
            sql.append(part)
    return f"({''.join(sql)})", params, column


def _scalar(kind: str, flt: FilterSpec, index: int) -> Any:
    value = flt.value
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    elif kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
    elif kind == "datetime" and isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            if moment.tzinfo is not None:  # may leave years 1..9999 (OverflowError)
                moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        except (ValueError, OverflowError):
            pass
        else:
            return moment
    raise MetricsQueryError(f"filters[{index}]: column '{flt.column}' needs a {kind} value, got {value!r}")


def _view_source(c: _Compiled, params: list[Any]) -> tuple[str, str]:
    """(CTE items, FROM clause) of the view's rows; appends their parameters."""
    first, last = c.since.date(), c.until.date()
    facts_first, facts_last = _widen(first, -TRACE_FACTS_MARGIN.days), _widen(last, TRACE_FACTS_MARGIN.days)
    view = c.view
    if view.name == "observations":
        ctes = [sources(o_src="observations", t_src="traces"), f"o_rows AS ({_rows('o_src', first, last, params)})"]
        source = "o_rows o"
        if c.needs_trace:
            ctes.append(f"t_rows AS ({_rows('t_src', facts_first, facts_last, params)})")
            ctes.append(f"facts AS ({_merged_facts('t_rows')})")
            source += " LEFT JOIN facts t ON t.id = o.trace_id"
        return ",\n".join(ctes), f"{source} WHERE TRUE"
    if view.name == "traces":
        o_rows = _rows("o_src", first, last, params)
        t_rows = _rows("t_src", facts_first, facts_last, params)
        ctes = [
            sources(o_src="observations", t_src="traces"),
            f"o_rows AS ({o_rows})",
            f"t_rows AS ({t_rows})",
            f"facts AS ({_merged_facts('t_rows')})",
            f"""per_trace AS (
                SELECT trace_id, min(start_time) AS first_start, max(coalesce(end_time, start_time)) AS last_end,
                       count(*) AS observations, sum(total_cost) AS total_cost,
                       sum(coalesce(usage_details['total'], 0)) AS total_tokens,
                       sum({_side_sum("usage_details", INPUT_BUCKETS, "input")}) AS input_tokens,
                       sum({_side_sum("usage_details", OUTPUT_BUCKETS, "output")}) AS output_tokens
                FROM o_rows WHERE start_time >= ? AND start_time <= ?
                GROUP BY trace_id
            )""",
            """all_traces AS (
                SELECT coalesce(f.id, a.trace_id) AS id, coalesce(f.timestamp, a.first_start) AS timestamp,
                       f.name, f.user_id, f.session_id, f.tags, f.release, f.version, f.environment,
                       a.first_start, a.last_end, a.observations, a.total_cost, a.total_tokens,
                       a.input_tokens, a.output_tokens
                FROM facts f FULL JOIN per_trace a ON a.trace_id = f.id
            )""",
        ]
        params += [c.since, c.until]
        return ",\n".join(ctes), "all_traces t WHERE TRUE"
    # scores (their live rows already leave out deleted scores and scores of deleted traces)
    ctes = [sources(s_src="scores", t_src="traces"), f"s_rows AS ({_rows('s_src', first, last, params)})"]
    source = "s_rows s"
    if c.needs_trace:
        ctes.append(f"t_rows AS ({_rows('t_src', facts_first, facts_last, params)})")
        ctes.append(f"facts AS ({_merged_facts('t_rows')})")
        source += " LEFT JOIN facts t ON t.id = s.trace_id"
    return ",\n".join(ctes), f"{source} WHERE TRUE"


def compile_metrics(q: MetricsQuery) -> tuple[str, list[Any], _Compiled]:
    """The statement (for :meth:`TableQuery.query`) and its parameters; raises :class:`MetricsQueryError`."""
    c = _validate(q)
    params: list[Any] = []
    ctes, source = _view_source(c, params)

    select: list[str] = []
    for i, (_, dim) in enumerate(c.dimensions):
        if dim.kind == "array":  # one row per tag; untagged rows group under null
            select.append(f"unnest(CASE WHEN len(coalesce({dim.sql}, [])) = 0 THEN [NULL] ELSE {dim.sql} END) AS d{i}")
        else:
            select.append(f"{dim.sql} AS d{i}")
    if c.granularity is not None:
        select.append(f"date_trunc('{GRANULARITIES[c.granularity][0]}', {c.view.time}) AS time_dimension")
    measures = c.metrics or [MetricSpec("count", "count")]
    for i, metric in enumerate(measures):
        select.append(f"{c.view.measures[metric.measure]} AS m{i}")

    where = [c.view.segment, f"{c.view.time} >= ?", f"{c.view.time} <= ?", *c.where]
    params += [c.since, c.until, *c.where_params]

    outer = [f'd{i} AS "{name}"' for i, (name, _) in enumerate(c.dimensions)]
    group = [f"d{i}" for i in range(len(c.dimensions))]
    if c.granularity is not None:
        outer.append("time_dimension")
        group.append("time_dimension")
    if c.metrics:
        outer += [f'{AGGREGATIONS[m.aggregation].format(f"m{i}")} AS "{m.alias}"' for i, m in enumerate(c.metrics)]
    else:
        outer.append('count(m0) AS "count"')
    order = [f'"{name}" {direction.upper()} NULLS LAST' for name, direction in c.order]
    order += [f"{g} ASC NULLS LAST" for g in group]  # a stable order among ties
    sql = f"""
        WITH {ctes},
        metric_rows AS (SELECT {", ".join(select)} FROM {source} AND {" AND ".join(where)})
        SELECT {", ".join(outer)} FROM metric_rows
        {"GROUP BY " + ", ".join(group) if group else ""}
        {"ORDER BY " + ", ".join(order) if order else ""}
        LIMIT ?
    """
    params.append(q.row_limit)
    return sql, params, c


def run_metrics(tq: TableQuery, project_id: str, q: MetricsQuery) -> list[dict[str, Any]]:
    """Rows of ``{<dimension>: value, "<aggregation>_<measure>": value, "time_dimension"?: datetime}``.

    With a time dimension and no ``orderBy``, missing time buckets between ``since`` and
    ``until`` are filled with zero counts and sums (Langfuse's ``WITH FILL``).
    """
    sql, params, c = compile_metrics(q)
    window = (
        _widen(c.since.date(), -TRACE_FACTS_MARGIN.days),
        _widen(c.until.date(), TRACE_FACTS_MARGIN.days),
    )
    rows = tq.query(project_id, sql, params, dates=window)
    if c.granularity is None or q.order_by:
        return rows
    return _fill_gaps(rows, c, q.row_limit)


def _fill_gaps(rows: list[dict[str, Any]], c: _Compiled, limit: int) -> list[dict[str, Any]]:
    by_bucket: dict[dt.datetime, list[dict[str, Any]]] = {}
    for row in rows:
        by_bucket.setdefault(row["time_dimension"], []).append(row)
    names = [name for name, _ in c.dimensions]
    zero: dict[str, Any] = {m.alias: 0 if m.aggregation in ("count", "sum", "uniq") else None for m in c.metrics}
    if not c.metrics:
        zero = {"count": 0}
    out: list[dict[str, Any]] = []
    assert c.granularity is not None
    for bucket in _buckets(c.since, c.until, c.granularity):
        if len(out) >= limit:
            break
        found = by_bucket.pop(bucket, None)
        if found:
            out.extend(found)
        else:
            out.append({**dict.fromkeys(names), "time_dimension": bucket, **zero})
    for leftover in by_bucket.values():  # buckets outside the generated range (should not happen)
        out.extend(leftover)
    out.sort(key=lambda r: r["time_dimension"])
    return out[:limit]
