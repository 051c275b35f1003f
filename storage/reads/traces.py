"""Traces and sessions as Langfuse shows them, merged from partial trace facts; trace deletion.

A trace's facts arrive as several rows of ``traces`` (one per root span or span carrying
``langfuse.trace.*``). Reading folds them per trace id: for each field the latest non-null
value (by ingestion time, then ingest sequence, then span start), tags unioned, the earliest
timestamp, metadata objects merged key by key with newer keys winning. A trace whose root
never arrived and that no span gave facts for still exists: its timestamp is its earliest
observation and its environment that observation's.

Sessions are derived: the traces sharing a session id; a session was created at its first
trace's timestamp.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from storage.parquet_writer import PartitionedWriter
from storage.query import DateWindow, TableQuery
from storage.reads import (
    FACT_ORDER,
    TRACE_SPAN_MARGIN,
    around,
    equal,
    half_open,
    in_list,
    merged_facts,
    newest_within,
    sources,
    time_range,
    utc_today,
    where,
)
from storage.schema import TABLES

_SCALAR_FACTS = ("name", "user_id", "session_id", "input", "output", "release", "version", "environment", "public")

# Columns a trace list may be ordered by (Langfuse's orderBy fields, in storage names).
ORDER_COLUMNS = frozenset(
    {"id", "timestamp", "name", "user_id", "release", "version", "public", "bookmarked", "session_id"}
)


@dataclass
class TraceFilter:
    """Conditions on merged traces; ``since`` is inclusive, ``until`` exclusive."""

    user_id: str | None = None
    name: str | None = None
    session_id: str | None = None
    tags: list[str] = field(default_factory=list)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    version: str | None = None
    release: str | None = None
    environments: list[str] = field(default_factory=list)


# The columns of ``merged``: (from a trace's facts, for a trace known only from its observations).
_MERGED_COLUMNS: dict[str, tuple[str, str]] = {
    "timestamp": ("timestamp", "timestamp"),
    **{c: (c, "NULL") for c in ("name", "user_id", "session_id", "input", "output")},
    "tags": ("coalesce(tags, []::VARCHAR[])", "[]::VARCHAR[]"),
    "metadata_versions": ("metadata_versions", "NULL"),
    **{c: (c, "NULL") for c in ("release", "version")},
    "environment": ("coalesce(environment, 'default')", "coalesce(environment, 'default')"),
    "public": ("coalesce(public, false)", "false"),
    "bookmarked": ("false", "false"),
    "created_at": ("created_at", "created_at"),
    "updated_at": ("updated_at", "updated_at"),
}
# Asked for by name only, never part of ``SELECT *``: whether a merged trace has facts of its own.
_HAS_FACTS = {"has_facts": ("true", "false")}
_COLUMN_SQL = {**_MERGED_COLUMNS, **_HAS_FACTS}
_INGEST_TIMES = {"created_at": "min(ingested_at) AS created_at", "updated_at": "max(ingested_at) AS updated_at"}
# Aggregates of the facts CTE beyond the merged scalar facts and tags, and of the observed CTE.
_FACT_EXTRAS: dict[str, str] = {
    "metadata_versions": (
        f"list(metadata ORDER BY {FACT_ORDER.strip('()')}) FILTER (WHERE metadata IS NOT NULL) AS metadata_versions"
    ),
    **_INGEST_TIMES,
}
_OBSERVED_AGGREGATES: dict[str, str] = {
    "environment": "arg_min(environment, start_time) FILTER (WHERE environment IS NOT NULL) AS environment",
    **_INGEST_TIMES,
}


def _merged_ctes(
    params: list[Any],
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    ids: list[str] | None = None,
    orphans: bool = True,
    prune_since: bool = True,
    columns: Iterable[str] | None = None,
) -> str:
    """``WITH`` items (after sources ``t`` = traces and ``o`` = observations) defining ``merged``.

    ``since``/``until`` only prune partitions (widened by :data:`TRACE_SPAN_MARGIN`); the caller
    filters the merged timestamp exactly. ``columns`` (default: all) limits ``merged`` to ``id``,
    ``timestamp`` and those: counting and choosing a page then never fold every trace's input,
    output and metadata.
    """
    wanted = [c for c in _MERGED_COLUMNS if columns is None or c == "timestamp" or c in columns]
    wanted += [c for c in _HAS_FACTS if columns is not None and c in columns]
    fact_where = time_range("timestamp", since if prune_since else None, until, params, margin=TRACE_SPAN_MARGIN)
    if ids is not None:
        fact_where.append(in_list("id", ids, params))
    facts = merged_facts(
        "t",
        [c for c in _SCALAR_FACTS if c in wanted],
        extra=[_FACT_EXTRAS[c] for c in wanted if c in _FACT_EXTRAS],
        where_sql=where(fact_where),
        tags="tags" in wanted,
    )
    ctes = [f"facts AS ({facts})"]
    merged = f"SELECT id, {', '.join(f'{_COLUMN_SQL[c][0]} AS {c}' for c in wanted)} FROM facts"
    if orphans:
        observation_where = time_range(
            "start_time", since if prune_since else None, until, params, margin=TRACE_SPAN_MARGIN
        )
        if ids is not None:
            observation_where.append(in_list("trace_id", ids, params))
        observed = [
            "trace_id AS id",
            "min(start_time) AS timestamp",
            *(_OBSERVED_AGGREGATES[c] for c in wanted if c in _OBSERVED_AGGREGATES),
        ]
        ctes.append(f"observed AS (SELECT {', '.join(observed)} FROM o {where(observation_where)} GROUP BY trace_id)")
        merged += f"""
        UNION ALL
        SELECT id, {", ".join(_COLUMN_SQL[c][1] for c in wanted)}
        FROM observed WHERE NOT EXISTS (SELECT 1 FROM facts WHERE facts.id = observed.id)"""
    ctes.append(f"merged AS ({merged})")
    return ",\n".join(ctes)


def _filtered(f: TraceFilter) -> dict[str, Any]:
    """The merged columns ``f`` filters on besides the timestamp, with their values."""
    given = {
        "user_id": f.user_id,
        "name": f.name,
        "session_id": f.session_id,
        "version": f.version,
        "release": f.release,
        "tags": f.tags or None,
        "environment": f.environments or None,
    }
    return {column: value for column, value in given.items() if value is not None}


def _conditions(f: TraceFilter, params: list[Any]) -> list[str]:
    clauses = half_open("timestamp", f.since, f.until, params)
    given = _filtered(f)
    tags, environments = given.pop("tags", None), given.pop("environment", None)
    clauses += equal(given.items(), params)
    if tags:
        clauses.append("list_has_all(tags, ?::VARCHAR[])")
        params.append(list(tags))
    if environments:
        clauses.append(in_list("environment", list(environments), params))
    return clauses


def merge_metadata(versions: Iterable[str] | None) -> dict[str, Any]:
    """Metadata texts, oldest first, folded key by key (a newer key wins); non-objects go under ``value``."""
    merged: dict[str, Any] = {}
    for text in versions or ():
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = text
        if isinstance(value, dict):
            merged.update(value)
        elif value is not None:
            merged["value"] = value
    return merged


def _finish(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["metadata"] = merge_metadata(row.pop("metadata_versions", None))
    return rows


def _order_sql(column: str, descending: bool) -> str:
    if column not in ORDER_COLUMNS:
        raise ValueError(f"cannot order traces by {column!r}")
    direction = "DESC" if descending else "ASC"
    return f"ORDER BY {column} {direction} NULLS LAST, id {direction}"


def list_traces(
    query: TableQuery,
    project_id: str,
    f: TraceFilter,
    *,
    order_by: str = "timestamp",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """One page of merged traces matching ``f`` (columns of the ``traces`` table, metadata merged).

    Two steps: the page's ids are chosen from the columns the filter and the order need (so the
    merge never carries every trace's input, output and metadata), then those traces are merged
    in full. Newest-first pages, the usual request, first look only at the latest days.
    """
    page = None
    if order_by == "timestamp" and descending:
        page = _newest_page(query, project_id, f, limit, offset)
    if page is None:
        page = _page_keys(query, project_id, f, order_by, descending, limit, offset)
    if not page:
        return []
    ids = [row["id"] for row in page]
    params: list[Any] = []
    # Traces known only from their observations need those folded too; most pages have none.
    orphans = not all(row["has_facts"] for row in page)
    ctes = _merged_ctes(params, since=min(row["timestamp"] for row in page), ids=ids, orphans=orphans)
    sql = f"WITH {sources(t='traces', o='observations')},\n{ctes}\nSELECT * FROM merged"
    found = {row["id"]: row for row in _finish(query.query(project_id, sql, params))}
    return [found[i] for i in ids if i in found]


# Newest-first windows tried before reading every day: the latest day, a week, a month.
_NEWEST_WINDOWS = (dt.timedelta(days=1), dt.timedelta(days=7), dt.timedelta(days=31))


def _newest_page(
    query: TableQuery, project_id: str, f: TraceFilter, limit: int, offset: int
) -> list[dict[str, Any]] | None:
    """The page of a newest-first listing found within the latest days, or None if they hold too few.

    With ``since`` = S, only partitions from S - margin on are read and traces starting before S
    are left out, so every trace kept is complete (see :func:`storage.reads.newest_within`).
    """
    return newest_within(
        query.latest_date(project_id, ("traces", "observations"), not_after=utc_today()),
        _NEWEST_WINDOWS,
        f.since,
        f.until,
        limit,
        lambda since: _page_keys(query, project_id, replace(f, since=since), "timestamp", True, limit, offset),
    )


def _page_keys(
    query: TableQuery,
    project_id: str,
    f: TraceFilter,
    order_by: str,
    descending: bool,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Ids, timestamps and whether each has facts of its own, of one page, in order."""
    params: list[Any] = []
    ctes = _merged_ctes(params, since=f.since, until=f.until, columns={*_filtered(f), order_by, "has_facts"})
    clauses = _conditions(f, params)
    params += [limit, offset]
    sql = f"""
        WITH {sources(t="traces", o="observations")},
        {ctes}
        SELECT id, timestamp, has_facts FROM merged {where(clauses)} {_order_sql(order_by, descending)} LIMIT ? OFFSET ?
    """
    return query.query(project_id, sql, params)


