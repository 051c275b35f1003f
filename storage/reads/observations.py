"""Observations: filtered pages (offset or keyset), single lookups, and the facts of their traces.

Observations whose input/output is returned are read with GenAI log content joined
(``observations_with_content``). Filters on the user or session apply to the *merged* trace
facts of the observation's trace (latest non-null value), as Langfuse filters them.

An observation is a *root* when it has no parent, or when its parent never arrived (a span
under a filtered HTTP parent, which is how the Langfuse SDK's app roots usually look).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from storage.query import NO_DAYS, DateWindow, TableQuery
from storage.reads import around, equal, in_list, latest_fact, newest_within, sources, time_range, utc_today, where

# ``parent_observation_id`` filter value that matches observations without a parent.
NO_PARENT = ""


@dataclass
class ObservationFilter:
    """Conditions on observations; ``since`` inclusive and ``until`` exclusive, on ``start_time``."""

    trace_id: str | None = None
    type: str | None = None
    name: str | None = None
    level: str | None = None
    version: str | None = None
    parent_observation_id: str | None = None  # NO_PARENT: only observations without a parent
    environments: list[str] = field(default_factory=list)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    user_id: str | None = None
    session_id: str | None = None
    is_root: bool | None = None

    @property
    def needs_traces(self) -> bool:
        return self.user_id is not None or self.session_id is not None


@dataclass(frozen=True)
class Cursor:
    """The last row of a keyset page in (start_time DESC, id DESC, trace_id DESC) order."""

    start_time: dt.datetime
    id: str
    trace_id: str


def _trace_fact(column: str, params: list[Any], value: str) -> str:
    # Only a trace that ever stated ``value`` can hold it as its latest fact: the merge runs over
    # those traces alone, not over every trace of the project.
    params += [value, value]
    return (
        f"o.trace_id IN (SELECT id FROM t WHERE id IN (SELECT id FROM t WHERE {column} = ?)"
        f" GROUP BY id HAVING {latest_fact(column)} = ?)"
    )


_PARENT_ARRIVED = "EXISTS (SELECT 1 FROM p WHERE p.trace_id = o.trace_id AND p.id = o.parent_observation_id)"


def _conditions(f: ObservationFilter, params: list[Any]) -> list[str]:
    clauses = [f"o.{c}" for c in time_range("start_time", f.since, f.until, params)]
    clauses += equal(
        (
            ("o.trace_id", f.trace_id),
            ("o.type", f.type),
            ("o.name", f.name),
            ("o.level", f.level),
            ("o.version", f.version),
        ),
        params,
    )
    if f.parent_observation_id == NO_PARENT:
        clauses.append("o.parent_observation_id IS NULL")
    elif f.parent_observation_id is not None:
        clauses.append("o.parent_observation_id = ?")
        params.append(f.parent_observation_id)
    if f.environments:
        clauses.append(in_list("o.environment", list(f.environments), params))
    if f.user_id is not None:
        clauses.append(_trace_fact("user_id", params, f.user_id))
    if f.session_id is not None:
        clauses.append(_trace_fact("session_id", params, f.session_id))
    if f.is_root is True:
        clauses.append(f"(o.parent_observation_id IS NULL OR NOT {_PARENT_ARRIVED})")
    elif f.is_root is False:
        clauses.append(f"(o.parent_observation_id IS NOT NULL AND {_PARENT_ARRIVED})")
    return clauses


def _sources(f: ObservationFilter) -> str:
    tables = {"o": "observations"}
    if f.needs_traces:
        tables["t"] = "traces"
    if f.is_root is not None:
        tables["p"] = "observations"
    return sources(**tables)


def _window(query: TableQuery, project_id: str, f: ObservationFilter) -> DateWindow | None:
    """For a filter on one trace, the days its observations lie on (from the trace index, widened
    for the log content they join); None for other filters: every day is read."""
    if f.trace_id is None:
        return None
    days = query.observation_dates(project_id, f.trace_id)
    return around(days[0], days[-1]) if days else NO_DAYS


# Newest-first pages look at the latest day, then the latest week, before reading every day. No
# longer window: a filter matching little would read nearly everything several times over.
_NEWEST_WINDOWS = (dt.timedelta(days=1), dt.timedelta(days=7))


def _page(
    query: TableQuery, project_id: str, f: ObservationFilter, cursor: Cursor | None, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """Rows of one page (newest start first, after ``cursor``) in two steps: the page's keys from a
    narrow scan, then only those rows whole.

    Deduplicating every column of every row just to keep a page of them is what makes a page
    slow; the keys need only a few columns, and a lookup by trace id reaches the Parquet scan.
    """
    # One trace's rows are windowed by the trace index instead. A user or session filter looks
    # its traces up over every day on each try: for a sparse user the tries would cost more
    # than they save.
    windowed = f.trace_id is None and not f.needs_traces
    found = _newest_keys(query, project_id, f, cursor, limit, offset) if windowed else None
    if found is None:
        found = _keys(query, project_id, f, cursor, limit, offset, _window(query, project_id, f))
    if not found:
        return []
    # A row lies in the partition of its start's day (log content it joins may be a day off).
    days = around(found[-1]["start_time"].date(), found[0]["start_time"].date())
    return rows_by_key(query, project_id, [(r["trace_id"], r["id"]) for r in found], dates=days)


def _newest_keys(
    query: TableQuery, project_id: str, f: ObservationFilter, cursor: Cursor | None, limit: int, offset: int
) -> list[dict[str, Any]] | None:
    """The page's keys found within the latest days (before the cursor), or None if they hold too few.

    With ``since`` = S only rows starting from S on are kept (the ``date`` condition skips older
    partitions); the traces and parents a filter looks up are read from every day, as without a
    window (see :func:`storage.reads.newest_within`).
    """
    latest = query.latest_date(project_id, ("observations",), not_after=utc_today())
    if latest is not None and cursor is not None:
        latest = min(latest, cursor.start_time.date())
    return newest_within(
        latest,
        _NEWEST_WINDOWS,
        f.since,
        f.until,
        limit,
        lambda since: _keys(query, project_id, replace(f, since=since), cursor, limit, offset),
    )


def _keys(
    query: TableQuery,
    project_id: str,
    f: ObservationFilter,
    cursor: Cursor | None,
    limit: int,
    offset: int,
    dates: DateWindow | None = None,
) -> list[dict[str, Any]]:
    """(trace id, id, start time) of the rows of one page, in order; ``dates`` limits the
    partitions every source reads."""
    params: list[Any] = []
    clauses = _conditions(f, params)
    if cursor is not None:
        clauses.append(
            "(o.start_time < ? OR (o.start_time = ? AND (o.id < ? OR (o.id = ? AND o.trace_id < ?))))"
            " AND o.date <= ?::DATE"
        )
        params += [cursor.start_time, cursor.start_time, cursor.id, cursor.id, cursor.trace_id]
        params.append(cursor.start_time.date())
    sql = f"""
        WITH {_sources(f)}
        SELECT o.trace_id, o.id, o.start_time FROM o {where(clauses)}
        ORDER BY o.start_time DESC, o.id DESC, o.trace_id DESC LIMIT ? OFFSET ?
    """
    return query.query(project_id, sql, [*params, limit, offset], dates=dates)


def rows_by_key(
    query: TableQuery, project_id: str, keys: list[tuple[str, str]], dates: DateWindow | None = None
) -> list[dict[str, Any]]:
    """Observations (with content) by (trace id, id), in the order of ``keys``; missing ones
    skipped; ``dates`` limits the partitions read."""
    if not keys:
        return []
    params: list[Any] = []
    traces = in_list("trace_id", sorted({t for t, _ in keys}), params)
    ids = in_list("id", sorted({i for _, i in keys}), params)
    sql = f"WITH {sources(o='observations_with_content')}\nSELECT * FROM o WHERE {traces} AND {ids}"
    found = {(r["trace_id"], r["id"]): r for r in query.query(project_id, sql, params, dates=dates)}
    return [found[k] for k in keys if k in found]


def list_observations(
    query: TableQuery, project_id: str, f: ObservationFilter, *, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """A page of observations (with content), newest start first."""
    return _page(query, project_id, f, None, limit, offset)


def count_observations(query: TableQuery, project_id: str, f: ObservationFilter) -> int:
    params: list[Any] = []
    clauses = _conditions(f, params)
    sql = f"WITH {_sources(f)}\nSELECT count(*) AS n FROM o {where(clauses)}"
    return query.query(project_id, sql, params, dates=_window(query, project_id, f))[0]["n"]


def observations_after(
    query: TableQuery,
    project_id: str,
    f: ObservationFilter,
    *,
    cursor: Cursor | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` observations (with content) after ``cursor`` in (start_time, id, trace_id) descending order.

    Keyset pagination: rows inserted while a client pages do not shift later pages.
    """
    return _page(query, project_id, f, cursor, limit)


