"""A worker's batch, per span: decode, map, price, Arrow and Parquet — what bounds end-to-end ingest.

Runs records of the ingest benchmark's 512-span requests (`bench/ingest.py`'s templates, fresh
ids) through `collector.batch.BatchProcessor` into a temporary directory, as a pipeline worker
does with a batch it is handed.

    .venv/bin/python bench/worker_batch.py [--records 32] [--repeats 5]
        spans/s on one core: CPU time of each repeat, median
    .venv/bin/python bench/worker_batch.py --callgrind [--records 8]
        instructions per span, counted by valgrind's callgrind: a run with the records minus a
        run without (start-up, imports and building the requests cancel out). Repeatable to a
        fraction of a percent, where this shared machine's wall clock swings by ±40 %.

``--code DIR`` runs another checkout's collector (e.g. a `git worktree` of an older commit, with
its own `spanfuse build-mapper`), to compare two versions on the same requests.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPANS_PER_RECORD = 512


def payloads(count: int) -> list[bytes]:
    """``count`` ingest-benchmark requests of 512 spans (8 templates, fresh ids in each)."""
    import ingest  # bench/ingest.py, beside this file

    now = time.time_ns()
    templates = [ingest.build_template(seed, SPANS_PER_RECORD, now) for seed in range(8)]
    return [ingest.fresh_payload(templates[index % len(templates)]) for index in range(count)]


def wal_records(count: int) -> list[Any]:
    """:func:`payloads` as the WAL records a pipeline worker is handed."""
    from storage.wal import Signal, WalRecord

    now = time.time_ns()
    return [
        WalRecord(index, index + 1, Signal.TRACES, "bench", now, payload)
        for index, payload in enumerate(payloads(count))
    ]


def measure(records: int, repeats: int, *, process: bool = True) -> dict[str, Any]:
    """Spans/s (CPU time) of one process processing ``records`` records per repeat.

    ``process=False`` does everything but the repeats (callgrind's baseline run).
    """
    from collector import native
    from collector.batch import BatchProcessor

    batch = wal_records(records + 1)
    with tempfile.TemporaryDirectory() as data:
        processor = BatchProcessor(data)
        processor.process(batch[:1])  # warm: first conversions, price lookups, file creation
        rates = []
        for _ in range(repeats if process else 0):
            started = time.process_time()
            processor.process(batch[1:])
            rates.append(records * SPANS_PER_RECORD / (time.process_time() - started))
    return {"build": str(native.active_build()) if native.active_build() else None, "spans_per_s": rates}


def _instructions(records: int, code: Path, *, process: bool) -> int:
    """Instructions callgrind counts for one pass over ``records`` (or its baseline, which skips it)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--run-only" if process else "--baseline",
            "--records",
            str(records),
            "--code",
            str(code),
        ]
        subprocess.run(command, check=True, capture_output=True)
        summary = out.read_text(errors="replace")
    match = re.search(r"^(?:summary|totals): (\d+)", summary, re.MULTILINE)
    if match is None:
        raise RuntimeError("no instruction total in callgrind's output")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=None, help="records of 512 spans (32; 8 with --callgrind)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true", help="count instructions per span instead of timing")
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent, help="checkout to run")
    parser.add_argument("--run-only", action="store_true", help=argparse.SUPPRESS)  # one pass, for callgrind
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)  # the same without the pass
    args = parser.parse_args()
    sys.path[:0] = [str(args.code), str(Path(__file__).resolve().parent)]
    if args.run_only or args.baseline:
        measure(args.records, 1, process=args.run_only)
        return
    if args.callgrind:
        records = args.records or 8
        spans = records * SPANS_PER_RECORD
        counts = [_instructions(records, args.code, process=process) for process in (True, False)]
        per_span = (counts[0] - counts[1]) / spans
        print(f"{args.code}: {per_span:,.0f} instructions per span (callgrind, {spans:,} spans, one warm-up record)")
        return
    records = args.records or 32
    figures = measure(records, args.repeats)
    print(f"{args.code}: build {figures['build'] or 'none (plain Python source)'}")
    rates = ", ".join(f"{rate:,.0f}" for rate in figures["spans_per_s"])
    median = statistics.median(figures["spans_per_s"])
    print(f"worker batch, {records * SPANS_PER_RECORD:,} spans per repeat: {median:,.0f} spans/s CPU time ({rates})")


if __name__ == "__main__":
    main()