def count_traces(query: TableQuery, project_id: str, f: TraceFilter) -> int:
    """How many merged traces match ``f``; with no filter at all, from the in-memory trace
    indexes instead of folding every trace (see :meth:`TableQuery.count_trace_ids`)."""
    if f == TraceFilter():
        counted = query.count_trace_ids(project_id)
        if counted is not None:
            return counted
    params: list[Any] = []
    ctes = _merged_ctes(params, since=f.since, until=f.until, columns=_filtered(f))
    clauses = _conditions(f, params)
    sql = f"""
        WITH {sources(t="traces", o="observations")},
        {ctes}
        SELECT count(*) AS n FROM merged {where(clauses)}
    """
    return query.query(project_id, sql, params)[0]["n"]


def get_traces(
    query: TableQuery, project_id: str, ids: list[str], *, orphans: bool = True, dates: DateWindow | None = None
) -> dict[str, dict[str, Any]]:
    """Merged traces by id (absent ids are missing from the result); ``dates`` limits the
    partitions read (all of a trace's facts must lie within it)."""
    if not ids:
        return {}
    params: list[Any] = []
    ctes = _merged_ctes(params, ids=ids, orphans=orphans)
    sql = f"WITH {sources(t='traces', o='observations')},\n{ctes}\nSELECT * FROM merged"
    return {row["id"]: row for row in _finish(query.query(project_id, sql, params, dates=dates))}


