"""Smoke tests of the worker-batch and drain benchmarks: they run this checkout's pipeline and measure it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from collector import native

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str, monkeypatch: Any) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))  # both import bench/ingest.py's request templates
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
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
    figures = _load("compaction", monkeypatch).measure(4)
    assert figures["files"] > 1 and figures["batch_us"] > 0 and figures["compaction_us"] > 0
    assert 0 < figures["compacted_bytes"] < figures["flushed_bytes"]
