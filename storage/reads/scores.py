"""Scores as Langfuse's score endpoints list them: filters, page or keyset order, trace facts.

Scores are read newest first (``timestamp DESC, id DESC``). The v1/v2 lists page with
OFFSET; the v3 list continues after a ``(timestamp, id)`` position, so inserts never shift a
page already handed out. A score's trace facts (user, tags, environment, session) are the
merged ``traces`` facts of its trace id: the latest non-null value per field, tags unioned.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.parquet_writer import PartitionedWriter
from storage.query import TableQuery
from storage.reads import in_list, merged_facts, sources, time_range, where

# Which of two facts about one trace is newer (as storage.reads.traces orders them).
_TRACE_FACTS = ("user_id", "session_id", "environment")
COMPARISONS = ("<", ">", "<=", ">=", "!=", "=")


@dataclass
class ScoreFilter:
    """Conditions on scores; lists match any of their values, ``since`` inclusive, ``until`` exclusive."""

    ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    data_types: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    config_ids: list[str] = field(default_factory=list)
    queue_ids: list[str] = field(default_factory=list)
    author_user_ids: list[str] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)
    observation_ids: list[str] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    dataset_run_ids: list[str] = field(default_factory=list)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    comparison: tuple[str, float] | None = None  # (operator, value) on the numeric value
    numeric_values: list[float] = field(default_factory=list)
    string_values: list[str] = field(default_factory=list)
    value_min: float | None = None
    value_max: float | None = None
    exclude_data_types: list[str] = field(default_factory=list)
    traces_only: bool = False  # v1: only scores of a trace
    # Conditions on the score's trace (need the trace facts).
    user_id: str | None = None
    trace_tags: list[str] = field(default_factory=list)

    @property
    def needs_trace(self) -> bool:
        return self.user_id is not None or bool(self.trace_tags)


def _conditions(f: ScoreFilter, params: list[Any]) -> list[str]:
    clauses: list[str] = []
    for column, values in (
        ("id", f.ids),
        ("name", f.names),
        ("source", f.sources),
        ("data_type", f.data_types),
        ("environment", f.environments),
        ("config_id", f.config_ids),
        ("queue_id", f.queue_ids),
        ("author_user_id", f.author_user_ids),
        ("trace_id", f.trace_ids),
        ("observation_id", f.observation_ids),
        ("session_id", f.session_ids),
        ("dataset_run_id", f.dataset_run_ids),
    ):
        if values:
            clauses.append(in_list(column, values, params))
    if f.exclude_data_types:
        clauses.append(f"NOT {in_list('data_type', f.exclude_data_types, params)}")
    if f.traces_only:
        clauses.append("trace_id IS NOT NULL")
    clauses += time_range("timestamp", f.since, f.until, params)
    if f.comparison is not None:
        operator, value = f.comparison
        if operator not in COMPARISONS:
            raise ValueError(f"unknown comparison {operator!r}")
        clauses.append(f"value {operator} ?")
        params.append(value)
    if f.numeric_values:
        clauses.append(in_list("value", f.numeric_values, params))
    if f.string_values:
        clauses.append(in_list("string_value", f.string_values, params))
    if f.value_min is not None:
        clauses.append("value >= ?")
        params.append(f.value_min)
    if f.value_max is not None:
        clauses.append("value <= ?")
        params.append(f.value_max)
    return clauses


def _trace_conditions(f: ScoreFilter, params: list[Any]) -> list[str]:
    clauses: list[str] = []
    if f.user_id is not None:
        clauses.append("trace_user_id = ?")
        params.append(f.user_id)
    if f.trace_tags:
        clauses.append("list_has_all(coalesce(trace_tags, []::VARCHAR[]), ?::VARCHAR[])")
        params.append(list(f.trace_tags))
    return clauses


def _statement(f: ScoreFilter, params: list[Any], *, with_trace: bool, select: str, tail: str = "") -> str:
    """Scores matching ``f`` (as ``matched``), joined to their trace facts when needed."""
    with_trace = with_trace or f.needs_trace
    names = {"s": "scores", "t": "traces"} if with_trace else {"s": "scores"}
    text = f"WITH {sources(**names)},\nmatched AS (SELECT * FROM s {where(_conditions(f, params))})"
    if not with_trace:
        return f"{text}\nSELECT {select} FROM matched {tail}"
    facts = merged_facts(
        "t", _TRACE_FACTS, where_sql="WHERE id IN (SELECT trace_id FROM matched WHERE trace_id IS NOT NULL)"
    )
    text += f""",
        facts AS ({facts}),
        joined AS (
            SELECT matched.*, facts.user_id AS trace_user_id, facts.tags AS trace_tags,
                   facts.environment AS trace_environment, facts.session_id AS trace_session_id
            FROM matched LEFT JOIN facts ON facts.id = matched.trace_id
        )"""
    return f"{text}\nSELECT {select} FROM joined {where(_trace_conditions(f, params))} {tail}"


def list_scores(
    query: TableQuery, project_id: str, f: ScoreFilter, *, offset: int, limit: int, with_trace: bool
) -> tuple[list[dict[str, Any]], int]:
    """One page of scores (newest first) and the number of all matching scores.

    With ``with_trace`` each row also has ``trace_user_id``, ``trace_tags``,
    ``trace_environment`` and ``trace_session_id`` (None when the trace is unknown).
    """
    params: list[Any] = []
    sql = _statement(
        f, params, with_trace=with_trace, select="*", tail="ORDER BY timestamp DESC, id DESC LIMIT ? OFFSET ?"
    )
    rows = query.query(project_id, sql, [*params, limit, offset])
    count_params: list[Any] = []
    count_sql = _statement(f, count_params, with_trace=with_trace, select="count(*) AS n")
    total = query.query(project_id, count_sql, count_params)[0]["n"]
    return rows, total


def list_scores_after(
    query: TableQuery, project_id: str, f: ScoreFilter, *, after: tuple[dt.datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` scores (newest first) strictly after the position ``after`` = (timestamp, id)."""
    params: list[Any] = []
    tail = "ORDER BY timestamp DESC, id DESC LIMIT ?"
    if after is not None:
        tail = f"WHERE timestamp < ? OR (timestamp = ? AND id < ?) {tail}"
    sql = _statement(f, params, with_trace=False, select="*", tail=tail)
    position = [after[0], after[0], after[1]] if after is not None else []
    return query.query(project_id, sql, [*params, *position, limit])


def get_score(query: TableQuery, project_id: str, score_id: str) -> dict[str, Any] | None:
    """The live score with ``score_id`` in the project, or None."""
    rows = query.query(project_id, f"WITH {sources(s='scores')} SELECT * FROM s WHERE id = ? LIMIT 1", [score_id])
    return rows[0] if rows else None


def tombstone_score(root: str | Path, project_id: str, score_id: str) -> None:
    """Write a durable deletion tombstone for the score; reads hide it from then on.

    The tombstone hides the id whenever the score arrives, so a score still on its way through
    the WAL is deleted too. Compaction drops the hidden rows when it next merges their partitions.
    """
    now = time.time_ns() // 1000
    writer = PartitionedWriter(root)
    writer.add(
        "deletions",
        project_id,
        [{"kind": "score", "id": score_id, "deleted_at": now}],
        {
            "ingested_at": now,
            "ingest_seq": 0,
        },
    )
    writer.flush()
