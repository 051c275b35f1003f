"""Storage cost: bytes on disk per span, as written and after compaction, vs. bytes of OTLP received.

Builds the ingest benchmark's realistic GenAI requests (``bench/ingest.py``: 512 spans each, ~15
attributes and ~1 KB of messages per span), gives them with fresh ids to the collector's own
batch processor (decode, map, price, write Parquet — what the pipeline's workers run) one request
per batch, as a collector flushing about once per request would, then compacts the data directory
with the collector's compactor. Prints bytes per span for the OTLP protobuf payloads, the WAL
frames, the Parquet files as written and after compaction.

    .venv/bin/python bench/storage_size.py [--requests 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import build_template, fresh_payload  # noqa: E402
from collector.batch import BatchProcessor  # noqa: E402
from storage.compaction import Compactor  # noqa: E402
from storage.retired import live_paths  # noqa: E402
from storage.wal import Signal, WalRecord, encode_frame  # noqa: E402

SPANS_PER_REQUEST = 512
PROJECT = "bench"


def table_bytes(root: Path) -> tuple[int, int]:
    """Bytes and number of Parquet files under ``root/tables``."""
    files = live_paths(root / "tables")  # retired inputs of merges are deleted minutes later
    return sum(f.stat().st_size for f in files), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests of 512 spans (default: %(default)s)")
    parser.add_argument("--templates", type=int, default=16, help="distinct request templates")
    args = parser.parse_args()

    now_ns = time.time_ns()
    templates = [build_template(seed, SPANS_PER_REQUEST, now_ns) for seed in range(args.templates)]
    spans = args.requests * SPANS_PER_REQUEST
    with tempfile.TemporaryDirectory(prefix="spanfuse-size-") as tmp:
        root = Path(tmp)
        processor = BatchProcessor(root)
        otlp_bytes = wal_bytes = 0
        started = time.perf_counter()
        for i in range(args.requests):
            payload = fresh_payload(templates[i % len(templates)])
            otlp_bytes += len(payload)
            wal_bytes += sum(map(len, encode_frame(Signal.TRACES, PROJECT, time.time_ns(), payload)))
            record = WalRecord(i, i + 1, Signal.TRACES, PROJECT, time.time_ns(), payload)
            processor.process([record])
        mapping_seconds = time.perf_counter() - started
        written, files_written = table_bytes(root)
        started = time.perf_counter()
        # settle_seconds=0: compact what was just written instead of waiting for it to go quiet.
        Compactor(root, min_files=2, settle_seconds=0).run_once()
        compaction_seconds = time.perf_counter() - started
        compacted, files_compacted = table_bytes(root)

    def per_span(total: int) -> str:
        return f"{total / spans:8,.0f} B/span"

    print(
        f"spans: {spans:,} ({args.requests} requests of {SPANS_PER_REQUEST}); mapped and written in "
        f"{mapping_seconds:.1f} s, compacted in {compaction_seconds:.1f} s"
    )
    print(f"OTLP protobuf received       : {per_span(otlp_bytes)}")
    print(f"WAL frames (until consumed)  : {per_span(wal_bytes)}")
    print(f"Parquet as written           : {per_span(written)}  ({files_written:,} files)")
    print(f"Parquet after compaction     : {per_span(compacted)}  ({files_compacted:,} files)")
    print(f"compacted / OTLP received    : {compacted / otlp_bytes:8.2f}")


if __name__ == "__main__":
    main()
