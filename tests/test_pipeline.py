"""The Parquet pipeline's stop: a clean stop lands the WAL's backlog, within its time bound."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from collector import batch as batch_module
from collector import pipeline as pipeline_module
from collector.batch import StopFlag, interrupt_when_stopping
from collector.pipeline import CONSUMER, ParquetPipeline
from collector.telemetry import Telemetry
from storage.compaction import Compactor
from storage.query import TableQuery
from storage.wal import Signal, WalRecord, WriteAheadLog
from tests.conftest import rss_growth_at_peak, wait_until
from tests.faults.helpers import send
from tests.otlp_helpers import logs_request, make_span, trace_request


def _fill(wal: WriteAheadLog, requests: int, spans: int) -> set[str]:
    """Append ``requests`` trace requests to ``wal`` (acknowledged: fsynced); their span ids."""
    ids: set[str] = set()
    futures = []
    for r in range(requests):
        batch = [make_span(name=f"r{r}-s{s}") for s in range(spans)]
        ids.update(span.span_id.hex() for span in batch)
        futures.append(wal.append(Signal.TRACES, "default", trace_request(batch).SerializeToString()))
    for future in futures:
        future.result()
    return ids


def _stored_ids(root) -> list[str]:
    query = TableQuery(root)
    try:
        return [row["id"] for row in query.query("default", "SELECT id FROM {observations}")]
    finally:
        query.close()


@pytest.mark.parametrize("workers", [0, 1])
def test_a_clean_stop_lands_every_acknowledged_record_first(tmp_path, workers, monkeypatch):
    monkeypatch.setattr(pipeline_module, "_BATCH_BYTES", 4096)  # a read takes a record or two, not all
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open()
    acked = _fill(wal, 40, 25)
    # An hour's flush interval: nothing is due before the stop, which must land the backlog itself.
    telemetry = Telemetry()
    pipeline = ParquetPipeline(wal, tmp_path, telemetry, workers=workers, flush_interval=3600)
    cpu_before = time.process_time()
    pipeline.start()
    wal.close()  # as the server stops: receivers and WAL first, then the pipeline
    pipeline.stop()
    cpu_here = time.process_time() - cpu_before

    assert wal.committed()[CONSUMER] == wal.durable_offset
    stored = _stored_ids(tmp_path)
    assert sorted(stored) == sorted(acked)
    # The batches' CPU time is counted (in this process or in the worker that ran them).
    batch_cpu = telemetry.batch_cpu_seconds._value.get()
    assert batch_cpu > 0
    if workers == 0:
        assert batch_cpu <= cpu_here


@pytest.mark.parametrize("drain", ["out of time", "not asked for (a reload)"])
def test_a_stop_without_a_whole_drain_leaves_the_rest_in_the_wal_for_the_next_start(
    tmp_path, caplog, monkeypatch, drain
):
    monkeypatch.setattr(pipeline_module, "_BATCH_BYTES", 4096)  # a read takes a record or two, not all
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open()
    acked = _fill(wal, 40, 25)
    drain_seconds = 0 if drain == "out of time" else pipeline_module.DRAIN_SECONDS
    pipeline = ParquetPipeline(wal, tmp_path, Telemetry(), workers=0, flush_interval=3600, drain_seconds=drain_seconds)
    pipeline.start()
    wal.close()
    with caplog.at_level(logging.WARNING, logger="spanfuse.pipeline"):
        pipeline.stop(drain=drain == "out of time")
    assert wal.committed()[CONSUMER] < wal.durable_offset
    assert any("unprocessed" in r.getMessage() for r in caplog.records)

    again = WriteAheadLog(tmp_path / "wal")
    again.open()
    second = ParquetPipeline(again, tmp_path, Telemetry(), workers=0, flush_interval=3600)
    second.start()
    again.close()
    second.stop()
    assert again.committed()[CONSUMER] == again.durable_offset
    stored = _stored_ids(tmp_path)
    assert sorted(stored) == sorted(acked)  # each once: nothing was written before the drain ran out


def _started_with_one_worker(tmp_path: Any, telemetry: Telemetry) -> tuple[WriteAheadLog, ParquetPipeline]:
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open()
    pipeline = ParquetPipeline(wal, tmp_path, telemetry, workers=1, flush_interval=0.05)
    pipeline.start()
    return wal, pipeline


def _kill_the_worker(pipeline: ParquetPipeline, sig: int) -> None:
    """Send ``sig`` to the pipeline's one worker and wait until its pool has noticed the death."""
    assert pipeline._pool is not None
    (worker,) = pipeline._pool._processes.values()
    os.kill(worker.pid, sig)
    worker.join()
    time.sleep(0.5)  # the pool notices before the next batch is handed to it


