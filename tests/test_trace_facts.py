"""Folding one request's trace-fact rows (``semconv.trace_facts``) must not change a single read.

The proof is the reads themselves: the same ingests are stored twice, once as mapped and once
with the request's rows folded, and every trace must read back identically from real Parquet
files through both of storage's trace reads (the SQL fold and the by-id read).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import semconv.mapping
from collector.batch import BatchProcessor
from semconv.trace_facts import FOLDED_ID_PREFIX, OWN_RULES, fold_request_facts
from storage.parquet_writer import PartitionedWriter
from storage.query import TableQuery
from storage.reads import traces as reads
from storage.wal import Signal, WalRecord
from tests.otlp_helpers import make_span, trace_request

T0_US = 1_764_000_000_000_000  # 2025-11-24T16:00:00Z
TRACE_IDS = ["t1", "t2", "t3"]


def _row(trace_id: str, span: int, offset_us: int, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(semconv.mapping.TRACE_ROW)
    row.update(id=trace_id, observation_id=f"{span:016x}", timestamp=T0_US + offset_us, **values)
    return row


def _store(root: Path, ingests: list[list[dict[str, Any]]]) -> TableQuery:
    for seq, rows in enumerate(ingests, start=1):
        writer = PartitionedWriter(root)
        writer.add("traces", "p", rows, {"ingested_at": T0_US + seq, "ingest_seq": seq})
        writer.flush()
    return TableQuery(root)


def _reads(query: TableQuery) -> tuple[dict[str, Any], dict[str, Any]]:
    details = {trace_id: reads.trace_details(query, "p", trace_id) for trace_id in TRACE_IDS}
    return reads.get_traces(query, "p", TRACE_IDS), {k: v[0] if v else None for k, v in details.items()}


def _reads_match(ingests: list[list[dict[str, Any]]], folded_index: int) -> None:
    folded = [*ingests]
    folded[folded_index] = fold_request_facts([dict(row) for row in ingests[folded_index]])
    with tempfile.TemporaryDirectory() as plain_dir, tempfile.TemporaryDirectory() as folded_dir:
        plain, merged = _reads(_store(Path(plain_dir), ingests)), _reads(_store(Path(folded_dir), folded))
    assert merged == plain


values = {
    "name": st.sampled_from([None, "a", "b", ""]),
    "user_id": st.sampled_from([None, "u1", "u2"]),
    "session_id": st.sampled_from([None, "s1", "s2"]),
    "input": st.sampled_from([None, '{"q": 1}', '"x"']),
    "output": st.sampled_from([None, '"y"', "[1]"]),
    "release": st.sampled_from([None, "r1"]),
    "version": st.sampled_from([None, "v1", "v2"]),
    "environment": st.sampled_from([None, "default", "prod"]),
    "public": st.sampled_from([None, True, False]),
    "tags": st.sampled_from([None, [], ["a"], ["b", "a"], ["a", None], ["c"]]),
    "metadata": st.sampled_from([None, '{"k": 1, "j": 2}', '{"k": 1, "j": 2}', '{"k": 3}', "7"]),
}
offsets = st.sampled_from([0, 0, 5, 10, 86_400_000_000])  # ties, and a fact a day later
others = st.lists(st.tuples(st.sampled_from(TRACE_IDS), offsets, st.fixed_dictionaries(values)), max_size=4)
# The folded request: two traces, so that most examples give each several rows to fold.
request = st.lists(st.tuples(st.sampled_from(TRACE_IDS[:2]), offsets, st.fixed_dictionaries(values)), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=others, request=request, after=others)
def test_a_folded_request_reads_back_as_its_rows(before, request, after):
    """Rows of other ingests before and after the folded one, ties in time, every kind of null."""
    spans = iter(range(1, 1_000))
    ingests = [[_row(t, next(spans), offset, **v) for t, offset, v in ingest] for ingest in (before, request, after)]
    _reads_match(ingests, 1)


def test_rows_of_one_trace_become_one_newest_values_filled_from_older_rows():
    root = _row("t1", 9, 0, name="root", input='"in"', tags=["x"], environment="prod", user_id="u")
    child = _row("t1", 3, 5, user_id="u2", tags=["y", "x"], environment="prod", release="r")
    newest = _row("t1", 1, 10, name="late")
    other = _row("t2", 4, 0, name="alone")
    [folded, alone] = fold_request_facts([child, newest, root, other])
    assert alone is other
    assert (folded["name"], folded["input"], folded["user_id"]) == ("late", '"in"', "u2")
    assert (folded["tags"], folded["environment"], folded["release"]) == (["y", "x"], "prod", "r")
    assert folded["timestamp"] == T0_US
    assert folded["observation_id"].startswith(FOLDED_ID_PREFIX)
    assert set(OWN_RULES) <= set(semconv.mapping.TRACE_ROW)  # a renamed column would fold as "newest"


def test_a_replay_replaces_the_folded_row_and_a_partial_resend_adds_beside_it():
    """Stored rows dedup on (trace id, observation id): the folded id must be the same for the same
    rows in any order, and differ for a subset, whose row would otherwise replace the others' facts."""
    rows = [_row("t1", 1, 0, name="n"), _row("t1", 2, 5, user_id="u"), _row("t1", 3, 7, tags=["a"])]
    [first] = fold_request_facts(rows)
    [again] = fold_request_facts(rows[::-1])
    [subset] = fold_request_facts(rows[:2])
    assert first == again
    assert subset["observation_id"] != first["observation_id"]
    _reads_match([rows, rows[:2]], 0)  # stored folded, then the subset resent as it was


def test_rows_with_differing_metadata_are_left_to_the_read():
    rows = [_row("t1", 1, 0, metadata='{"a": 1}'), _row("t1", 2, 5, metadata='{"b": 2}')]
    assert fold_request_facts(rows) == rows
    same = [_row("t1", 1, 0, metadata='{"a": 1}'), _row("t1", 2, 5, metadata='{"a": 1}')]
    [folded] = fold_request_facts(same)
    assert folded["metadata"] == '{"a": 1}'


def test_a_worker_stores_one_fact_row_per_trace_of_a_request(tmp_path):
    """Propagated attributes put a session on every span: each trace's spans still give one row."""
    trace_ids = [bytes([n]) * 16 for n in (1, 2)]
    spans = []
    for trace_id in trace_ids:
        root = make_span(trace_id, name="agent", attributes={"session.id": "s", "user.id": "u"})
        spans.append(root)
        started = root.start_time_unix_nano
        for n in range(3):
            attributes = {"session.id": "s", "user.id": f"u{n}"}
            spans.append(
                make_span(trace_id, parent=root.span_id, start_ns=started + (n + 1) * 1000, attributes=attributes)
            )
    payload = trace_request(spans).SerializeToString()
    result = BatchProcessor(tmp_path).process([WalRecord(0, len(payload), Signal.TRACES, "p", T0_US * 1000, payload)])
    assert result.rows_by_table["observations"] == 8
    assert result.rows_by_table["traces"] == 2
    query = TableQuery(tmp_path)
    for trace_id in trace_ids:
        trace = reads.get_traces(query, "p", [trace_id.hex()])[trace_id.hex()]
        assert (trace["name"], trace["session_id"], trace["user_id"]) == ("agent", "s", "u2")
