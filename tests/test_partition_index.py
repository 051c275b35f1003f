"""The trace index points a lookup by id at the days holding the trace's facts, and follows the
files as they are written, compacted, damaged and removed."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from pathlib import Path

import duckdb
import pytest

from storage.compaction import Compactor
from storage.parquet_writer import PartitionedWriter
from storage.query import TableQuery
from storage.reads import traces as reads
from tests.conftest import wait_until

DAY_US = 86_400_000_000
NOW = time.time()
TODAY_US = int(NOW // 86400) * DAY_US
TODAY = dt.datetime.fromtimestamp(NOW, dt.UTC).date()


def _day(offset: int) -> dt.date:
    return TODAY + dt.timedelta(days=offset)


def _write_facts(root: Path, facts: list[tuple[str, int]], seq: int = 1, project: str = "p") -> None:
    """One flush of trace fact rows: (trace id, day offset from today)."""
    writer = PartitionedWriter(root)
    rows = [
        {"id": trace_id, "observation_id": f"{trace_id}-root", "timestamp": TODAY_US + offset * DAY_US + seq}
        for trace_id, offset in facts
    ]
    writer.add("traces", project, rows, {"ingested_at": seq, "ingest_seq": seq})
    writer.flush()


def _partition(root: Path, day: dt.date, project: str = "p") -> Path:
    return root / "tables/traces" / f"project_id={project}" / f"date={day.isoformat()}"


def test_a_trace_is_found_on_exactly_the_days_holding_its_facts(tmp_path):
    _write_facts(tmp_path, [(f"t{i}", -(i % 5)) for i in range(50)] + [("long", -3), ("long", -1)])
    query = TableQuery(tmp_path)
    for i in range(50):
        assert query.trace_dates("p", f"t{i}") == [_day(-(i % 5))]
    assert query.trace_dates("p", "long") == [_day(-3), _day(-1)]
    assert query.trace_dates("p", "absent") == []
    assert query.trace_dates("other-project", "t1") == []
    # The trace read through the index is the trace: its facts from both days merged.
    assert reads.trace_details(query, "p", "long")[0]["timestamp"].date() == _day(-3)


def test_files_written_after_the_first_lookup_are_seen(tmp_path):
    _write_facts(tmp_path, [("a", 0)])
    query = TableQuery(tmp_path)
    assert query.trace_dates("p", "b") == []
    _write_facts(tmp_path, [("b", -2), ("a", -1)], seq=2)
    assert query.trace_dates("p", "b") == [_day(-2)]
    assert query.trace_dates("p", "a") == [_day(-1), _day(0)]


def test_compaction_and_retention_keep_answers_right(tmp_path):
    for seq in range(10):  # ten small files per day, then compaction folds each day into one
        _write_facts(tmp_path, [(f"t{seq}-{d}", -d) for d in range(3)], seq=seq + 1)
    query = TableQuery(tmp_path)
    before = {f"t{seq}-{d}": query.trace_dates("p", f"t{seq}-{d}") for seq in range(10) for d in range(3)}
    stats = Compactor(tmp_path, min_files=8, settle_seconds=0).run_once(now=NOW + 3600)
    assert stats.files_in == 30 and stats.files_out == 3
    after = {trace_id: query.trace_dates("p", trace_id) for trace_id in before}
    assert after == before
    shutil.rmtree(_partition(tmp_path, _day(-2)))  # what retention does to an old day
    assert query.trace_dates("p", "t0-2") == []
    assert query.trace_dates("p", "t0-1") == [_day(-1)]


def test_an_unreadable_file_makes_its_day_a_candidate_not_an_error(tmp_path):
    _write_facts(tmp_path, [("a", 0), ("b", -1)])
    (_partition(tmp_path, _day(-1)) / "part-garbage.parquet").write_bytes(b"not parquet at all")
    query = TableQuery(tmp_path)
    # "a" may be in the damaged file: its day is read too (the read then reports the damage).
    assert query.trace_dates("p", "a") == [_day(-1), _day(0)]
    assert query.trace_dates("p", "b") == [_day(-1)]


def _write_spans(root: Path, spans: list[tuple[str, int]], seq: int = 1, project: str = "p") -> None:
    """One flush of observation rows: (trace id, day offset from today)."""
    writer = PartitionedWriter(root)
    rows = [
        {
            "id": f"{trace_id}-{i}",
            "trace_id": trace_id,
            "start_time": TODAY_US + offset * DAY_US + seq,
            "type": "SPAN",
            "level": "DEFAULT",
        }
        for i, (trace_id, offset) in enumerate(spans)
    ]
    writer.add("observations", project, rows, {"ingested_at": seq, "ingest_seq": seq})
    writer.flush()


def _counts(query: TableQuery) -> tuple[int, int]:
    """The unfiltered trace count (from the indexes) and the same count folded in SQL."""
    folded = reads.count_traces(query, "p", reads.TraceFilter(environments=["default"]))  # every trace here
    return reads.count_traces(query, "p", reads.TraceFilter()), folded


def test_the_trace_count_from_the_indexes_is_the_count_of_merged_traces(tmp_path):
    query = TableQuery(tmp_path)
    assert _counts(query) == (0, 0)
    # Facts of 30 traces over three days, written twice (duplicates), spans of 20 of them plus
    # 5 traces known only from their spans (no root arrived).
    for seq in (1, 2):
        _write_facts(tmp_path, [(f"t{i}", -(i % 3)) for i in range(30)], seq=seq)
    _write_spans(tmp_path, [(f"t{i}", -(i % 3)) for i in range(20)] + [(f"orphan{i}", -1) for i in range(5)])
    assert _counts(query) == (35, 35)
    reads.tombstone_traces(tmp_path, "p", ["t1", "orphan2", "never-existed"])
    assert _counts(query) == (33, 33)
    Compactor(tmp_path, min_files=1, settle_seconds=0).run_once(now=NOW + 3600)
    _write_spans(tmp_path, [("late", 0)], seq=3)  # a file written after the indexes were read
    assert _counts(query) == (34, 34)
    assert reads.count_traces(query, "other-project", reads.TraceFilter()) == 0


def test_an_unreadable_file_makes_the_count_fold_in_sql_and_report_the_damage(tmp_path):
    _write_facts(tmp_path, [("a", 0)])
    query = TableQuery(tmp_path)
    assert reads.count_traces(query, "p", reads.TraceFilter()) == 1
    (_partition(tmp_path, _day(0)) / "part-garbage.parquet").write_bytes(b"not parquet at all")
    assert query.count_trace_ids("p") is None
    with pytest.raises(duckdb.Error):
        reads.count_traces(query, "p", reads.TraceFilter())


def test_a_trace_is_read_whole_from_the_days_its_observations_lie_on(tmp_path):
    """Observations days after the trace's facts (a long-running trace) are read, and so is a
    trace known only from its observations; a trace no index knows is absent without a scan."""
    from storage.reads import observations as observation_reads

    _write_facts(tmp_path, [("long", -4)])
    _write_spans(tmp_path, [("long", -4), ("long", 0), ("orphan", -2)])
    query = TableQuery(tmp_path)
    assert query.observation_dates("p", "long") == [_day(-4), _day(0)]
    row, observations, _ = reads.trace_details(query, "p", "long")
    assert row["timestamp"].date() == _day(-4)
    assert [o["start_time"].date() for o in observations] == [_day(-4), _day(0)]
    by_filter = observation_reads.list_observations(
        query, "p", observation_reads.ObservationFilter(trace_id="long"), limit=10
    )
    assert len(by_filter) == 2
    row, observations, _ = reads.trace_details(query, "p", "orphan")
    assert row["timestamp"].date() == _day(-2) and len(observations) == 1
    assert reads.trace_details(query, "p", "absent") is None
    assert (
        observation_reads.list_observations(
            query, "p", observation_reads.ObservationFilter(trace_id="absent"), limit=10
        )
        == []
    )


def test_the_server_says_when_its_trace_indexes_are_read(start_server, caplog):
    # bench/query.py waits for this line: lookups timed before it would measure the start-up.
    caplog.set_level(logging.INFO, logger="spanfuse")
    start_server()
    wait_until(lambda: "trace indexes read projects=" in caplog.text, timeout=30)
