"""Map a batch of WAL records into rows, price them, and publish them as Parquet files.

This is the CPU-heavy half of the Parquet pipeline. It runs in worker processes (so mapping
uses every core instead of sharing the receivers' interpreter lock) or, with ``workers: 0``,
inside the collector process. A batch either succeeds as a whole (its files are durable) or
raises; the pipeline commits WAL offsets only for batches that succeeded, in order.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from collector.allocator import give_back_freed_memory, reuse_freed_memory
from collector.ingest import LOGS
from collector.logs import configure_logging
from collector.pricing import PriceTable, PricingEntry
from collector.wire import pipeline_request_type
from semconv import legacy
from semconv.mapping import MappedSpans, map_logs_parts, map_traces_parts
from semconv.trace_facts import fold_request_facts
from storage.compaction import CompactionStats, Compactor
from storage.fsutil import quarantine_bytes
from storage.parquet_writer import FlushResult, PartitionedWriter, quarantine_named_in
from storage.query import TableQuery
from storage.wal import Signal, WalRecord

log = logging.getLogger("spanfuse.pipeline")
_STOP_POLL_SECONDS = 0.2  # how soon a compaction pass notices its collector stopping


@dataclass
class BatchResult:
    records: int = 0
    set_aside: int = 0  # records that could not be stored, kept under quarantine/wal/
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the thread that mapped and wrote the batch
    rows_by_table: dict[str, int] = field(default_factory=dict)
    warnings_by_project: Counter[str] = field(default_factory=Counter)


def price(observation: dict[str, Any], prices: PriceTable, project_id: str) -> None:
    """Compute the cost of a model call from its usage, unless the client already sent one.

    ``cost_source`` says where a cost came from: ``provided``, ``computed``, or ``unknown_model``
    when there is usage but no price for the model (then there is no cost, never a guess).
    """
    usage = observation.get("usage_details")
    if not usage or observation.get("cost_source") == "provided":
        return
    at_us = observation["start_time"]  # µs since the epoch, as the price table takes it
    result = prices.cost(usage, observation.get("model"), observation.get("provider"), project_id, at_us)
    if result.unknown_model:
        observation["cost_source"] = "unknown_model"
        return
    observation["cost_details"] = result.cost_details
    observation["total_cost"] = result.total_cost
    observation["cost_source"] = "computed"
    observation["matched_model"] = result.matched_model


_EPOCH = dt.datetime(1970, 1, 1)
_COST_COLUMNS = ("cost_details", "total_cost", "cost_source", "matched_model")
_PARQUET_CONSUMER = "parquet"  # collector.pipeline.CONSUMER (not imported: the pipeline imports this module)
_EARLIER_BATCHES_TIMEOUT = 30.0
# What a retry of the batch may cure (a full disk, memory, a file a read met gone): never the record's fault.
_RETRYABLE = (OSError, MemoryError, duckdb.Error)
_KINDS = {
    Signal.TRACES: "traces.pb",
    Signal.LOGS: "logs.pb",
    Signal.SCORES: "scores.json",
    Signal.INGESTION: "ingestion.json",
}
_TRACE_REQUEST = pipeline_request_type()
# Spans (log records) of a request mapped and handed to the writer at a time (see map_traces_parts).
_ITEMS_PER_PART = 4096


def _json_payload(record: WalRecord, key: str) -> list[Any]:
    """The list under ``key`` of a JSON WAL payload; ValueError when it is not there."""
    payload = orjson.loads(record.payload)
    items = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"{Signal.NAMES.get(record.signal)} payload without a {key!r} list")
    return items


def _stored_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back through DuckDB in the form rows are written (µs ints, no partition columns)."""
    out = {}
    for key, value in row.items():
        if key in ("project_id", "date", "ingested_at", "ingest_seq"):
            continue
        if isinstance(value, dt.datetime):
            delta = value.replace(tzinfo=None) - _EPOCH
            value = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        out[key] = value
    return out


