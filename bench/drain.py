"""The Parquet pipeline draining a WAL backlog with no client load: spans/s with N worker processes.

Appends the ingest benchmark's 512-span requests (`bench/worker_batch.py`'s payloads, fresh ids)
to a WAL in a temporary directory, then starts `collector.pipeline.ParquetPipeline` on it and times
until the pipeline has committed the whole backlog (every span durable in Parquet). Worker
start-up (about a second of CPU) is inside the time, as it is after a collector restart.

    .venv/bin/python bench/drain.py [--records 600] [--workers 2] [--rounds 1] [--code DIR]

``--code DIR`` runs another checkout's collector (see `bench/worker_batch.py`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil


def drain(records: int, workers: int) -> dict[str, float]:
    """Fill a WAL with ``records`` requests, drain it; spans/s and CPU seconds of both sides."""
    import worker_batch  # bench/worker_batch.py, beside this file

    from collector.pipeline import CONSUMER, ParquetPipeline
    from collector.telemetry import Telemetry
    from storage.wal import Signal, WriteAheadLog

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wal = WriteAheadLog(root / "wal")
        wal.open()
        appended = [wal.append(Signal.TRACES, "bench", payload) for payload in worker_batch.payloads(records)]
        end = max(future.result() for future in appended)
        pipeline = ParquetPipeline(wal, root, Telemetry(), workers=workers, flush_interval=1.0)
        me = psutil.Process()
        cpu_before = me.cpu_times()
        started = time.perf_counter()
        pipeline.start()
        while wal.committed().get(CONSUMER, 0) < end:
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        worker_cpu = sum(sum(child.cpu_times()[:2]) for child in me.children(recursive=True))
        cpu_after = me.cpu_times()
        pipeline.stop()
        wal.close()
    return {
        "spans": records * worker_batch.SPANS_PER_RECORD,
        "spans_per_s": records * worker_batch.SPANS_PER_RECORD / seconds,
        "seconds": seconds,
        "collector_cpu": cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system,
        "workers_cpu": worker_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600, help="records of 512 spans in the backlog")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent, help="checkout to run")
    args = parser.parse_args()
    sys.path[:0] = [str(args.code), str(Path(__file__).resolve().parent)]
    # The workers' forkserver imports its preloaded modules before it takes this sys.path: from its
    # working directory first, else from the installed checkout (whatever --code says).
    os.chdir(args.code)
    rates = []
    for _ in range(args.rounds):
        figures = drain(args.records, args.workers)
        rates.append(figures["spans_per_s"])
        print(
            f"{args.code}: {figures['spans_per_s']:,.0f} spans/s drained ({figures['spans']:,.0f} spans "
            f"in {figures['seconds']:.2f} s, workers: {args.workers}); "
            f"CPU: collector {figures['collector_cpu']:.2f} s, workers {figures['workers_cpu']:.2f} s"
        )
    if args.rounds > 1:
        print(f"median {statistics.median(rates):,.0f} spans/s over {args.rounds} rounds")


if __name__ == "__main__":
    main()