def observation_stats(
    query: TableQuery,
    project_id: str,
    trace_ids: list[str],
    since: dt.datetime | None = None,
    dates: DateWindow | None = None,
) -> dict[str, dict[str, Any]]:
    """Per trace: observation ids (by start), ``total_cost`` and ``latency`` in seconds over its observations.

    ``since`` (the earliest trace timestamp asked about) lets the scan skip older partitions;
    ``dates`` limits it to a window of ``date=`` partitions (see :func:`storage.reads.around`).
    """
    if not trace_ids:
        return {}
    params: list[Any] = []
    clauses = [in_list("trace_id", trace_ids, params)]
    if since is not None:
        clauses += time_range("start_time", since, None, params, margin=TRACE_SPAN_MARGIN)
    sql = f"""
        WITH {sources(o="observations")}
        SELECT trace_id,
               list(id ORDER BY start_time, id) AS observation_ids,
               coalesce(sum(total_cost), 0) AS total_cost,
               epoch(max(greatest(start_time, coalesce(end_time, start_time)))
                     - min(least(start_time, coalesce(end_time, start_time)))) AS latency
        FROM o {where(clauses)}
        GROUP BY trace_id
    """
    return {row.pop("trace_id"): row for row in query.query(project_id, sql, params, dates=dates)}