def set_aside(root: Path, record: WalRecord, error: BaseException) -> Path:
    """Keep a record that cannot be stored as ``quarantine/wal/<offset>-<project>.<kind>``,
    durably before its WAL offset is committed: acknowledged data is never dropped. The file
    is the WAL payload: an OTLP request as received (to send again once what stopped it is
    fixed), or the JSON the Langfuse routes validated. Returns where it is."""
    name = f"wal/{record.offset:020d}-{record.project_id}.{_KINDS.get(record.signal, 'bin')}"
    kept = quarantine_bytes(root, name, record.payload)
    log.error(
        "wal record cannot be stored offset=%d project=%s error=%r; set aside as %s",
        record.offset,
        record.project_id,
        error,
        kept.relative_to(root),
    )
    return kept


class BatchProcessor:
    """Turns WAL records into published Parquet files; one per process.

    ``wait_for_earlier_batches`` is set in worker processes, where batches run concurrently: a
    legacy ``*-update`` whose record is not in this batch waits until every earlier batch is
    committed (its files are readable) before reading the stored record it merges into.
    """

    def __init__(
        self, root: str | Path, pricing: list[PricingEntry] | None = None, *, wait_for_earlier_batches: bool = False
    ) -> None:
        self.root = Path(root)
        self.writer = PartitionedWriter(root)
        self.prices = PriceTable(pricing or ())
        self.prices.warm()
        self.wait_for_earlier_batches = wait_for_earlier_batches
        self._query: TableQuery | None = None
        # Observations merged from legacy events in this batch: (project, id) -> latest row.
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self._batch_start = 0

    def process(self, records: list[WalRecord]) -> BatchResult:
        """Map and write ``records``; raises on what a retry may cure (a full disk, say).

        A record that cannot be stored — damaged, or meeting a bug — would fail its batch on
        every retry and hold up everything after it: it is set aside (:func:`set_aside`) and
        the batch goes on without it.
        """
        result = BatchResult()
        started = time.thread_time()
        self._pending = {}
        self._batch_start = records[0].offset if records else 0
        try:
            try:
                self._map_each(records, result)
                flushed = self.writer.flush()
            except _RETRYABLE:
                raise
            except Exception as exc:  # rows the writer cannot take: find the records they came from
                log.error("parquet batch cannot be written error=%r; writing its records one at a time", exc)
                self.writer.discard()
                self._pending = {}
                result = BatchResult()
                flushed = self._one_at_a_time(records, result)
        except BaseException:
            self.writer.discard()
            raise
        finally:
            self._pending = {}
        result.files, result.bytes, result.seconds = flushed.files, flushed.bytes, flushed.seconds
        result.rows_by_table = flushed.rows_by_table
        result.cpu_seconds = time.thread_time() - started
        return result

    def _map_each(self, records: list[WalRecord], result: BatchResult) -> None:
        for record in records:
            result.records += 1
            try:
                self._map(record, result)
            except _RETRYABLE:
                raise
            except Exception as exc:
                self._set_aside(record, exc, result)

    def _one_at_a_time(self, records: list[WalRecord], result: BatchResult) -> FlushResult:
        total = FlushResult()
        for record in records:
            self._map_each([record], result)
            try:
                flushed = self.writer.flush()
            except _RETRYABLE:
                raise
            except Exception as exc:
                self.writer.discard()
                self._set_aside(record, exc, result)
                continue
            total.add(flushed)
        return total

    def _set_aside(self, record: WalRecord, error: BaseException, result: BatchResult) -> None:
        result.set_aside += 1
        set_aside(self.root, record, error)

    def _map(self, record: WalRecord, result: BatchResult) -> None:
        ingest = {"ingested_at": record.received_ns // 1000, "ingest_seq": record.offset}
        if record.signal == Signal.TRACES:

            def store(mapped: MappedSpans) -> None:
                for observation in mapped.observations:
                    price(observation, self.prices, record.project_id)
                self.writer.add("observations", record.project_id, mapped.observations, ingest)
                self.writer.add("traces", record.project_id, fold_request_facts(mapped.traces), ingest)
                if mapped.warnings:
                    result.warnings_by_project[record.project_id] += mapped.warnings

            map_traces_parts(_TRACE_REQUEST.FromString(record.payload), store, _ITEMS_PER_PART)
        elif record.signal == Signal.LOGS:
            request = LOGS.request_type.FromString(record.payload)
            map_logs_parts(
                request,
                record.received_ns,
                lambda rows: self.writer.add("logs", record.project_id, rows, ingest),
                _ITEMS_PER_PART,
            )
        elif record.signal == Signal.SCORES:
            self.writer.add("scores", record.project_id, _json_payload(record, "scores"), ingest)
        elif record.signal == Signal.INGESTION:
            self._map_ingestion(record, ingest)
        else:
            raise ValueError(f"unknown signal {record.signal}")

    # ------------------------------------------------------------ legacy ingestion
    def _map_ingestion(self, record: WalRecord, ingest: dict[str, Any]) -> None:
        """Legacy events → rows; observations merged into the record they update (stored or in this batch)."""
        project = record.project_id
        events = _json_payload(record, "events")
        try:
            keys = legacy.observation_keys(events)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed ingestion event: {exc!r}") from None
        bases: dict[str, dict[str, Any]] = {}
        missing: dict[str, str | None] = {}
        for obs_id, trace_id in keys.items():
            pending = self._pending.get((project, obs_id))
            if pending is not None:
                bases[obs_id] = pending
            else:
                missing[obs_id] = trace_id
        if missing:
            bases.update(self._stored_observations(project, missing))
        try:
            rows = legacy.map_events(events, bases)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed ingestion event: {exc!r}") from None
        for observation in rows.observations:
            if observation.get("cost_source") != "provided":
                for column in _COST_COLUMNS:  # usage or model may have changed: price again
                    observation.pop(column, None)
                price(observation, self.prices, project)
            self._pending[(project, observation["id"])] = observation
        self.writer.add("observations", project, rows.observations, ingest)
        self.writer.add("traces", project, rows.traces, ingest)
        self.writer.add("scores", project, rows.scores, ingest)

    def _stored_observations(self, project: str, wanted: dict[str, str | None]) -> dict[str, dict[str, Any]]:
        """The stored rows of observations ``wanted`` (id -> trace id hint), as written."""
        if self.wait_for_earlier_batches:
            self._wait_for_earlier_batches()
        if self._query is None:
            self._query = TableQuery(self.root, threads=1, memory_limit="512MB", timeout=60)
        sql = "SELECT * FROM {observations} WHERE list_contains(?, id) ORDER BY ingested_at, ingest_seq"
        try:
            found = self._query.query(project, sql, [list(wanted)])
        except duckdb.Error as exc:
            # A damaged part file would fail this batch on every retry: set it aside, then read again.
            if not quarantine_named_in(self.root, str(exc)):
                raise
            found = self._query.query(project, sql, [list(wanted)])
        rows: dict[str, dict[str, Any]] = {}
        for row in found:  # latest ingest last; a row of the trace the event names wins
            current = rows.get(row["id"])
            hint = wanted.get(row["id"])
            if current is None or hint is None or row["trace_id"] == hint or current["trace_id"] != hint:
                rows[row["id"]] = _stored_row(row)
        return rows

    def _wait_for_earlier_batches(self) -> None:
        """Block until the WAL records before this batch are committed by the Parquet consumer."""
        path = self.root / "wal" / "consumers" / f"{_PARQUET_CONSUMER}.offset"
        time_limit = _EARLIER_BATCHES_TIMEOUT
        deadline = time.monotonic() + time_limit
        while True:
            try:
                committed = int(path.read_text().strip())
            except FileNotFoundError:
                committed = 0  # nothing committed yet: the consumer starts at the beginning of the log
            except (OSError, ValueError):
                return
            if committed >= self._batch_start:
                return
            if time.monotonic() > deadline:
                log.warning(
                    "earlier batches not committed after %.0fs; merging with what is stored", _EARLIER_BATCHES_TIMEOUT
                )
                return
            time.sleep(0.02)


# ---------------------------------------------------------------- worker-process side
class StopFlag:
    """The collector's "stopping" flag, shared with its worker processes, and free of locks.

    Not a ``multiprocessing.Event``: a process killed while waiting on one (the OOM killer, or
    systemd's stop, which signals every process of the service) leaves its ``set()`` blocked for
    good, as it waits for every waiter to wake, and the collector's stop with it. A byte of shared
    memory that the collector writes once and workers poll cannot be left in such a state.
    """

    def __init__(self, context: Any) -> None:
        self._flag = context.RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._flag.value = True

    def is_set(self) -> bool:
        return bool(self._flag.value)


_processor: BatchProcessor | None = None
_stopping: StopFlag | None = None  # the collector's, in a worker process

# What a terminal sends to every process of its job: Ctrl-C, and SIGHUP when it closes. Workers
# ignore both. Stopping and reloading are the collector's to do: it drains the WAL through its
# workers, which end with it (see _exit_with_parent).
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGHUP)


