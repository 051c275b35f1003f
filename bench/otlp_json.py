"""OTLP/JSON parsing, per span: the receiver's quick path against protobuf's json_format, and protobuf.

Parses the ingest benchmark's 512-span requests as OpenTelemetry JS's exporter writes them (hex
ids, 64-bit integers as strings) with ``collector.otlp_json.parse`` (the quick path),
``parse_document`` (json_format, what every OTLP/JSON body went through before), and, for scale,
the same request as protobuf with ``FromString``. The three alternate, pass by pass, so the
ratios come from one run on this shared machine::

    .venv/bin/python bench/otlp_json.py [--passes 7] [--requests 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from collector import otlp_json  # noqa: E402

SPANS = 512


def as_otlp_json(payload: bytes) -> bytes:
    """A protobuf request as OTLP/JSON, as OpenTelemetry's exporters write it (hex ids, enums as numbers)."""
    return orjson.dumps(otlp_json.to_document(ExportTraceServiceRequest.FromString(payload), integer_enums=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--requests", type=int, default=4, help="requests of 512 spans per pass")
    args = parser.parse_args()
    import ingest  # bench/ingest.py

    now = time.time_ns()
    payloads = [ingest.fresh_payload(ingest.build_template(seed, SPANS, now)) for seed in range(args.requests)]
    bodies = [as_otlp_json(payload) for payload in payloads]
    for body, payload in zip(bodies, payloads, strict=True):
        assert otlp_json.parse(body, ExportTraceServiceRequest) == ExportTraceServiceRequest.FromString(payload)
    ways: dict[str, Callable[[int], Any]] = {
        "quick path (otlp_json.parse)": lambda i: otlp_json.parse(bodies[i], ExportTraceServiceRequest),
        "json_format (parse_document)": lambda i: otlp_json.parse_document(
            orjson.loads(bodies[i]), ExportTraceServiceRequest
        ),
        "protobuf FromString": lambda i: ExportTraceServiceRequest.FromString(payloads[i]),
    }
    per_span: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.passes):
        for name, parse in ways.items():
            started = time.process_time()
            for index in range(args.requests):
                parse(index)
            per_span[name].append((time.process_time() - started) / (args.requests * SPANS) * 1e6)
    print(f"{args.requests} requests of {SPANS} spans ({len(bodies[0]):,} bytes of JSON each), {args.passes} passes")
    quick = statistics.median(per_span["quick path (otlp_json.parse)"])
    for name, figures in per_span.items():
        median = statistics.median(figures)
        print(f"  {name:30} {median:8.1f} µs/span CPU (median)  {median / quick:5.2f}x the quick path")


if __name__ == "__main__":
    main()