def latency(observations: Iterable[dict[str, Any]]) -> float:
    """Seconds from the earliest start to the latest end among ``observations`` (rows with
    ``start_time``/``end_time``), the same rule as :func:`observation_stats`; 0.0 for none."""
    bounds = [(o["start_time"], o["end_time"] or o["start_time"]) for o in observations]
    if not bounds:
        return 0.0
    first = min(min(start, end) for start, end in bounds)
    last = max(max(start, end) for start, end in bounds)
    return (last - first).total_seconds()


def score_ids(query: TableQuery, project_id: str, trace_ids: list[str]) -> dict[str, list[str]]:
    """Per trace: the ids of its scores, oldest first."""
    if not trace_ids:
        return {}
    params: list[Any] = []
    clause = in_list("trace_id", trace_ids, params)
    sql = f"""
        WITH {sources(s="scores")}
        SELECT trace_id, list(id ORDER BY timestamp, id) AS ids FROM s WHERE {clause} GROUP BY trace_id
    """
    return {row["trace_id"]: row["ids"] for row in query.query(project_id, sql, params)}


# Reads of one trace run side by side: each is a separate DuckDB query waiting on its own scan.
_TRACE_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="trace-read")


def trace_details(
    query: TableQuery, project_id: str, trace_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]] | None:
    """A merged trace, its observations (log content joined, by start) and its scores, or None.

    The trace indexes say which days hold the trace's facts and which its observations: only
    those are read; the three reads run side by side. A trace neither index knows does not exist.
    """
    # The observations are the longest read: it starts as soon as their days are known.
    span_days = query.observation_dates(project_id, trace_id)
    # Log content joined to an observation may lie a day off its start: around() reads it too.
    observations = (
        _TRACE_READS.submit(trace_observations, query, project_id, trace_id, around(span_days[0], span_days[-1]))
        if span_days
        else None
    )
    fact_days = query.trace_dates(project_id, trace_id)
    if not fact_days and not span_days:
        return None
    scores = _TRACE_READS.submit(trace_scores, query, project_id, trace_id)
    facts = None
    if fact_days:
        facts = _TRACE_READS.submit(_trace_facts, query, project_id, trace_id, (fact_days[0], fact_days[-1]))
    # Results are taken in the order the reads used to run in, so a failing read raises as before.
    found = scores.result()
    row = facts.result() if facts is not None else None
    if row is None and span_days:  # no facts: the trace as its observations make it
        row = get_traces(query, project_id, [trace_id], dates=(span_days[0], span_days[-1])).get(trace_id)
    if row is None:
        return None
    return row, observations.result() if observations is not None else [], found


def _trace_facts(query: TableQuery, project_id: str, trace_id: str, dates: DateWindow) -> dict[str, Any] | None:
    """The merged facts of one trace, as ``get_traces(..., orphans=False, dates=dates)`` gives them.

    Nearly every trace has one fact row. The raw rows are read first — a far cheaper query than
    the fold, whose planning alone takes milliseconds — and one row is folded here; several are
    folded in memory by the fold's own SQL. Facts on several days are several rows: those are
    folded by one query straight away.
    """
    if dates[0] != dates[1]:
        return get_traces(query, project_id, [trace_id], orphans=False, dates=dates).get(trace_id)
    sql = f"WITH {sources(t='traces')}\nSELECT * FROM t WHERE id = ?"
    rows = query.query(project_id, sql, [trace_id], dates=dates)
    if len(rows) > 1:
        return _fold_rows(query, trace_id, rows)
    return _single_fact(rows[0]) if rows else None


