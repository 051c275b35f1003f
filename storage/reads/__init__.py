"""Read models over the tables: merged traces, sessions and observations (SQL only, no HTTP).

Every query here goes through :meth:`storage.query.TableQuery.query`, which expands ``{table}``
placeholders into that table's live rows and binds *their* parameters before the caller's.
So in every statement below all placeholders come first, as ``NOT MATERIALIZED`` CTEs that
take no parameters (:func:`sources`), and every ``?`` of ours comes after them. DuckDB inlines
such CTEs, so filters on them still reach the Parquet scan.

Time filters are written twice, on the timestamp and on the ``date`` Hive column, so that the
scan can skip whole ``date=`` partitions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from storage.query import DateWindow

T = TypeVar("T")

# Trace facts and a trace's observations lie within this distance of the trace's timestamp for
# every trace that is not pathologically long; partitions farther away are not read.
TRACE_SPAN_MARGIN = dt.timedelta(days=1)


def around(first: dt.date, last: dt.date) -> DateWindow:
    """The ``date=`` partitions from ``first`` to ``last`` widened by :data:`TRACE_SPAN_MARGIN`."""
    return first - TRACE_SPAN_MARGIN, last + TRACE_SPAN_MARGIN


# Which of two facts about one trace is newer: ingested later, then by sequence, time and span.
FACT_ORDER = "(ingested_at, ingest_seq, timestamp, observation_id)"


def latest_fact(column: str) -> str:
    """Aggregate: the newest non-null value of ``column`` among one trace's fact rows."""
    return f"arg_max({column}, {FACT_ORDER}) FILTER (WHERE {column} IS NOT NULL)"


def merged_facts(
    source: str, columns: Iterable[str], *, extra: Iterable[str] = (), where_sql: str = "", tags: bool = True
) -> str:
    """``SELECT`` folding the trace facts in ``source`` per trace id — the one merge rule of traces:
    the newest non-null value of each of ``columns``, tags unioned (unless ``tags`` is false), the
    earliest timestamp. ``extra`` adds aggregate columns; ``where_sql`` filters the fact rows first."""
    selected = [
        "id",
        "min(timestamp) AS timestamp",
        *(f"{latest_fact(c)} AS {c}" for c in columns),
        *(["list_sort(list_distinct(flatten(list(tags) FILTER (WHERE tags IS NOT NULL)))) AS tags"] if tags else []),
        *extra,
    ]
    return f"SELECT {', '.join(selected)} FROM {source} {where_sql} GROUP BY id"


def sources(**aliases: str) -> str:
    """``WITH`` items naming live table rows: ``sources(o="observations")`` -> ``o AS (...)``.

    The table name ``observations_with_content`` stands for observations with their GenAI log
    content joined into input/output (see :meth:`storage.query.TableQuery.query`).
    """
    items = []
    for alias, table in aliases.items():
        items.append(f"{alias} AS NOT MATERIALIZED (SELECT * FROM {{{table}}})")
    return ",\n".join(items)


def in_list(column: str, values: list[Any], params: list[Any]) -> str:
    """``column IN (?, ?, …)`` with each value bound (a plain IN list reaches the Parquet scan)."""
    if not values:
        return "FALSE"
    params.extend(values)
    return f"{column} IN ({', '.join('?' * len(values))})"


def equal(pairs: Iterable[tuple[str, Any]], params: list[Any]) -> list[str]:
    """``column = ?`` for each (column, value) whose value is given (not None)."""
    clauses = []
    for column, value in pairs:
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return clauses


def half_open(column: str, since: Any, until: Any, params: list[Any]) -> list[str]:
    """``since <= column < until``, each bound only when given."""
    clauses = []
    if since is not None:
        clauses.append(f"{column} >= ?")
        params.append(since)
    if until is not None:
        clauses.append(f"{column} < ?")
        params.append(until)
    return clauses


def time_range(
    column: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
    params: list[Any],
    *,
    margin: dt.timedelta | None = None,
) -> list[str]:
    """Conditions for ``since <= column < until``, plus ``date`` bounds for partition pruning.

    With ``margin`` only the (widened) ``date`` bounds are returned: the caller filters the
    exact timestamp after aggregating.
    """
    clauses = half_open(column, since, until, params) if margin is None else []
    widen = margin or dt.timedelta()
    if since is not None:
        clauses.append("date >= ?::DATE")
        params.append((since - widen).date())
    if until is not None:
        clauses.append("date <= ?::DATE")
        params.append((until + widen).date())
    return clauses


def where(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


def utc_today() -> dt.date:
    """Today's UTC date: where newest-first windows end at the latest (data stamped later, by
    a clock far ahead, is read by every window anyway, as windows reach to the newest day)."""
    return dt.datetime.now(dt.UTC).date()


def newest_within(
    latest: dt.date | None,
    windows: Iterable[dt.timedelta],
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    read: Callable[[dt.datetime], list[T]],
) -> list[T] | None:
    """A newest-first page read within the latest days first: ``read(S)`` for S at the start of
    each window ending on ``latest`` (the newest day with data up to today, as
    :meth:`~storage.query.TableQuery.latest_date` gives it; None: there is none), until one
    returns a full page (``limit`` items); None when none does, or when the caller's own
    ``since``/``until`` already narrow the read more.

    A page read from S on leaves out only what is older than all it kept, so a full one is exact.
    """
    if latest is None:
        return None
    start_of_latest = dt.datetime.combine(latest, dt.time())
    for window in windows:
        start = start_of_latest - window + dt.timedelta(days=1)
        if (since is not None and start <= since) or (until is not None and until <= start):
            return None  # one plain read over the caller's bounds is as narrow
        found = read(start)
        if len(found) == limit:
            return found
    return None