def init_worker(
    root: str, pricing: list[dict[str, Any]], stopping: StopFlag | None = None, log_level: str | None = None
) -> None:
    """Process-pool initializer: one processor per worker process, which ends with the collector.

    ``stopping`` is the collector's :class:`StopFlag` (it ends compaction passes).
    ``log_level``: log as the collector does, at this level, to the stderr inherited from it
    (a new process has no logging set up: its compaction and quarantine lines would be lost)."""
    global _processor, _stopping
    for sig in TERMINAL_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _exit_with_parent()
    if log_level is not None:
        configure_logging(log_level)
    _processor = BatchProcessor(
        root, [PricingEntry.model_validate(entry) for entry in pricing], wait_for_earlier_batches=True
    )
    _stopping = stopping


def _exit_with_parent() -> None:
    # A pool worker blocks on its task queue forever if the collector is killed (SIGKILL): the
    # queue's write end lives in the worker too. Watch the collector and leave with it.
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def process_in_worker(records: list[WalRecord]) -> BatchResult:
    assert _processor is not None, "init_worker was not called"
    return _processor.process(records)


def worker_is_ready() -> bool:
    """Whether a pool worker started and set itself up (the pipeline asks after a worker died)."""
    return _processor is not None


def compact(
    root: str, retention_days: int, budget_seconds: float | None = None, stopping: StopFlag | None = None
) -> CompactionStats:
    """One compaction and retention pass over the tables (run on a worker by the collector).

    Once ``stopping`` (a :class:`StopFlag`) is set the pass ends at once, its merge in progress
    abandoned (its files stay as they were): a stopping collector neither waits for a merge nor
    keeps a worker from draining the WAL."""
    compactor = Compactor(root, retention_days=retention_days)
    reuse_freed_memory()  # merges reuse each other's memory (collector.allocator)
    finished = threading.Event()
    if stopping is not None:
        if stopping.is_set():
            compactor.interrupt()
        watcher = threading.Thread(
            target=interrupt_when_stopping, args=(compactor, stopping, finished), name="compaction-stop", daemon=True
        )
        watcher.start()
    try:
        return compactor.run_once(budget_seconds=budget_seconds)
    finally:
        finished.set()
        give_back_freed_memory()


def interrupt_when_stopping(compactor: Compactor, stopping: StopFlag, finished: threading.Event) -> None:
    """Until the pass is ``finished``, interrupt it once the collector is ``stopping`` (polled)."""
    while not finished.wait(_STOP_POLL_SECONDS):
        if stopping.is_set():
            compactor.interrupt()
            return


def compact_in_worker(root: str, retention_days: int, budget_seconds: float | None = None) -> CompactionStats:
    """:func:`compact` in a pool worker, ended by the collector's stop flag (see :func:`init_worker`)."""
    return compact(root, retention_days, budget_seconds, _stopping)
