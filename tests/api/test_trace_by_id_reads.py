"""The read behind ``GET /traces/{id}``: fact rows are read raw and folded apart from the tables
(one row in Python, several of one day by the fold's SQL over the rows read); either way the
trace must come out exactly as the SQL fold over the tables (:func:`storage.reads.traces.get_traces`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage.parquet_writer import PartitionedWriter
from storage.query import TableQuery
from storage.reads import traces as reads

T0_US = 1_764_000_000_000_000  # 2025-11-24T16:00:00Z
DAY_US = 86_400_000_000

# One fact row each: every way a column can be empty, odd or out of order.
SINGLE: dict[str, dict[str, Any]] = {
    "bare": {},
    "full": {
        "name": "n",
        "user_id": "u",
        "session_id": "s",
        "input": '{"q": 1}',
        "output": '"a"',
        "release": "r",
        "version": "v",
        "environment": "prod",
        "public": True,
        "tags": ["b", "a"],
        "metadata": '{"k": 1}',
    },
    "tags-messy": {"tags": ["z", None, "a", "z", "É", "é", "Z", "ß", "😀", "", "a"]},
    "tags-empty": {"tags": []},
    "tags-only-null": {"tags": [None]},
    "metadata-list": {"metadata": "[1, 2]"},
    "metadata-text": {"metadata": "not json"},
    "metadata-null-json": {"metadata": "null"},
    "public-false": {"public": False, "environment": "default"},
    "empty-strings": {"name": "", "user_id": "", "environment": "", "input": "", "metadata": "{}"},
}


def _write(root: Path, table: str, rows: list[dict[str, Any]], seq: int, project: str = "p") -> None:
    writer = PartitionedWriter(root)
    writer.add(table, project, rows, {"ingested_at": T0_US + seq, "ingest_seq": seq})
    writer.flush()


def _fact(trace_id: str, span: str = "root", offset_us: int = 0, **values: Any) -> dict[str, Any]:
    return {"id": trace_id, "observation_id": span, "timestamp": T0_US + offset_us, **values}


def _span(trace_id: str, span: str, offset_us: int = 0, **values: Any) -> dict[str, Any]:
    return {
        "id": span,
        "trace_id": trace_id,
        "type": "SPAN",
        "level": "DEFAULT",
        "start_time": T0_US + offset_us,
        **values,
    }


@pytest.fixture
def query(tmp_path: Path) -> TableQuery:
    _write(tmp_path, "traces", [_fact(f"one-{name}", **values) for name, values in SINGLE.items()], seq=1)
    # Several fact rows: later ingests win per column, ties broken by sequence, time and span.
    _write(tmp_path, "traces", [_fact("many", name="first", tags=["x"], metadata='{"a": 1, "b": 1}')], seq=1)
    _write(tmp_path, "traces", [_fact("many", "child", -5, name="second", tags=["y", "x"], metadata='{"b": 2}')], seq=2)
    _write(tmp_path, "traces", [_fact("many", "late", DAY_US, user_id="u2")], seq=3)
    # Several fact rows on one day: folded in memory.
    _write(tmp_path, "traces", [_fact("same-day", name="a", tags=["p"], public=True)], seq=1)
    _write(tmp_path, "traces", [_fact("same-day", "child", 5, environment="e", tags=["o", None])], seq=2)
    _write(tmp_path, "traces", [_fact("same-day", "other", -5, name="b", metadata="[1]", public=None)], seq=2)
    # The same fact row ingested twice (a redelivery) is one row, not two.
    _write(tmp_path, "traces", [_fact("twice", name="old")], seq=1)
    _write(tmp_path, "traces", [_fact("twice", name="new", tags=["t"])], seq=4)
    _write(tmp_path, "traces", [_fact("deleted", name="gone")], seq=1)
    _write(
        tmp_path,
        "observations",
        [_span("one-full", "s1", 10), _span("one-full", "s2", 5), _span("orphan", "s3", 7, environment="staging")],
        seq=1,
    )
    reads.tombstone_traces(tmp_path, "p", ["deleted"])
    return TableQuery(tmp_path)


TRACE_IDS = [*(f"one-{name}" for name in SINGLE), "many", "same-day", "twice", "deleted", "orphan", "absent"]


@pytest.mark.parametrize("trace_id", TRACE_IDS)
def test_trace_details_fold_as_the_sql_merge_does(query, trace_id):
    expected = reads.get_traces(query, "p", [trace_id]).get(trace_id)
    found = reads.trace_details(query, "p", trace_id)
    if expected is None:
        assert found is None
        return
    assert found is not None
    row, observations, scores = found
    # Same values, same types and the same column order as the SQL fold.
    assert list(row.items()) == list(expected.items())
    assert [type(v) for v in row.values()] == [type(v) for v in expected.values()]
    assert observations == query.observations("p", trace_id)
    assert scores == []


def test_folded_facts_follow_the_merge_rules(query):
    row = reads.trace_details(query, "p", "one-tags-messy")[0]
    assert row["tags"] == ["", "Z", "a", "z", "É", "ß", "é", "😀"]
    bare = reads.trace_details(query, "p", "one-bare")[0]
    assert (bare["tags"], bare["metadata"], bare["environment"], bare["public"]) == ([], {}, "default", False)
    many = reads.trace_details(query, "p", "many")[0]
    assert (many["name"], many["user_id"], many["tags"], many["metadata"]) == (
        "second",
        "u2",
        ["x", "y"],
        {"a": 1, "b": 2},
    )


def test_scores_are_read_once_the_project_has_score_files(query, tmp_path):
    assert reads.trace_details(query, "p", "one-full")[2] == []
    score = {"id": "sc", "trace_id": "one-full", "name": "q", "value": 1.0, "data_type": "NUMERIC", "source": "API"}
    _write(tmp_path, "scores", [score | {"timestamp": T0_US, "environment": "default"}], seq=1)
    [found] = reads.trace_details(query, "p", "one-full")[2]
    assert (found["id"], found["value"]) == ("sc", 1.0)