def test_a_worker_killed_between_batches_costs_a_retry_not_the_pipeline(tmp_path):
    # As the kernel's OOM killer would: the pool is broken, and the next batch must still land.
    telemetry = Telemetry()
    wal, pipeline = _started_with_one_worker(tmp_path, telemetry)
    try:
        first = _fill(wal, 2, 10)
        wait_until(lambda: len(_stored_ids(tmp_path)) == len(first), timeout=30)
        _kill_the_worker(pipeline, signal.SIGKILL)
        second = _fill(wal, 2, 10)
        wait_until(lambda: sorted(_stored_ids(tmp_path)) == sorted(first | second), timeout=30)
    finally:
        wal.close()
        pipeline.stop()
    assert telemetry.consumer_errors.labels(CONSUMER, "batch_failed")._value.get() >= 1
    assert wal.committed()[CONSUMER] == wal.durable_offset
    # The records met the dead worker, but went through alone on a new one: nothing set aside.
    assert telemetry.consumer_errors.labels(CONSUMER, "set_aside")._value.get() == 0
    assert not (tmp_path / "quarantine").exists()


_CRASH_MARK = b"crash-the-worker"


def process_or_crash(records: list[WalRecord]) -> batch_module.BatchResult:
    """The pipeline's worker task, except that a worker handed a record holding :data:`_CRASH_MARK`
    dies as a fault in native code would take it down (imported by the worker, by this name)."""
    if any(_CRASH_MARK in record.payload for record in records):
        os.kill(os.getpid(), signal.SIGSEGV)
    return batch_module.process_in_worker(records)


def test_a_record_that_crashes_its_worker_is_set_aside_and_the_rest_goes_on(tmp_path, monkeypatch):
    # Each retry of the batch killed a new worker: nothing after the record was stored, and once
    # the WAL's bound was reached every export was refused. Now the records of the batches in
    # flight go again one at a time; the one that ends its worker alone twice is set aside.
    monkeypatch.setattr(pipeline_module, "process_in_worker", process_or_crash)
    telemetry = Telemetry()
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open()
    before = _fill(wal, 3, 10)
    crash = make_span(name=_CRASH_MARK.decode())
    wal.append(Signal.TRACES, "default", trace_request([crash]).SerializeToString()).result()
    after = _fill(wal, 3, 10)
    # Started on the backlog: one batch, where the record that crashes sits among others.
    pipeline = ParquetPipeline(wal, tmp_path, telemetry, workers=1, flush_interval=0.05)
    pipeline.start()
    try:
        wait_until(lambda: sorted(_stored_ids(tmp_path)) == sorted(before | after), timeout=60)
        wait_until(lambda: wal.committed()[CONSUMER] == wal.durable_offset, timeout=30)
    finally:
        wal.close()
        pipeline.stop()
    (kept,) = (tmp_path / "quarantine" / "wal").iterdir()
    assert kept.name.endswith("-default.traces.pb")
    request = ExportTraceServiceRequest.FromString(kept.read_bytes())  # the request as received
    assert [span.span_id for span in request.resource_spans[0].scope_spans[0].spans] == [crash.span_id]
    assert telemetry.consumer_errors.labels(CONSUMER, "set_aside")._value.get() == 1
    assert telemetry.consumer_errors.labels(CONSUMER, "batch_failed")._value.get() == 1


def test_workers_dead_before_a_stop_are_replaced_and_the_stop_still_lands_the_backlog(tmp_path):
    # systemd's default stop sends SIGTERM to every process of the service: the idle workers die
    # with the collector's own stop. Its drain must hand the backlog to new workers.
    wal, pipeline = _started_with_one_worker(tmp_path, Telemetry())
    first = _fill(wal, 2, 10)
    wait_until(lambda: len(_stored_ids(tmp_path)) == len(first), timeout=30)
    pipeline.flush_interval = 3600  # from the next round on, only the stop's drain writes
    time.sleep(0.2)
    _kill_the_worker(pipeline, signal.SIGTERM)
    second = _fill(wal, 3, 10)
    wal.close()
    pipeline.stop()
    assert wal.committed()[CONSUMER] == wal.durable_offset
    assert sorted(_stored_ids(tmp_path)) == sorted(first | second)


