"""OTLP/JSON ingest end to end: a collector under OpenTelemetry JS-style JSON load, its CPU per span.

Starts a collector from this checkout (as ``bench/ingest.py`` does), then ``--clients`` processes
POST the ingest benchmark's 512-span requests as OTLP/JSON (hex ids, 64-bit integers as strings:
what OpenTelemetry JS's exporter sends) to ``/v1/traces`` back to back for ``--seconds``, while
``/api/public/health`` is timed every 0.2 s beside them. Prints spans/s acknowledged, the
collector process's CPU per acknowledged span (its workers not included: they map and write the
same protobuf either way) and the health check's latency::

    .venv/bin/python bench/otlp_json_load.py [--seconds 15] [--clients 2]

Each client repeats a few bodies, so many spans arrive more than once (duplicates read as one);
the figure is the collector's cost of receiving, not how many distinct spans it stored.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import ingest  # noqa: E402  (bench/ingest.py: the requests and the server process)
from otlp_json import as_otlp_json  # noqa: E402

BODIES_PER_CLIENT = 4
SPANS = 512


def client(port: int, bodies: list[bytes], seconds: float, results: Any) -> None:
    """POST ``bodies`` in turn until ``seconds`` are up; put (spans acked, requests refused)."""
    headers = {"authorization": ingest.AUTHORIZATION, "content-type": "application/json"}
    acked = refused = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http:
        deadline = time.monotonic() + seconds
        index = 0
        while time.monotonic() < deadline:
            response = http.post(ingest.HTTP_PATH, content=bodies[index % len(bodies)])
            index += 1
            if response.status_code == 200:
                acked += SPANS
            else:
                refused += 1
    results.put((acked, refused))


def time_health(port: int, stop: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        while not stop.wait(0.2):
            started = time.perf_counter()
            http.get("/api/public/health")
            latencies.append((time.perf_counter() - started) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    now = time.time_ns()
    seeds = [range(i * BODIES_PER_CLIENT, (i + 1) * BODIES_PER_CLIENT) for i in range(args.clients)]
    bodies = [[as_otlp_json(ingest.fresh_payload(ingest.build_template(s, SPANS, now))) for s in own] for own in seeds]
    with tempfile.TemporaryDirectory(prefix="spanfuse-json-load-") as workdir:
        server = ingest.ServerProcess(Path(workdir))
        process = server.start()
        try:
            time.sleep(2)  # start-up work (price data, first compaction pass) out of the figures
            context = mp.get_context("spawn")
            results = context.Queue()
            clients = [
                context.Process(target=client, args=(server.http_port, bodies[i], args.seconds, results))
                for i in range(args.clients)
            ]
            latencies: list[float] = []
            stop = threading.Event()
            health = threading.Thread(target=time_health, args=(server.http_port, stop, latencies), daemon=True)
            before = process.cpu_times()
            for proc in clients:
                proc.start()
            health.start()
            outcomes = [results.get(timeout=args.seconds + 120) for _ in clients]
            after = process.cpu_times()
            stop.set()
            health.join(timeout=30)
            for proc in clients:
                proc.join(timeout=30)
        finally:
            server.terminate()
    acked = sum(spans for spans, _ in outcomes)
    refused = sum(count for _, count in outcomes)
    cpu = (after.user + after.system) - (before.user + before.system)
    print(f"OTLP/JSON, {args.clients} clients, {args.seconds:.0f} s: {acked / args.seconds:,.0f} spans/s acknowledged")
    print(f"  collector CPU (workers not included): {cpu * 1e6 / max(acked, 1):.1f} µs/span")
    print(f"  requests refused (retryable): {refused}")
    if latencies:
        print(f"  /api/public/health: p50 {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms")


if __name__ == "__main__":
    main()
