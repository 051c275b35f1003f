"""Map a batch of WAL records into rows, price them, and publish them as Parquet files.

This is the CPU-heavy half of the Parquet pipeline. It runs in worker processes (so mapping
uses every core instead of sharing the receivers' interpreter lock) or, with ``workers: 0``,
inside the collector process. A batch either succeeds as a whole (its files are durable) or
raises; the pipeline commits WAL offsets only for batches that succeeded, in order.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from collector.ingest import LOGS, TRACES
from collector.pricing import PriceTable, PricingEntry
from semconv.mapping import map_logs_request, map_traces_request
from storage.parquet_writer import PartitionedWriter
from storage.wal import Signal, WalRecord

log = logging.getLogger("spanfuse.pipeline")


@dataclass
class BatchResult:
    records: int = 0
    undecodable: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
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
    at = dt.datetime.fromtimestamp(observation["start_time"] / 1e6, dt.UTC)
    result = prices.cost(usage, observation.get("model"), observation.get("provider"), project_id, at)
    if result.unknown_model:
        observation["cost_source"] = "unknown_model"
        return
    observation["cost_details"] = result.cost_details
    observation["total_cost"] = result.total_cost
    observation["cost_source"] = "computed"
    observation["matched_model"] = result.matched_model


class BatchProcessor:
    """Turns WAL records into published Parquet files; one per process."""

    def __init__(self, root: str | Path, pricing: list[PricingEntry] | None = None) -> None:
        self.writer = PartitionedWriter(root)
        self.prices = PriceTable(pricing or ())
        self.prices.warm()

    def process(self, records: list[WalRecord]) -> BatchResult:
        result = BatchResult()
        try:
            for record in records:
                result.records += 1
                try:
                    self._map(record, result)
                except (DecodeError, UnicodeDecodeError, ValueError) as exc:
                    # Validated at ingest, so this is damage on disk: report it, keep the rest.
                    result.undecodable += 1
                    log.error("wal record undecodable offset=%d error=%s", record.offset, exc)
            flushed = self.writer.flush()
        except BaseException:
            self.writer.discard()
            raise
        result.files, result.bytes, result.seconds = flushed.files, flushed.bytes, flushed.seconds
        result.rows_by_table = flushed.rows_by_table
        return result

    def _map(self, record: WalRecord, result: BatchResult) -> None:
        ingest = {"ingested_at": record.received_ns // 1000, "ingest_seq": record.offset}
        if record.signal == Signal.TRACES:
            mapped = map_traces_request(TRACES.request_type.FromString(record.payload))
            for observation in mapped.observations:
                price(observation, self.prices, record.project_id)
            self.writer.add("observations", record.project_id, mapped.observations, ingest)
            self.writer.add("traces", record.project_id, mapped.traces, ingest)
            if mapped.warnings:
                result.warnings_by_project[record.project_id] += mapped.warnings
        elif record.signal == Signal.LOGS:
            rows = map_logs_request(LOGS.request_type.FromString(record.payload), record.received_ns)
            self.writer.add("logs", record.project_id, rows, ingest)
        else:
            raise ValueError(f"unknown signal {record.signal}")


# ---------------------------------------------------------------- worker-process side
_processor: BatchProcessor | None = None


def init_worker(root: str, pricing: list[dict[str, Any]]) -> None:
    """Process-pool initializer: one processor per worker process, which ends with the collector."""
    global _processor
    _exit_with_parent()
    _processor = BatchProcessor(root, [PricingEntry.model_validate(entry) for entry in pricing])


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
