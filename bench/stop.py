"""How long the Parquet pipeline's stop takes while a compaction pass is merging.

Writes the ingest benchmark's requests as flush files (`bench/compaction.py`'s batches), starts
the pipeline with one worker and an empty WAL, starts a compaction pass on that worker, and after
``--after`` seconds stops the pipeline (what SIGTERM does once the receivers are closed), timing
the stop. Prints the median of the repeats, and what the pass did.

    .venv/bin/python bench/stop.py [--records 64] [--after 1.0] [--repeats 3] [--code DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def measure(records: int, after: float) -> dict[str, Any]:
    """Seconds a stop took ``after`` seconds into a compaction pass over ``records`` records' files."""
    import compaction  # bench/compaction.py and bench/worker_batch.py, beside this file
    import worker_batch

    from collector import batch as batch_module
    from collector.batch import BatchProcessor
    from collector.pipeline import ParquetPipeline
    from collector.telemetry import Telemetry
    from storage.wal import WriteAheadLog

    records_list = worker_batch.wal_records(records)
    with tempfile.TemporaryDirectory() as data:
        root = Path(data)
        compaction.write_flush_files(BatchProcessor(root), records_list)
        wal = WriteAheadLog(root / "wal")
        wal.open()
        pipeline = ParquetPipeline(wal, root, Telemetry(), workers=1)
        pipeline.start()
        if hasattr(pipeline, "compact"):
            run_pass = lambda: pipeline.compact(0, 10.0)  # noqa: E731
        else:  # older checkouts (--code) ran compaction as a generic task
            run_pass = lambda: pipeline.run_task(batch_module.compact, str(root), 0, 10.0)  # noqa: E731
        result: dict[str, Any] = {}
        compacting = threading.Thread(target=lambda: result.update(stats=run_pass()))
        compacting.start()
        time.sleep(after)
        started = time.monotonic()
        wal.close()
        pipeline.stop()
        compacting.join()
        stop_seconds = time.monotonic() - started
        stats = result.get("stats")
        return {
            "stop_s": stop_seconds,
            "merges": stats.merges if stats else None,
            "unfinished": stats.unfinished if stats else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=64, help="records of 512 spans written as flush files")
    parser.add_argument("--after", type=float, default=1.0, help="seconds into the pass the stop comes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent, help="checkout to run")
    args = parser.parse_args()
    sys.path[:0] = [str(args.code), str(Path(__file__).resolve().parent)]
    runs = [measure(args.records, args.after) for _ in range(args.repeats)]
    print(f"{args.code}: stop {args.after:.1f} s into a compaction pass over {args.records} records' flush files")
    for run in runs:
        print(f"  stop took {run['stop_s']:.2f} s; the pass: {run['merges']} merges, unfinished {run['unfinished']}")
    print(f"  median {statistics.median(run['stop_s'] for run in runs):.2f} s")


if __name__ == "__main__":
    main()
