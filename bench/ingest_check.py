"""The collector's check of a trace request before it is acknowledged, per span: decode and ids.

Runs the ingest benchmark's 512-span requests through what a receiver does before the WAL:
``collector.ingest.parse_traces`` and ``remove_invalid_items`` (with the compiled mapper: spans
left encoded and checked by the C span reader), against decoding the whole request with
protobuf and checking every span's ids in Python (what it did before, and still does for
OTLP/JSON). Both alternate, pass by pass, so the ratio comes from one run on this shared
machine. ``--events`` gives every span an exception event (such spans the C reader leaves to
protobuf; the check walks them itself)::

    .venv/bin/python bench/ingest_check.py [--passes 15] [--requests 4] [--events]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from collector import native  # noqa: E402
from collector.ingest import TRACES, parse_traces, remove_invalid_items  # noqa: E402

SPANS = 512


def requests(count: int, events: bool) -> list[bytes]:
    """``count`` ingest-benchmark requests (fresh ids), every span with an exception event if ``events``."""
    import ingest  # bench/ingest.py, beside this file

    now = time.time_ns()
    payloads = [ingest.fresh_payload(ingest.build_template(seed, SPANS, now)) for seed in range(count)]
    if not events:
        return payloads
    with_events = []
    for payload in payloads:
        request = ExportTraceServiceRequest.FromString(payload)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    event = span.events.add(name="exception", time_unix_nano=now)
                    event.attributes.add(key="exception.message").value.string_value = "boom"
        with_events.append(request.SerializeToString())
    return with_events


def checked(payloads: list[bytes]) -> None:
    """What the receivers do now."""
    for payload in payloads:
        remove_invalid_items(TRACES, parse_traces(payload))


def decoded(payloads: list[bytes]) -> None:
    """The whole request decoded by protobuf, each span's ids checked in Python."""
    for payload in payloads:
        remove_invalid_items(TRACES, ExportTraceServiceRequest.FromString(payload))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--events", action="store_true", help="an exception event on every span")
    args = parser.parse_args()
    payloads = requests(args.requests, args.events)
    spans = args.requests * SPANS
    ways: dict[str, Callable[[list[bytes]], None]] = {"now": checked, "protobuf": decoded}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.passes):
        for name, way in ways.items():
            started = time.process_time()
            way(payloads)
            times[name].append((time.process_time() - started) / spans * 1e6)
    build = native.active_build()
    print(f"build: {build or 'none (plain Python: the check decodes with protobuf either way)'}")
    print(f"{spans:,} spans a pass{' with an event each' if args.events else ''}, medians of {args.passes} passes:")
    for name, values in times.items():
        print(f"  {name:9s} {statistics.median(values):.3f} µs a span")
    print(f"  ratio     {statistics.median(times['protobuf']) / statistics.median(times['now']):.2f}x")


if __name__ == "__main__":
    main()
