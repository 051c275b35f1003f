"""The Parquet pipeline: a WAL consumer that maps records and writes the tables.

It reads durable WAL records, maps them with :mod:`semconv`, buffers rows per partition and
flushes at least every ``flush_interval`` while data arrives. Its WAL offset is committed only
after the files of a flush are durable, so a crash replays the uncommitted tail; rows written
twice that way read as one (dedup on read and in compaction).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from google.protobuf.message import DecodeError

from collector.ingest import LOGS, TRACES
from collector.pricing import PriceTable
from collector.telemetry import Telemetry
from semconv.mapping import map_logs_request, map_traces_request
from storage.parquet_writer import PartitionedWriter
from storage.wal import Signal, WalReader, WalRecord, WriteAheadLog

log = logging.getLogger("spanfuse.pipeline")

CONSUMER = "parquet"
_READ_BYTES = 8 * 1024 * 1024
_MAX_BUFFERED_ROWS = 200_000


def price(observation: dict[str, Any], prices: PriceTable, project_id: str) -> None:
    """Compute the cost of a model call from its usage, unless the client already sent one.

    ``cost_source`` says where a cost came from: ``provided``, ``computed``, or ``unknown_model``
    when there is usage but no price for the model (then there is no cost, never a guess).
    """
    usage = observation.get("usage_details")
    if not usage or observation.get("cost_source") == "provided":
        return
    at = dt.datetime.fromtimestamp(observation["start_time"] / 1e6, dt.UTC)
    result = prices.cost(usage, observation.get("model"), observation.get("provider"), project_id, at)
    if result.unknown_model:
        observation["cost_source"] = "unknown_model"
        return
    observation["cost_details"] = result.cost_details
    observation["total_cost"] = result.total_cost
    observation["cost_source"] = "computed"
    observation["matched_model"] = result.matched_model


class ParquetPipeline:
    """Runs in its own thread; :meth:`stop` flushes what is buffered and commits."""

    def __init__(
        self,
        wal: WriteAheadLog,
        writer: PartitionedWriter,
        telemetry: Telemetry,
        prices: PriceTable,
        flush_interval: float = 1.0,
    ) -> None:
        self.wal = wal
        self.writer = writer
        self.prices = prices
        self.telemetry = telemetry
        self.flush_interval = flush_interval
        self.reader: WalReader = wal.consumer(CONSUMER)
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._thread = threading.Thread(target=self._run, name="parquet-pipeline", daemon=True)
        self._pending_offset = self.reader.position

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._resume.set()
        self._thread.join()

    def pause(self) -> None:
        """Stop consuming (the WAL backlog grows); used by tests and operators."""
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def lag_bytes(self) -> int:
        return self.reader.lag_bytes()

    def _run(self) -> None:
        deadline = time.monotonic() + self.flush_interval
        while not self._stop.is_set():
            self._resume.wait()
            if self._stop.is_set():
                break
            remaining = max(0.0, deadline - time.monotonic())
            if self.wal.wait_for_data(self.reader.position, min(remaining, 0.25)) and not self._stop.is_set():
                self._consume(self.reader.read(_READ_BYTES))
            if time.monotonic() >= deadline or self.writer.buffered_rows >= _MAX_BUFFERED_ROWS:
                self._flush()
                deadline = time.monotonic() + self.flush_interval
        self._flush()

    def _consume(self, records: list[WalRecord]) -> None:
        for record in records:
            try:
                self._map(record)
            except (DecodeError, UnicodeDecodeError, ValueError) as exc:
                # Validated at ingest, so this is damage on disk: report it, keep the rest.
                self.telemetry.consumer_errors.labels(CONSUMER, "undecodable").inc()
                log.error("wal record undecodable offset=%d error=%s", record.offset, exc)
            self.telemetry.consumed.labels(CONSUMER).inc()
            self._pending_offset = record.next_offset
        if self.reader.skipped_bytes:
            self.telemetry.consumer_errors.labels(CONSUMER, "damaged_bytes").inc(self.reader.skipped_bytes)
            self.reader.skipped_bytes = 0
        self._pending_offset = self.reader.position

    def _map(self, record: WalRecord) -> None:
        ingest = {"ingested_at": record.received_ns // 1000, "ingest_seq": record.offset}
        if record.signal == Signal.TRACES:
            mapped = map_traces_request(TRACES.request_type.FromString(record.payload))
            for observation in mapped.observations:
                price(observation, self.prices, record.project_id)
            self.writer.add("observations", record.project_id, mapped.observations, ingest)
            self.writer.add("traces", record.project_id, mapped.traces, ingest)
            if mapped.warnings:
                self.telemetry.mapping_warnings.labels(record.project_id).inc(mapped.warnings)
        elif record.signal == Signal.LOGS:
            rows = map_logs_request(LOGS.request_type.FromString(record.payload), record.received_ns)
            self.writer.add("logs", record.project_id, rows, ingest)
        else:
            raise ValueError(f"unknown signal {record.signal}")

    def _flush(self) -> None:
        offset = self._pending_offset
        if self.writer.buffered_rows == 0:
            if offset != self.wal.committed().get(CONSUMER):
                self.reader.commit(offset)
            return
        try:
            result = self.writer.flush()
        except OSError as exc:
            # Nothing is committed: rewind and map the same records again on the next round.
            self.telemetry.consumer_errors.labels(CONSUMER, "flush_failed").inc()
            log.error("parquet flush failed error=%s; will retry from offset %d", exc, self.wal.committed()[CONSUMER])
            self.writer.discard()
            self.reader.position = self._pending_offset = self.wal.committed()[CONSUMER]
            time.sleep(1.0)
            return
        self.reader.commit(offset)
        self.telemetry.flushes.inc()
        self.telemetry.flush_seconds.observe(result.seconds)
        for table, rows in result.rows_by_table.items():
            self.telemetry.rows_written.labels(table).inc(rows)
        log.debug("flushed files=%d rows=%d seconds=%.3f", result.files, result.rows, result.seconds)
