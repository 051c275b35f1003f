"""Newest-first observation pages read the latest days first; pages must stay exact wherever the
page boundary falls: within the latest day, across the week, and past it into every day."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storage.parquet_writer import PartitionedWriter
from storage.query import TableQuery
from storage.reads import observations as reads
from storage.reads import traces as trace_reads

DAY_US = 86_400_000_000
TODAY_US = int(time.time() // 86400) * DAY_US
# (day offset, observations) per trace: a few on the latest day, more within the week, the rest older.
TRACES = [(0, 3), (0, 2), (-2, 4), (-5, 3), (-12, 5), (-20, 2), (-29, 4), (-29, 1)]


def _write(root: Path) -> list[tuple[int, str, str, str]]:
    """Trace facts (user by trace parity) and observations; returns every row as
    (start µs, id, trace id, user), newest first as pages order them."""
    writer = PartitionedWriter(root)
    facts, spans, rows = [], [], []
    for t, (day, count) in enumerate(TRACES):
        trace_id, user = f"trace-{t}", f"user-{t % 2}"
        start = TODAY_US + day * DAY_US + 3_600_000_000
        facts.append({"id": trace_id, "observation_id": f"{t}-0", "timestamp": start, "user_id": user})
        for i in range(count):
            span_id = f"{t}-{i}"
            spans.append(
                {
                    "id": span_id,
                    "trace_id": trace_id,
                    "parent_observation_id": f"{t}-0" if i else None,
                    "start_time": start + i * 1_000_000,
                    "type": "SPAN",
                    "level": "DEFAULT",
                }
            )
            rows.append((start + i * 1_000_000, span_id, trace_id, user))
    writer.add("traces", "p", facts, {"ingested_at": 1, "ingest_seq": 1})
    writer.add("observations", "p", spans, {"ingested_at": 1, "ingest_seq": 1})
    writer.flush()
    return sorted(rows, reverse=True)


@pytest.mark.parametrize("limit", [1, 2, 4, 5, 7, 30])
@pytest.mark.parametrize("user", [None, "user-0", "user-1"])
def test_pages_by_offset_and_by_cursor_are_the_rows_in_order(tmp_path, limit, user):
    everything = _write(tmp_path)
    expected = [(trace_id, span_id) for _, span_id, trace_id, u in everything if user is None or u == user]
    query = TableQuery(tmp_path)
    f = reads.ObservationFilter(user_id=user)

    by_offset = []
    for offset in range(0, len(expected) + limit, limit):
        page = reads.list_observations(query, "p", f, limit=limit, offset=offset)
        assert len(page) == min(limit, max(len(expected) - offset, 0))
        by_offset += [(r["trace_id"], r["id"]) for r in page]
    assert by_offset == expected

    by_cursor, cursor = [], None
    while True:
        page = reads.observations_after(query, "p", f, cursor=cursor, limit=limit)
        by_cursor += [(r["trace_id"], r["id"]) for r in page]
        if len(page) < limit:
            break
        last = page[-1]
        cursor = reads.Cursor(last["start_time"], last["id"], last["trace_id"])
    assert by_cursor == expected


def test_root_filters_page_exactly_across_windows(tmp_path):
    everything = _write(tmp_path)
    query = TableQuery(tmp_path)
    roots = reads.list_observations(query, "p", reads.ObservationFilter(is_root=True), limit=3)
    children = reads.list_observations(query, "p", reads.ObservationFilter(is_root=False), limit=3)
    assert [r["id"] for r in roots] == [i for _, i, _, _ in everything if i.endswith("-0")][:3]
    assert [r["id"] for r in children] == [i for _, i, _, _ in everything if not i.endswith("-0")][:3]


def _spans(trace_id: str, spans: list[tuple[str, str | None, int]]) -> list[dict[str, object]]:
    """Observation rows of one trace from (id, parent id, start µs)."""
    return [
        {
            "id": i,
            "trace_id": trace_id,
            "parent_observation_id": parent,
            "start_time": start,
            "type": "SPAN",
            "level": "DEFAULT",
        }
        for i, parent, start in spans
    ]


def test_a_trace_longer_than_the_window_keeps_its_user_and_parent(tmp_path):
    """A child on the latest day under a root three days older: the user its trace's facts state
    and its parent are still found, though both lie before the window that holds the page."""
    _write(tmp_path)
    writer = PartitionedWriter(tmp_path)
    root_start = TODAY_US - 3 * DAY_US
    writer.add(
        "traces",
        "p",
        [{"id": "long", "observation_id": "long-0", "timestamp": root_start, "user_id": "user-long"}],
        {"ingested_at": 2, "ingest_seq": 2},
    )
    spans = [("long-0", None, root_start)] + [(f"long-{i}", "long-0", TODAY_US + 7_200_000_000 + i) for i in (1, 2)]
    writer.add("observations", "p", _spans("long", spans), {"ingested_at": 2, "ingest_seq": 2})
    writer.flush()
    query = TableQuery(tmp_path)
    by_user = reads.observations_after(query, "p", reads.ObservationFilter(user_id="user-long"), cursor=None, limit=2)
    assert [r["id"] for r in by_user] == ["long-2", "long-1"]
    children = reads.list_observations(query, "p", reads.ObservationFilter(is_root=False), limit=2)
    assert [r["id"] for r in children] == ["long-2", "long-1"]
    roots = reads.list_observations(query, "p", reads.ObservationFilter(is_root=True), limit=2)
    assert "long-1" not in [r["id"] for r in roots]


def test_a_parent_days_older_than_its_child_is_found_as_arrived(tmp_path):
    """``isRootObservation`` of v2 pages: the parent is looked for from the day its trace began."""
    writer = PartitionedWriter(tmp_path)
    root_start = TODAY_US - 3 * DAY_US
    writer.add(
        "traces",
        "p",
        [{"id": "long", "observation_id": "long-0", "timestamp": root_start}],
        {"ingested_at": 1, "ingest_seq": 1},
    )
    spans = [("long-0", None, root_start), ("long-1", "long-0", TODAY_US), ("long-2", "never-arrived", TODAY_US)]
    writer.add("observations", "p", _spans("long", spans), {"ingested_at": 1, "ingest_seq": 1})
    writer.flush()
    page = reads.observations_after(TableQuery(tmp_path), "p", reads.ObservationFilter(), cursor=None, limit=2)
    assert [r["id"] for r in page] == ["long-2", "long-1"]
    assert reads.arrived_parents(TableQuery(tmp_path), "p", page) == {("long", "long-0")}


def test_a_span_from_a_clock_far_ahead_leaves_newest_first_pages_in_the_latest_days(tmp_path, monkeypatch):
    # Windows used to end on the newest day with data. One span stamped in 2174 (a clock far
    # ahead, or a unit mix-up) made that the newest day: every window then held it alone, and
    # every newest-first page read every day. Windows now end today at the latest; days after
    # today are still in every window, so the far-ahead span still comes first.
    everything = _write(tmp_path)
    far_ahead = TODAY_US + 54_500 * DAY_US
    writer = PartitionedWriter(tmp_path)
    writer.add("traces", "p", [{"id": "trace-ahead", "timestamp": far_ahead}], {"ingested_at": 2, "ingest_seq": 2})
    span = {"id": "ahead-0", "trace_id": "trace-ahead", "start_time": far_ahead, "type": "SPAN", "level": "DEFAULT"}
    writer.add("observations", "p", [span], {"ingested_at": 2, "ingest_seq": 2})
    writer.flush()
    query = TableQuery(tmp_path)
    since: list[object] = []

    def recording(module, name):
        read = getattr(module, name)
        monkeypatch.setattr(module, name, lambda q, p, f, *args: since.append(f.since) or read(q, p, f, *args))

    recording(reads, "_keys")
    recording(trace_reads, "_page_keys")
    page = reads.list_observations(query, "p", reads.ObservationFilter(), limit=5)
    assert [row["id"] for row in page] == ["ahead-0", *(span_id for _, span_id, _, _ in everything[:4])]
    traces = trace_reads.list_traces(query, "p", trace_reads.TraceFilter(), limit=5)
    assert [row["id"] for row in traces] == ["trace-ahead", "trace-1", "trace-0", "trace-2", "trace-3"]  # 0, 1: a tie
    assert since and None not in since, "a page read every day"
