"""Smoke tests of the worker-batch and drain benchmarks: they run this checkout's pipeline and measure it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from collector import native

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str, monkeypatch: Any) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))  # both import bench/ingest.py's request templates
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


def test_the_worker_batch_bench_times_this_build(monkeypatch):
    figures = _load("worker_batch", monkeypatch).measure(1, 2)
    assert figures["build"] == (str(native.active_build()) if native.active_build() else None)
    assert len(figures["spans_per_s"]) == 2 and all(rate > 0 for rate in figures["spans_per_s"])


def test_the_drain_bench_waits_for_the_whole_backlog(monkeypatch):
    figures = _load("drain", monkeypatch).drain(3, 1)
    assert figures["spans_per_s"] > 0 and figures["seconds"] > 0
    assert figures["workers_cpu"] > 0  # the batches ran in the worker process


def test_the_compaction_bench_compacts_what_the_batches_wrote(monkeypatch):
    figures = _load("compaction", monkeypatch).measure(8, 1)  # merges of one file: several a pass
    assert figures["files"] > 1 and figures["batch_us"] > 0 and figures["compaction_us"] > 0
    assert 0 < figures["compacted_bytes"] < figures["flushed_bytes"]


def test_the_ingest_bench_stamps_fresh_ids_and_changes_nothing_else(monkeypatch):
    ingest = _load("ingest", monkeypatch)
    template = ingest.build_template(3, 64, 1_700_000_000_000_000_000)
    ingest.check_template(template, 64)  # the span count and every parent link survive

    def spans_of(payload: bytes) -> list[Any]:
        request = ingest.ExportTraceServiceRequest.FromString(payload)
        return [span for resource in request.resource_spans for scope in resource.scope_spans for span in scope.spans]

    original = spans_of(template.payload)
    first, second = (spans_of(ingest.fresh_payload(template)) for _ in range(2))
    assert {s.span_id for s in first}.isdisjoint({s.span_id for s in original} | {s.span_id for s in second})
    assert len({s.trace_id for s in first}) == len({s.trace_id for s in original}) == 8  # traces of 8 spans
    for before, after in zip(original, first, strict=True):
        stamped = type(after)()
        stamped.CopyFrom(after)
        stamped.trace_id, stamped.span_id, stamped.parent_span_id = (
            before.trace_id,
            before.span_id,
            before.parent_span_id,
        )
        assert stamped == before
        assert bool(after.parent_span_id) == bool(before.parent_span_id)


def test_the_ingest_bench_counts_rows_of_new_files_and_forgets_removed_ones(monkeypatch, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ingest = _load("ingest", monkeypatch)
    partition = tmp_path / "tables" / "observations" / "project_id=p" / "date=2026-11-28"
    partition.mkdir(parents=True)
    counter = ingest.RowCounter(tmp_path)
    try:
        assert counter.count() == -1  # nothing readable yet
        for name, rows in (("part-1.parquet", 3), ("part-2.parquet", 5)):
            pq.write_table(
                pa.table({"trace_id": ["t"] * rows, "id": [f"{name}-{i}" for i in range(rows)]}), partition / name
            )
        assert counter.count() == 8
        (partition / "part-1.parquet").unlink()
        assert counter.count() == 5
        assert counter.distinct() == 5
    finally:
        counter.close()