def test_workers_found_dead_by_compaction_are_replaced_while_no_batch_comes(tmp_path):
    # Ingest idle, the worker killed: compaction is the one that meets the broken pool, and its
    # next pass must find new workers rather than the broken pool again until a batch arrives.
    telemetry = Telemetry()
    wal, pipeline = _started_with_one_worker(tmp_path, telemetry)
    try:
        first: set[str] = set()
        for _ in range(8):  # eight flush files: enough for compaction to merge them
            first |= _fill(wal, 1, 10)
            expected = len(first)
            wait_until(lambda expected=expected: len(_stored_ids(tmp_path)) == expected, timeout=30)
        broken = pipeline._pool
        _kill_the_worker(pipeline, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            pipeline.compact(retention_days=0)  # (0: nothing expires)
        wait_until(lambda: pipeline._pool is not broken, timeout=10)
        assert pipeline.compact(retention_days=0).files_in >= 8  # merged on a new worker
        second = _fill(wal, 2, 10)
        wait_until(lambda: sorted(_stored_ids(tmp_path)) == sorted(first | second), timeout=30)
    finally:
        wal.close()
        pipeline.stop()
    assert telemetry.consumer_errors.labels(CONSUMER, "batch_failed")._value.get() == 0  # no batch met it


def _watch_as_a_compacting_worker(flag: StopFlag, started: Any) -> None:
    started.set()
    interrupt_when_stopping(Compactor(tempfile.gettempdir()), flag, threading.Event())


def test_a_stop_is_not_blocked_by_a_worker_killed_while_compacting(tmp_path):
    # With a multiprocessing.Event, set() would wait for good for the killed waiter to wake.
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open()
    flag = ParquetPipeline(wal, tmp_path, Telemetry(), workers=1)._stopping  # what its workers watch
    context = multiprocessing.get_context("forkserver")
    started = context.Event()
    watcher = context.Process(target=_watch_as_a_compacting_worker, args=(flag, started))
    watcher.start()
    assert started.wait(timeout=30)
    time.sleep(0.5)  # watching
    watcher.kill()
    watcher.join()
    setter = threading.Thread(target=flag.set, daemon=True)
    setter.start()
    setter.join(timeout=10)
    assert not setter.is_alive() and flag.is_set()


@pytest.mark.parametrize("where", ["mapper", "writer"])
def test_a_record_that_cannot_be_stored_is_set_aside_and_the_rest_goes_on(start_server, monkeypatch, where):
    # A bug meeting one record (the mapper raising on it, or a row the Parquet writer cannot take)
    # failed its batch on every retry: nothing after it reached Parquet, and once the WAL's bound
    # was reached every export was refused. Now the record is kept under quarantine/wal/ and the
    # rest is stored.
    if where == "mapper":
        mapper = batch_module.map_traces_parts

        def buggy(request: Any, *args: Any) -> None:
            if b"poison" in request.SerializeToString():
                raise TypeError("a bug that only this record meets")
            mapper(request, *args)

        monkeypatch.setattr(batch_module, "map_traces_parts", buggy)
    else:
        price = batch_module.price

        def unwritable(observation: dict[str, Any], *args: Any) -> None:
            price(observation, *args)
            if observation["name"] == "poison":
                observation["total_cost"] = "not a number"  # Arrow refuses it when the batch is written

        monkeypatch.setattr(batch_module, "price", unwritable)
    server = start_server(parquet={"workers": 0})
    for name in ("before", "poison", "after"):
        assert send(server.http_port, server.grpc_port, [make_span(name=name)], "http").ok
    wait_until(lambda: {r["name"] for r in server.query.observations("default")} == {"before", "after"})
    wait_until(lambda: server.pipeline.reader.lag_bytes() == 0)
    (kept,) = (server.data_dir / "quarantine" / "wal").iterdir()
    assert kept.name.endswith("-default.traces.pb")
    request = ExportTraceServiceRequest.FromString(kept.read_bytes())  # the request as received
    assert [span.name for span in request.resource_spans[0].scope_spans[0].spans] == ["poison"]
    assert server.telemetry.consumer_errors.labels(CONSUMER, "set_aside")._value.get() == 1
    assert server.telemetry.consumer_errors.labels(CONSUMER, "batch_failed")._value.get() == 0


@pytest.mark.parametrize(("signal", "bound_mib"), [(Signal.TRACES, 220), (Signal.LOGS, 120)])
def test_a_big_request_of_small_items_is_mapped_in_parts_and_stored_whole(tmp_path, signal, bound_mib):
    # A request's rows take about 60 times its encoded size as dicts: a 15.6 MiB request of
    # 270,000 minimal spans took a worker to ~1.1 GB. Mapped and handed to the writer 4,096
    # spans (log records) at a time, a worker holds one part's rows as dicts (510 MiB for both
    # workers then). Here, 150,000 spans (8.6 MiB) rose 336 MiB in one part, 134 MiB in parts;
    # 150,000 log records (1.6 MiB) 203 and 84 MiB.
    if signal == Signal.TRACES:
        table, request = "observations", trace_request([make_span(name=f"s{i}") for i in range(150_000)])
    else:
        records = [LogRecord(time_unix_nano=1_764_000_000_000_000_000 + i) for i in range(150_000)]
        table, request = "logs", logs_request(records)
    payload = request.SerializeToString()
    record = WalRecord(0, len(payload), signal, "p", time.time_ns(), payload)
    processor = batch_module.BatchProcessor(tmp_path)
    results = []
    growth = rss_growth_at_peak(lambda: results.append(processor.process([record])))
    assert results[0].rows_by_table[table] == 150_000
    assert TableQuery(tmp_path).count("p", table) == 150_000
    rose = f"peak RSS rose {growth / 2**20:.0f} MiB for a {len(payload) / 2**20:.1f} MiB request"
    assert growth < bound_mib * 2**20, rose