def get_observation(query: TableQuery, project_id: str, observation_id: str) -> dict[str, Any] | None:
    """One observation (with content) by id, or None."""
    sql = f"WITH {sources(o='observations_with_content')}\nSELECT * FROM o WHERE id = ? ORDER BY trace_id LIMIT 1"
    rows = query.query(project_id, sql, [observation_id])
    return rows[0] if rows else None


def arrived_parents(query: TableQuery, project_id: str, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Of the parents the ``rows`` name, the (trace id, id) pairs that are stored."""
    wanted = {(r["trace_id"], r["parent_observation_id"]) for r in rows if r.get("parent_observation_id")}
    if not wanted:
        return set()
    params: list[Any] = []
    traces = in_list("trace_id", sorted({t for t, _ in wanted}), params)
    ids = in_list("id", sorted({i for _, i in wanted}), params)
    sql = f"WITH {sources(o='observations')}\nSELECT trace_id, id FROM o WHERE {traces} AND {ids}"
    # A parent starts before its child, and (but for clock skew) no earlier than its trace's facts.
    starts = [r["start_time"].date() for r in rows]
    trace_days = query.trace_dates(project_id, *{t for t, _ in wanted})
    found = query.query(project_id, sql, params, dates=around(min(starts + trace_days[:1]), max(starts)))
    return {(r["trace_id"], r["id"]) for r in found} & wanted