def _fold_rows(query: TableQuery, trace_id: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Live fact rows of one trace (as ``SELECT *`` reads them) folded by the SQL of every trace
    read, in memory: the files are not read again."""
    facts = pa.Table.from_pylist(rows, schema=TABLES["traces"].schema)
    params: list[Any] = []
    sql = f"WITH {_merged_ctes(params, ids=[trace_id], orphans=False)}\nSELECT * FROM merged"
    merged = query.query_tables(sql, params, {"t": facts})
    return _finish(merged)[0] if merged else None


def _single_fact(fact: dict[str, Any]) -> dict[str, Any]:
    """A trace with one fact row as :func:`merged_facts` folds it, in the columns (and order) of
    ``merged`` after :func:`_finish`: newest non-null values are that row's, tags deduplicated
    without nulls and sorted (DuckDB sorts text by UTF-8 bytes, which is code point order)."""
    row: dict[str, Any] = {"id": fact["id"], "timestamp": fact["timestamp"]}
    for column in ("name", "user_id", "session_id", "input", "output"):
        row[column] = fact[column]
    tags = fact["tags"]
    row["tags"] = sorted({tag for tag in tags if tag is not None}) if tags is not None else []
    for column in ("release", "version"):
        row[column] = fact[column]
    row["environment"] = fact["environment"] if fact["environment"] is not None else "default"
    row["public"] = fact["public"] if fact["public"] is not None else False
    row["bookmarked"] = False
    row["created_at"] = row["updated_at"] = fact["ingested_at"]
    metadata = fact["metadata"]
    row["metadata"] = merge_metadata([metadata] if metadata is not None else None)
    return row


def trace_observations(
    query: TableQuery, project_id: str, trace_id: str, dates: DateWindow | None = None
) -> list[dict[str, Any]]:
    """Every observation of a trace (log content joined), by start time, read from ``dates``."""
    sql = f"WITH {sources(o='observations_with_content')}\nSELECT * FROM o WHERE trace_id = ? ORDER BY start_time, id"
    return query.query(project_id, sql, [trace_id], dates=dates)


def trace_scores(query: TableQuery, project_id: str, trace_id: str) -> list[dict[str, Any]]:
    """A trace's scores, oldest first."""
    if not query.partitions("scores", project_id, None):
        return []  # a project without score files (common for OpenTelemetry-only ones): no query
    sql = f"WITH {sources(s='scores')}\nSELECT * FROM s WHERE trace_id = ? ORDER BY timestamp, id"
    return query.query(project_id, sql, [trace_id])


# ---------------------------------------------------------------------------------- sessions
@dataclass
class SessionFilter:
    since: dt.datetime | None = None  # on the session's creation (its first trace), inclusive
    until: dt.datetime | None = None  # exclusive
    environments: list[str] = field(default_factory=list)


def _session_query(f: SessionFilter, params: list[Any], tail: str, select: str) -> str:
    # A session's first trace may be far older than ``since``: only the upper bound prunes.
    ctes = _merged_ctes(
        params, since=f.since, until=f.until, orphans=False, prune_since=False, columns={"session_id", "environment"}
    )
    clauses = half_open("created_at", f.since, f.until, params)
    if f.environments:
        clauses.append(in_list("environment", list(f.environments), params))
    return f"""
        WITH {sources(t="traces")},
        {ctes},
        sessions AS (
            SELECT session_id AS id, min(timestamp) AS created_at, arg_min(environment, (timestamp, id)) AS environment
            FROM merged WHERE session_id IS NOT NULL GROUP BY session_id
        )
        SELECT {select} FROM sessions {where(clauses)} {tail}
    """


def list_sessions(
    query: TableQuery, project_id: str, f: SessionFilter, *, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    """A page of sessions (``id``, ``created_at``, ``environment``), newest first."""
    params: list[Any] = []
    sql = _session_query(f, params, "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", "*")
    return query.query(project_id, sql, [*params, limit, offset])


def count_sessions(query: TableQuery, project_id: str, f: SessionFilter) -> int:
    params: list[Any] = []
    return query.query(project_id, _session_query(f, params, "", "count(*) AS n"), params)[0]["n"]


def session_traces(query: TableQuery, project_id: str, session_id: str) -> list[dict[str, Any]]:
    """The merged traces of one session, oldest first (empty if there is no such session)."""
    params: list[Any] = []
    ctes = _merged_ctes(params, orphans=False)
    sql = f"""
        WITH {sources(t="traces")},
        {ctes}
        SELECT * FROM merged WHERE session_id = ? ORDER BY timestamp, id
    """
    return _finish(query.query(project_id, sql, [*params, session_id]))


# ---------------------------------------------------------------------------------- deletion
def tombstone_traces(root: str | Path, project_id: str, trace_ids: Iterable[str]) -> int:
    """Write durable deletion tombstones for ``trace_ids``; reads hide their rows from then on.

    Compaction drops the hidden rows when it next merges their partitions.
    """
    now = time.time_ns() // 1000
    rows = [{"kind": "trace", "id": trace_id, "deleted_at": now} for trace_id in dict.fromkeys(trace_ids)]
    if not rows:
        return 0
    writer = PartitionedWriter(root)
    writer.add("deletions", project_id, rows, {"ingested_at": now, "ingest_seq": 0})
    writer.flush()
    return len(rows)
