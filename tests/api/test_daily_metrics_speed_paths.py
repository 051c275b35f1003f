"""Daily metrics from per-file rollups give what reading every observation gives.

``daily_metrics`` answers whole days whose partition is one compacted file from per-file rollups
(:mod:`storage.reads.daily_rollup`) and reads only the other days. Each test compares it with the
general path (rollups switched off) on data that could trip a rollup up — duplicates, a deleted
trace, late data, a trace straddling midnight, a trace without facts, rows filed under another
day — and checks that the rollups were really used.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.compaction import Compactor
from storage.parquet_writer import PartitionedWriter
from storage.query import COMPACTED_FILE_PREFIX, TableQuery
from storage.reads import metrics
from storage.reads.daily_rollup import rollups_of
from storage.reads.metrics import DailyFilter, daily_metrics
from storage.retired import live_files

P = "p"
D1, D2, D3 = dt.date(2025, 3, 10), dt.date(2025, 3, 11), dt.date(2025, 3, 12)
_seq = itertools.count(1)


def at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second))


def micros(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)


def obs(span: str, trace: str, start: dt.datetime, model: str | None = None, **extra: Any) -> dict[str, Any]:
    row = {"id": span, "trace_id": trace, "type": "GENERATION" if model else "SPAN", "start_time": micros(start)}
    return {**row, "level": "DEFAULT", "model": model, "environment": "production", **extra}


def fact(trace: str, moment: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {"id": trace, "observation_id": f"{trace}-root", "timestamp": micros(moment), **extra}


def write(root: Path, table: str, rows: list[dict[str, Any]], ingested: dt.datetime | None = None) -> None:
    """One flush: one new file per partition the rows fall in."""
    writer = PartitionedWriter(root)
    ingested_at = micros(ingested or at(D3, 23))
    writer.add(table, P, rows, {"ingested_at": ingested_at, "ingest_seq": next(_seq)})
    writer.flush()


def compact(root: Path) -> None:
    Compactor(root, settle_seconds=0).run_once(now=time.time() + 1)  # every day is over and quiet


def partition(root: Path, day: dt.date) -> Path:
    return root / "tables" / "observations" / f"project_id={P}" / f"date={day}"


def general(tq: TableQuery, f: DailyFilter, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Daily metrics read from the observations themselves (no rollups)."""
    with monkeypatch.context() as m:
        m.setattr(metrics, "_rolled_up_days", lambda *_: {})
        return daily_metrics(tq, P, f)


def rolled_up_files(tq: TableQuery) -> set[str]:
    return {p.parent.name for p in rollups_of(tq)._files}


def rolled_up_days(tq: TableQuery, f: DailyFilter, monkeypatch: pytest.MonkeyPatch) -> set[dt.date]:
    """The days whose per-model rows ``daily_metrics(f)`` takes from rollups."""
    seen: list[set[dt.date]] = []
    rows = metrics._daily_rows
    with monkeypatch.context() as m:
        m.setattr(
            metrics, "_daily_rows", lambda tq, p, f, rolled_up: seen.append(set(rolled_up)) or rows(tq, p, f, rolled_up)
        )
        daily_metrics(tq, P, f)
    return seen[0]


FILTERS = [
    DailyFilter(),
    DailyFilter(since=at(D1, 0), until=at(D3, 0) + dt.timedelta(days=1)),
    DailyFilter(since=at(D2, 0), until=at(D3, 0)),  # one whole day
    DailyFilter(since=at(D1, 12), until=at(D2, 12)),  # two part days: no rollup
    DailyFilter(since=at(D1, 23, 59)),  # open-ended, from just before midnight
    DailyFilter(until=at(D2, 0)),
    DailyFilter(trace_name="chat"),  # filters read the observations
    DailyFilter(environments=["staging"]),
]


