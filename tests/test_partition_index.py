"""The trace index points a lookup by id at the days holding the trace's facts, and follows the
files as they are written, compacted, damaged and removed."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

from storage.compaction import Compactor
from storage.parquet_writer import PartitionedWriter
from storage.query import TableQuery
from storage.reads import traces as reads

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
