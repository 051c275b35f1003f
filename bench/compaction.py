"""Compaction's CPU per span next to a worker's batch: the share of a worker's time it takes.

Every span a collector stores is written twice: once by a worker's batch into a flush file (LZ4,
arrival order), and once more when compaction merges those files into one sorted zstd file. This
runs both on the ingest benchmark's requests (`bench/worker_batch.py`'s records) in one process:
batches of 4 records into a temporary directory, then `storage.compaction.Compactor.merge` over
every partition, `--merge-files` flush files at a time, as a worker's pass does every
`compaction_interval` (with the malloc thresholds `collector.allocator` sets there). It prints CPU
time per span of each (median of the repeats) and bytes per span on disk before and after.

    .venv/bin/python bench/compaction.py [--records 128] [--merge-files 16] [--repeats 3] [--code DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RECORDS_PER_BATCH = 4


def _disk_bytes(root: Path) -> int:
    from storage.retired import live_paths

    return sum(f.stat().st_size for f in live_paths(root / "tables"))


def write_flush_files(processor: Any, records: list[Any]) -> None:
    """``records`` as a worker writes them: batches of ``RECORDS_PER_BATCH``, each its flush files."""
    for first in range(0, len(records), RECORDS_PER_BATCH):
        processor.process(records[first : first + RECORDS_PER_BATCH])


def measure(records: int, merge_files: int) -> dict[str, float]:
    """Write ``records`` records as flush files, then compact them ``merge_files`` at a time; CPU µs
    per span of each step."""
    import worker_batch  # bench/worker_batch.py, beside this file

    from collector.batch import BatchProcessor
    from storage.compaction import Compactor, partitions
    from storage.schema import TABLES

    try:  # set where a worker compacts (collector.batch.compact); a checkout from before has none
        from collector import allocator
    except ImportError:
        allocator = None

    batch = worker_batch.wal_records(records)
    spans = records * worker_batch.SPANS_PER_RECORD
    with tempfile.TemporaryDirectory() as data:
        root = Path(data)
        processor = BatchProcessor(root)
        started = time.process_time()
        write_flush_files(processor, batch)
        batches = time.process_time() - started
        flushed = _disk_bytes(root)
        compactor = Compactor(root)
        files = 0
        if allocator:
            allocator.reuse_freed_memory()
        started = time.process_time()
        for name, spec in TABLES.items():
            for partition in partitions(root, name):
                inputs = sorted(partition.glob("*.parquet"))
                files += len(inputs)
                for first in range(0, len(inputs), merge_files):
                    compactor.merge(spec, partition, inputs[first : first + merge_files])
        if hasattr(compactor, "close"):  # a checkout from before the pass shared its connection
            compactor.close()
        if allocator:
            allocator.give_back_freed_memory()
        compaction = time.process_time() - started
        return {
            "spans": spans,
            "batch_us": batches / spans * 1e6,
            "compaction_us": compaction / spans * 1e6,
            "files": files,
            "flushed_bytes": flushed / spans,
            "compacted_bytes": _disk_bytes(root) / spans,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=128, help="records of 512 spans per repeat")
    parser.add_argument(
        "--merge-files", type=int, default=16, help="flush files per merge (a busy partition takes several merges)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent, help="checkout to run")
    args = parser.parse_args()
    sys.path[:0] = [str(args.code), str(Path(__file__).resolve().parent)]
    runs: list[dict[str, Any]] = [measure(args.records, args.merge_files) for _ in range(args.repeats)]

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    batch, compaction = median("batch_us"), median("compaction_us")
    print(f"{args.code}: {runs[0]['spans']:,} spans per repeat, medians of {args.repeats}")
    files, flushed = runs[0]["files"], median("flushed_bytes")
    print(f"  worker batches  {batch:6.1f} µs/span CPU -> {files} flush files, {flushed:,.0f} B/span")
    print(f"  compaction      {compaction:6.1f} µs/span CPU -> {median('compacted_bytes'):,.0f} B/span")
    print(f"  compaction / batch: {compaction / batch:.2f}")


if __name__ == "__main__":
    main()