@pytest.fixture
def data(tmp_path: Path) -> Iterator[tuple[Path, TableQuery]]:
    """Three days, each written in two flushes and compacted into one file."""
    early, late = at(D3, 20), at(D3, 21)
    usage = {"input": 10, "output": 5, "total": 15}
    write(
        tmp_path,
        "traces",
        [
            fact("a", at(D1, 10), name="chat", user_id="u1", tags=["x"]),
            fact("b", at(D1, 23, 59), name="chat"),  # straddles midnight
            fact("d", at(D2, 8), name="rag"),
            fact("e", at(D3, 9), name="rag", environment="staging"),
        ],
    )
    # a1 is sent twice: the later copy (other model and usage) wins
    write(tmp_path, "observations", [obs("a1", "a", at(D1, 10), "m1", usage_details=usage, total_cost=0.5)], early)
    write(
        tmp_path,
        "observations",
        [
            obs("a1", "a", at(D1, 10), "m2", usage_details={"input": 1, "total": 1}, total_cost=0.25),
            obs("a2", "a", at(D1, 10, 1), "m2", total_cost=0.125, usage_details={"input": 3, "cache_read": 2}),
            obs("a3", "a", at(D1, 10)),
            obs("b1", "b", at(D1, 23, 59, 30), "m1", usage_details={"output": 2, "reasoning": 1, "total": 3}),
        ],
        late,
    )
    write(
        tmp_path,
        "observations",
        [
            obs("b2", "b", at(D2, 0, 0, 30), "m1", usage_details=usage, total_cost=0.5),
            # a trace with no facts, and usage keys outside our buckets that name a side
            obs("c1", "c", at(D2, 12), "m2", usage_details={"prompt_input_extra": 5, "input": 1, "total": 6}),
            obs("d1", "d", at(D2, 8), "m1", usage_details=usage, total_cost=0.5),
        ],
        early,
    )
    write(tmp_path, "observations", [obs("d2", "d", at(D2, 8, 5), "m1", usage_details=usage)], late)
    staging = {"environment": "staging", "usage_details": usage, "total_cost": 0.25}
    write(tmp_path, "observations", [obs("e1", "e", at(D3, 9), "m1", **staging)], early)
    write(tmp_path, "observations", [obs("e2", "e", at(D3, 9, 1), "m1", **staging)], late)
    compact(tmp_path)
    for day in (D1, D2, D3):
        assert [name[: len(COMPACTED_FILE_PREFIX)] for name in live_files(partition(tmp_path, day))] == ["part-c"]
    tq = TableQuery(tmp_path)
    try:
        yield tmp_path, tq
    finally:
        tq.close()


