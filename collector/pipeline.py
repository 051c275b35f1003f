"""The Parquet pipeline: the WAL consumer that lands spans and logs as queryable Parquet.

It reads durable WAL records and hands them, a batch at least every ``flush_interval``, to
:class:`~collector.batch.BatchProcessor` — in worker processes (``workers`` ≥ 1) so mapping
runs on every core, or in this process (``workers: 0``). Batches may finish out of order; the
WAL offset is committed only up to the last batch that finished, and only after its files are
durable. After a failure or a crash the uncommitted tail is processed again; rows written twice
that way read as one (dedup on read and in compaction).

A clean stop also processes what the WAL already holds (for at most ``drain_seconds``), so after
a shutdown every acknowledged record is in Parquet, unless the pipeline was paused or the drain
ran out of time — then the rest waits in the WAL for the next start.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

from collector.batch import (
    TERMINAL_SIGNALS,
    BatchProcessor,
    BatchResult,
    StopFlag,
    compact,
    compact_in_worker,
    init_worker,
    process_in_worker,
    set_aside,
    worker_is_ready,
)
from collector.pricing import PricingEntry
from collector.telemetry import Telemetry
from storage.compaction import CompactionStats
from storage.parquet_writer import quarantine_damaged_files
from storage.wal import WalReader, WalRecord, WriteAheadLog

log = logging.getLogger("spanfuse.pipeline")

CONSUMER = "parquet"
_BATCH_BYTES = 16 * 1024 * 1024  # a batch is cut at this size or when the flush interval ends
_RETRY_SECONDS = 1.0
DRAIN_SECONDS = 20.0  # a clean stop processes the WAL's backlog for this long at most
# A record that ends its worker this many times, alone in its batch, is set aside (not tried for good).
_CRASHES_TO_SET_ASIDE = 2


def _start_forkserver_deaf_to_the_terminal(context: Any) -> None:
    """Start the forkserver (workers never fork this process's gRPC and server threads) with
    the :data:`~collector.batch.TERMINAL_SIGNALS` ignored: a disposition it keeps through
    Python's start-up and the workers it forks keep.

    A terminal's Ctrl-C or hang-up reaches every process of the job, but stopping (or reloading)
    is the collector's: it drains the WAL through its workers. Only the main thread may change a handler;
    otherwise the forkserver starts on first use, and :func:`~collector.batch.init_worker`
    ignores them too.
    """
    context.set_forkserver_preload(["collector.batch"])
    if threading.current_thread() is not threading.main_thread():
        return
    previous = {sig: signal.getsignal(sig) for sig in TERMINAL_SIGNALS}
    if None in previous.values():
        return  # (a handler set outside Python could not be put back)
    for sig in TERMINAL_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class ParquetPipeline:
    """Runs in its own thread; :meth:`stop` finishes the batches in flight and commits."""

    def __init__(
        self,
        wal: WriteAheadLog,
        root: Path,
        telemetry: Telemetry,
        *,
        pricing: list[PricingEntry] | None = None,
        workers: int = 2,
        flush_interval: float = 1.0,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.wal = wal
        self.root = root
        self.telemetry = telemetry
        self.pricing = list(pricing or [])
        self.workers = workers
        self.flush_interval = flush_interval
        self.drain_seconds = drain_seconds
        self.reader: WalReader = wal.consumer(CONSUMER)
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._gate = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="parquet-pipeline", daemon=True)
        self._pool: ProcessPoolExecutor | None = None
        self._pool_found_broken: ProcessPoolExecutor | None = None  # by compaction; replaced by this thread
        self._local: BatchProcessor | None = None
        self._inflight: deque[tuple[int, Future[BatchResult]]] = deque()
        self._rewound = False  # set after a failure: the records being gathered are read again
        self._new_workers = False  # with it: the failure was the workers' death, and they were replaced
        self._drain_on_stop = True  # whether stop() processes the WAL's backlog first (not when paused)
        # Workers died with batches in flight: the records before this WAL offset go one at a time
        # (only records read again after that failure can lie below it).
        self._suspect_until = -1
        self._context = multiprocessing.get_context("forkserver")
        self._stopping = StopFlag(self._context)  # set first thing in stop(): ends compaction passes

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Set damaged part files aside (a crash mid-copy, a truncated file), then start consuming."""
        quarantine_damaged_files(self.root)
        if self.workers > 0:
            _start_forkserver_deaf_to_the_terminal(self._context)
            self._pool = self._new_pool()
        else:
            self._local = BatchProcessor(self.root, self.pricing)
        self._thread.start()

    def stop(self, drain: bool = True) -> None:
        """Finish: process the WAL's backlog (if ``drain`` and not paused; see the module
        docstring), finish the batches in flight, commit."""
        self._drain_on_stop = drain and self._resume.is_set()
        self._stopping.set()  # first: a worker busy compacting is freed for the drain
        self._stop.set()
        self._resume.set()
        self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def pause(self) -> None:
        """Stop consuming (the WAL backlog grows) before returning; used by tests and operators."""
        self._resume.clear()
        with self._gate:
            pass

    def resume(self) -> None:
        self._resume.set()

    def compact(self, retention_days: int, budget_seconds: float | None = None) -> CompactionStats:
        """One compaction and retention pass, on a worker (here with ``workers: 0``); :meth:`stop` ends it.

        Raises :class:`BrokenProcessPool` if the workers died (killed); the pipeline thread, which
        owns the pool, then starts new ones even while no batch comes to show it the damage."""
        pool = self._pool
        if pool is None:
            return compact(str(self.root), retention_days, budget_seconds, self._stopping)
        try:
            return pool.submit(compact_in_worker, str(self.root), retention_days, budget_seconds).result()
        except BrokenProcessPool:
            self._pool_found_broken = pool
            raise

    def _new_pool(self) -> ProcessPoolExecutor:
        pricing = [entry.model_dump(mode="json") for entry in self.pricing]
        return ProcessPoolExecutor(
            self.workers,
            mp_context=self._context,
            initializer=init_worker,
            initargs=(str(self.root), pricing, self._stopping, logging.getLevelName(log.getEffectiveLevel())),
        )

    def _replace_pool(self) -> None:
        assert self._pool is not None
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def _replace_pool_if_found_broken(self) -> None:
        """Replace workers that compaction found dead; batches in flight would find it themselves."""
        broken, self._pool_found_broken = self._pool_found_broken, None
        if broken is not None and broken is self._pool and not self._inflight:
            log.warning("worker processes died; starting new ones")
            self._replace_pool()

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        batch: list[WalRecord] = []
        batch_bytes = 0
        deadline = time.monotonic() + self.flush_interval
        while not self._stop.is_set():
            self._resume.wait()
            if self._stop.is_set():
                break
            with self._gate:  # pause() waits for this round to finish
                if not self._resume.is_set():
                    continue
                wait = max(0.0, min(deadline - time.monotonic(), 0.25))
                if self.wal.wait_for_data(self.reader.position, wait) and not self._stop.is_set():
                    records = self.reader.read(_BATCH_BYTES - batch_bytes)
                    batch.extend(records)
                    batch_bytes += sum(r.next_offset - r.offset for r in records)
                    self._report_damage()
                if batch and (batch_bytes >= _BATCH_BYTES or time.monotonic() >= deadline):
                    self._submit(batch)
                    batch, batch_bytes = [], 0
                if time.monotonic() >= deadline:
                    deadline = time.monotonic() + self.flush_interval
                # Bounded work in flight keeps the collector's memory flat while workers are busy.
                self._settle(block=len(self._inflight) > self.workers)
                self._replace_pool_if_found_broken()
                if self._rewound:
                    batch, batch_bytes, self._rewound = [], 0, False
                elif not batch and not self._inflight and self.reader.position != self.wal.committed().get(CONSUMER):
                    self._commit(self.reader.position)  # nothing pending (a commit failed, or only damage was read)
        if self._drain_on_stop:
            self._drain_backlog(batch, batch_bytes)
        elif batch:
            self._submit(batch)
        while self._inflight:
            self._settle(block=True)
        backlog = self.wal.durable_offset - self.wal.committed()[CONSUMER]
        if backlog > 0:
            log.warning("parquet consumer stopped with %d WAL bytes unprocessed; they land at the next start", backlog)

    def _drain_backlog(self, batch: list[WalRecord], batch_bytes: int) -> None:
        """Process ``batch`` (``batch_bytes`` of WAL) and what follows it in the WAL, until caught
        up, a batch fails, or ``drain_seconds`` pass.

        Workers that died (a stop signal sent to every process, as systemd's default stop does)
        are replaced and the drain goes on from the last commit; any other failure ends it."""
        deadline = time.monotonic() + self.drain_seconds
        while time.monotonic() < deadline:
            if self._rewound:
                if not self._new_workers:
                    break
                batch, batch_bytes, self._rewound, self._new_workers = [], 0, False, False
            batch.extend(self.reader.read(_BATCH_BYTES - batch_bytes))
            self._report_damage()
            if not batch:
                break
            self._submit(batch)
            batch, batch_bytes = [], 0
            self._settle(block=len(self._inflight) > self.workers)

    def _submit(self, batch: list[WalRecord]) -> None:
        if self._pool is not None and batch and batch[0].offset < self._suspect_until:
            self._submit_one_at_a_time(batch)
            return
        end = self.reader.position
        if self._pool is not None:
            try:
                future = self._pool.submit(process_in_worker, batch)
            except Exception as exc:  # a worker died between batches, or a new one could not start
                future = Future()
                broken = exc if isinstance(exc, BrokenProcessPool) else BrokenProcessPool(f"no worker: {exc!r}")
                future.set_exception(broken)  # settled as a failed batch: a new pool, the batch again
        else:
            future = Future()
            try:
                assert self._local is not None
                future.set_result(self._local.process(batch))
            except Exception as exc:  # reported like a worker's failure
                future.set_exception(exc)
        self._inflight.append((end, future))

    def _submit_one_at_a_time(self, batch: list[WalRecord]) -> None:
        """Process the records a worker died on, each alone and waited for, then the rest of ``batch``.

        A record that makes its worker crash (a fault in native code, the kernel's OOM killer)
        would otherwise fail its batch on every retry, and nothing after it would be stored.
        """
        while self._inflight:  # commits stay in WAL order
            self._settle(block=True)
            if self._rewound:
                return
        for index, record in enumerate(batch):
            if record.offset >= self._suspect_until:
                self._submit(batch[index:])
                return
            result = self._process_alone(record)
            if result is None:  # failed as a batch does: read again from the last commit
                return
            self._count(result)
            self._commit(record.next_offset)

    def _process_alone(self, record: WalRecord) -> BatchResult | None:
        """``record`` processed alone; set aside (:func:`~collector.batch.set_aside`) once it has
        ended its worker :data:`_CRASHES_TO_SET_ASIDE` times while new workers start and answer.
        None when a failure was handed to :meth:`_recover`."""
        died: BrokenProcessPool | None = None
        for crashes in range(1, _CRASHES_TO_SET_ASIDE + 1):
            try:
                return self._run_alone(record)
            except BrokenProcessPool as exc:
                log.error("a worker died with the WAL record at offset %d alone (%d times)", record.offset, crashes)
                self._replace_pool()
                died = exc
            except Exception as exc:  # as a batch's failure (a full disk, no worker): retried later
                self._recover(exc)
                return None
        assert died is not None
        try:
            if not self._workers_answer():  # workers cannot run at all: not the record's doing
                raise died
            set_aside(self.root, record, died)
        except (BrokenProcessPool, OSError) as exc:  # (OSError: the set-aside met a full disk, say)
            self._recover(exc)
            return None
        return BatchResult(records=1, set_aside=1)

    def _run_alone(self, record: WalRecord) -> BatchResult:
        """``record`` as a batch of its own; BrokenProcessPool only if its worker died with it."""
        assert self._pool is not None
        try:
            future = self._pool.submit(process_in_worker, [record])
        except Exception as exc:  # the pool broke before the record reached it
            self._replace_pool()
            raise RuntimeError(f"no worker: {exc!r}") from exc
        return future.result()

    def _workers_answer(self) -> bool:
        """Whether new workers start and answer (then a crash was the record's doing)."""
        assert self._pool is not None
        try:
            return self._pool.submit(worker_is_ready).result()
        except Exception:
            return False

    def _settle(self, block: bool) -> None:
        """Account for finished batches in WAL order; commit after the last one that succeeded."""
        committed = None
        while self._inflight and (block or self._inflight[0][1].done()):
            end, future = self._inflight[0]
            try:
                result = future.result()
            except BaseException as exc:  # whatever a worker raised: this thread must go on
                self._recover(exc)
                return
            self._inflight.popleft()
            self._count(result)
            committed = end
            block = False
        if committed is not None:
            self._commit(committed)

    def _commit(self, offset: int) -> None:
        """Persist the consumer offset; if that fails (disk full) keep going, it is retried when idle.

        Until it succeeds the WAL keeps the records, and a crash meanwhile only means the batches
        since the last commit are written again (their rows read as one).
        """
        try:
            self.reader.commit(offset)
        except OSError as exc:
            self.telemetry.consumer_errors.labels(CONSUMER, "commit_failed").inc()
            log.error("parquet consumer offset not committed offset=%d error=%s; retrying", offset, exc)
            self._stop.wait(_RETRY_SECONDS)

    def _recover(self, error: BaseException) -> None:
        """A batch failed (e.g. disk full): drop what is in flight and read again from the commit point."""
        self.telemetry.consumer_errors.labels(CONSUMER, "batch_failed").inc()
        if isinstance(error, BrokenProcessPool) and self._inflight:
            # A worker died: one of the records in flight may be what kills it.
            self._suspect_until = max(self._suspect_until, self._inflight[-1][0])
        for _, future in self._inflight:
            future.cancel()
        for _, future in self._inflight:
            if not future.cancelled():
                with contextlib.suppress(BaseException):  # already reported through the first
                    future.result()
        self._inflight.clear()
        committed = self.wal.committed()[CONSUMER]
        log.error("parquet batch failed error=%s; retrying from offset %d", error, committed)
        self._new_workers = False
        if isinstance(error, BrokenProcessPool) and self._pool is not None:
            self._replace_pool()
            self._new_workers = True
        self.reader.position = committed
        self._rewound = True
        self._stop.wait(_RETRY_SECONDS)

    def _count(self, result: BatchResult) -> None:
        t = self.telemetry
        t.consumed.labels(CONSUMER).inc(result.records)
        t.batch_cpu_seconds.inc(result.cpu_seconds)
        if result.set_aside:
            t.consumer_errors.labels(CONSUMER, "set_aside").inc(result.set_aside)
        for project, warnings in result.warnings_by_project.items():
            t.mapping_warnings.labels(project).inc(warnings)
        if result.files:
            t.flushes.inc()
            t.flush_seconds.observe(result.seconds)
        for table, rows in result.rows_by_table.items():
            t.rows_written.labels(table).inc(rows)

    def _report_damage(self) -> None:
        if self.reader.skipped_bytes:
            self.telemetry.consumer_errors.labels(CONSUMER, "damaged_bytes").inc(self.reader.skipped_bytes)
            self.reader.skipped_bytes = 0