def assert_same_as_general(tq: TableQuery, monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    found = []
    for f in FILTERS:
        got = daily_metrics(tq, P, f)
        assert got == general(tq, f, monkeypatch), f
        found.append(got)
    return found


def test_rolled_up_days_equal_reading_them(data: tuple[Path, TableQuery], monkeypatch: pytest.MonkeyPatch) -> None:
    _, tq = data
    everything = assert_same_as_general(tq, monkeypatch)[0]
    assert rolled_up_files(tq) == {f"date={D1}", f"date={D2}", f"date={D3}"}
    assert rolled_up_days(tq, DailyFilter(), monkeypatch) == {D1, D2, D3}
    assert rolled_up_days(tq, DailyFilter(since=at(D1, 12), until=at(D3, 0)), monkeypatch) == {D2}
    by_day = {d["date"]: d for d in everything}
    # a1's later copy wins; b counts as a trace of m1 on both days it has observations, of D1 as a trace
    assert by_day[str(D1)]["countTraces"] == 2
    assert by_day[str(D1)]["usage"] == [
        {"model": "m1", "inputUsage": 0, "outputUsage": 3, "totalUsage": 3, "countObservations": 1}
        | {"countTraces": 1, "totalCost": 0.0},
        {"model": "m2", "inputUsage": 6, "outputUsage": 0, "totalUsage": 1, "countObservations": 2}
        | {"countTraces": 1, "totalCost": 0.375},
        {"model": None, "inputUsage": 0, "outputUsage": 0, "totalUsage": 0, "countObservations": 1}
        | {"countTraces": 1, "totalCost": 0.0},
    ]
    # c has no facts: it counts on the day of its first observation
    assert by_day[str(D2)]["countTraces"] == 2
    d2 = by_day[str(D2)]["usage"]
    assert [(u["model"], u["countTraces"], u["countObservations"], u["inputUsage"]) for u in d2] == [
        ("m1", 2, 3, 30),
        ("m2", 1, 1, 6),
    ]
    assert [(u["model"], u["countTraces"], u["countObservations"]) for u in by_day[str(D3)]["usage"]] == [("m1", 1, 2)]


def test_deleted_trace_vanishes_from_a_rolled_up_day(
    data: tuple[Path, TableQuery], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, tq = data
    before = daily_metrics(tq, P, DailyFilter())
    # deleted after every row of the fixture was received (at D3 23:00 at the latest)
    write(root, "deletions", [{"kind": "trace", "id": "d", "deleted_at": micros(at(D3, 23, 30))}])
    after = assert_same_as_general(tq, monkeypatch)[0]
    assert rolled_up_days(tq, DailyFilter(), monkeypatch) == {D1, D3}  # only D2's file holds trace d
    d2 = {d["date"]: d for d in after}[str(D2)]
    assert d2["countTraces"] == 1  # c only
    assert [(u["model"], u["countTraces"], u["countObservations"]) for u in d2["usage"]] == [("m1", 1, 1), ("m2", 1, 1)]
    assert [d for d in after if d["date"] != str(D2)] == [d for d in before if d["date"] != str(D2)]
    # a second deletion, in a new tombstone file: the deleted ids are read again
    write(root, "deletions", [{"kind": "trace", "id": "e", "deleted_at": micros(at(D3, 23, 45))}])
    again = assert_same_as_general(tq, monkeypatch)[0]
    assert rolled_up_days(tq, DailyFilter(), monkeypatch) == {D1}
    assert [d["date"] for d in again] == [str(D2), str(D1)]  # D3 had only trace e


def test_late_data_for_a_compacted_day(data: tuple[Path, TableQuery], monkeypatch: pytest.MonkeyPatch) -> None:
    root, tq = data
    daily_metrics(tq, P, DailyFilter())
    first = {p.name for p in rollups_of(tq)._files}
    # a late observation of D1 and a newer copy of b1 land in a second file of D1's partition
    write(
        root,
        "observations",
        [
            obs("b1", "b", at(D1, 23, 59, 30), "m2", usage_details={"input": 4, "total": 4}, total_cost=0.5),
            obs("f1", "f", at(D1, 6), "m1", usage_details={"input": 1, "total": 1}),
        ],
        at(D3, 23, 30),
    )
    late = assert_same_as_general(tq, monkeypatch)[0]
    d1 = {d["date"]: d for d in late}[str(D1)]
    assert d1["countTraces"] == 3 and d1["countObservations"] == 5
    assert [(u["model"], u["countTraces"], u["inputUsage"]) for u in d1["usage"]] == [
        ("m1", 1, 1),
        ("m2", 2, 10),
        (None, 1, 0),
    ]
    compact(root)  # D1 is one file again, under a new name: rolled up afresh, the old rollup forgotten
    assert assert_same_as_general(tq, monkeypatch)[0] == late
    assert rolled_up_files(tq) == {f"date={D1}", f"date={D2}", f"date={D3}"}
    assert len({p.name for p in rollups_of(tq)._files} - first) == 1


def test_rows_filed_under_another_day(data: tuple[Path, TableQuery], monkeypatch: pytest.MonkeyPatch) -> None:
    """A compacted file holding an observation that started on another day (the writer never
    files rows so, but a rollup must not be wrong if one did): neither day is taken from rollups."""
    root, tq = data
    assert_same_as_general(tq, monkeypatch)
    (d3_file,) = (partition(root, D3) / name for name in live_files(partition(root, D3)))
    (d2_file,) = (partition(root, D2) / name for name in live_files(partition(root, D2)))
    stray = pq.read_table(d2_file).slice(0, 1)  # an observation of D2 ...
    merged = pa.concat_tables([pq.read_table(d3_file), stray])  # ... filed under D3 as well
    pq.write_table(merged, partition(root, D3) / f"{COMPACTED_FILE_PREFIX}9-stray.parquet")
    d3_file.unlink()
    everything = assert_same_as_general(tq, monkeypatch)[0]
    d2 = {d["date"]: d for d in everything}[str(D2)]
    assert sum(u["countObservations"] for u in d2["usage"]) == 5  # 4 of its own and the stray copy
