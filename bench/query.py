"""Query benchmark: REST read latency over a realistic dataset, before and after compaction.

1. Generates (or reuses) a dataset with :mod:`bench.dataset`: by default 1,000,000 observations
   in 100,000 traces over 3 projects and 30 days, written as the collector writes it (one file per
   partition per simulated 60 s flush; see that module for the shape).
2. With ``--compact``, runs ``Compactor.run_once()`` over it and reports files/bytes before and after.
3. Starts ``python -m collector serve`` as a child process on fixed free loopback ports, with a
   generated configuration pointing at the data directory (keys for the 3 projects, compaction
   and retention off so the layout stays as measured).
4. Measures over HTTP with Basic auth (project ``bench-0``), each endpoint ``--repeats`` times
   after ``--warmups`` warm-up calls, bounded by ``--budget`` seconds per endpoint:
   traces first page, trace by id (random known ids), observation by id, v1 observations of a trace, v2
   observations of a user, daily metrics over the 30 days, and a v2 metrics query (cost by model
   per day over the 30 days). An endpoint that is not there yet is reported as
   "404 not implemented" instead of failing the run.

Run from the repository root::

    .venv/bin/python bench/query.py --observations 100000             # quick check
    .venv/bin/python bench/query.py --data /tmp/sf-bench-1m               # 1M, reused if present
    .venv/bin/python bench/query.py --data /tmp/sf-bench-1m --compact     # compact it in place, measure again

The server's own query timeout (10 s) applies: a slower request answers 503 and is reported.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dataset import MANIFEST, DatasetSpec, disk_usage, generate, load_manifest  # noqa: E402


def keys(project: str) -> tuple[str, str]:
    return f"pk-lf-{project}", f"sk-lf-{project}"


# ---------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, data_dir: Path, projects: list[str], grpc_port: int, http_port: int) -> None:
    doc = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{http_port}"},
                }
            }
        },
        # no compaction or retention while measuring: the layout stays what the benchmark set up
        "exporters": {"parquet": {"path": str(data_dir), "flush_interval": "1s", "compaction_interval": "1000h"}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["parquet"]}}},
        "projects": [{"id": p, "name": p, "public_key": keys(p)[0], "secret_key": keys(p)[1]} for p in projects],
    }
    path.write_text(yaml.safe_dump(doc))


class ServerProcess:
    def __init__(self, workdir: Path, data_dir: Path, projects: list[str]) -> None:
        self.workdir = workdir
        self.config_path = workdir / "config.yaml"
        self.log_path = workdir / "server.log"
        self.grpc_port, self.http_port = free_port(), free_port()
        write_config(self.config_path, data_dir, projects, self.grpc_port, self.http_port)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "collector", "serve", "--config", str(self.config_path)]

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=log, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        deadline = time.monotonic() + timeout
        while not self._accepts(self.http_port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not listening after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        # The server reads its trace indexes in the background after it starts listening; lookups
        # timed before that would measure the start, not the steady state.
        while "trace indexes read" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                print(f"trace indexes still loading after {timeout}s; measuring anyway", file=sys.stderr)
                break
            time.sleep(0.1)

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# -------------------------------------------------------------------------------------------- measure
@dataclass
class Result:
    name: str
    path: str
    runs: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None
    mean_ms: float | None = None
    max_ms: float | None = None
    mean_bytes: int | None = None
    note: str = ""


def measure(
    client: httpx.Client,
    name: str,
    request: Callable[[random.Random], tuple[str, dict[str, Any]]],
    repeats: int,
    warmups: int,
    budget: float,
    seed: int,
) -> Result:
    rng = random.Random(seed)
    path, params = request(rng)
    result = Result(name, path + ("?" + str(httpx.QueryParams(params)) if params else ""))
    timings: list[float] = []
    sizes: list[int] = []
    statuses: Counter[str] = Counter()
    started = time.monotonic()
    for i in range(warmups + repeats):
        if i and time.monotonic() - started > budget:
            result.note = f"stopped after {budget:g} s budget"
            break
        path, params = request(rng)
        t0 = time.perf_counter()
        try:
            response = client.get(path, params=params)
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1
            continue
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code == 404 and _route_missing(response):
            result.statuses = {"404": 1}
            result.note = "404/not implemented"
            return result
        if i >= warmups:
            statuses[str(response.status_code)] += 1
            timings.append(elapsed)
            sizes.append(len(response.content))
    result.runs = len(timings)
    result.statuses = dict(statuses)
    if timings:
        ordered = sorted(timings)
        result.p50_ms = round(statistics.median(ordered), 1)
        result.p95_ms = round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1)
        result.mean_ms = round(statistics.fmean(ordered), 1)
        result.max_ms = round(ordered[-1], 1)
        result.mean_bytes = int(statistics.fmean(sizes))
    return result


def _route_missing(response: httpx.Response) -> bool:
    """FastAPI's answer for a path no router serves (not a 404 about a missing trace)."""
    try:
        return response.json() == {"detail": "Not Found"}
    except ValueError:
        return True


def sample_observation_ids(client: httpx.Client, trace_ids: list[str]) -> list[str]:
    """Observation ids of some sampled traces, read (untimed) through the API itself."""
    ids: list[str] = []
    for trace_id in trace_ids[:10]:
        response = client.get("/api/public/observations", params={"traceId": trace_id})
        if response.status_code == 200:
            ids.extend(row["id"] for row in response.json()["data"])
    return ids


def endpoints(
    manifest: dict[str, Any], project: str, observation_ids: list[str]
) -> list[tuple[str, Callable[[random.Random], Any]]]:
    start, end = manifest["start_date"] + "T00:00:00Z", manifest["end_date"] + "T00:00:00Z"
    trace_ids = manifest["samples"][project]["trace_ids"]
    user_ids = manifest["samples"][project]["user_ids"]
    cost_by_model = {
        "view": "observations",
        "dimensions": [{"field": "providedModelName"}],
        "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
        "filters": [],
        "timeDimension": {"granularity": "day"},
        "fromTimestamp": start,
        "toTimestamp": end,
        "orderBy": None,
        "config": {"row_limit": 1000},
    }
    return [
        ("traces: first page", lambda r: ("/api/public/traces", {})),
        ("traces/{id}", lambda r: (f"/api/public/traces/{r.choice(trace_ids)}", {})),
        ("observations/{id}", lambda r: (f"/api/public/observations/{r.choice(observation_ids)}", {})),
        ("observations?traceId=", lambda r: ("/api/public/observations", {"traceId": r.choice(trace_ids)})),
        ("v2/observations?userId=", lambda r: ("/api/public/v2/observations", {"userId": r.choice(user_ids)})),
        ("metrics/daily (30 d)", lambda r: ("/api/public/metrics/daily", {"fromTimestamp": start, "toTimestamp": end})),
        ("v2/metrics cost/model/day", lambda r: ("/api/public/v2/metrics", {"query": json.dumps(cost_by_model)})),
    ]


def run_measurements(server: ServerProcess, manifest: dict[str, Any], args: argparse.Namespace) -> list[Result]:
    project = manifest["projects"][0]
    token = base64.b64encode(":".join(keys(project)).encode()).decode()
    results = []
    with httpx.Client(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"authorization": f"Basic {token}"},
        timeout=args.timeout,
    ) as client:
        observation_ids = sample_observation_ids(client, manifest["samples"][project]["trace_ids"])
        for i, (name, request) in enumerate(endpoints(manifest, project, observation_ids or ["none"])):
            result = measure(client, name, request, args.repeats, args.warmups, args.budget, seed=i)
            results.append(result)
            print(f"  {format_row(result)}", flush=True)
    return results


def format_row(r: Result) -> str:
    def ms(value: float | None) -> str:
        return f"{value:9.1f}" if value is not None else "        -"

    statuses = ",".join(f"{k}x{v}" for k, v in sorted(r.statuses.items())) or "-"
    return f"{r.name:28s} p50 {ms(r.p50_ms)} ms  p95 {ms(r.p95_ms)} ms  n={r.runs:<3d} status {statuses:14s} {r.note}"


def describe_usage(usage: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{t}: {u['files']:,} files / {u['bytes'] / 1e6:,.1f} MB" for t, u in usage.items())


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="data directory (reused when it holds a matching dataset)")
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=3)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--flush-seconds", type=int, default=60, help="simulated flush interval of the writer")
    parser.add_argument("--workers", type=int, default=2, help="processes generating the dataset")
    parser.add_argument("--compact", action="store_true", help="run Compactor.run_once() before measuring")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per endpoint at most")
    parser.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout per request")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    print("command:", shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv), flush=True)
    spec = DatasetSpec(
        observations=args.observations, projects=args.projects, days=args.days, flush_seconds=args.flush_seconds
    )
    temporary = args.data is None
    data_dir = Path(tempfile.mkdtemp(prefix="spanfuse-bench-")) if temporary else args.data.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="spanfuse-bench-server-"))
    report: dict[str, Any] = {"command": sys.argv, "data": str(data_dir)}
    server: ServerProcess | None = None
    try:
        manifest = load_manifest(data_dir)
        if manifest is not None and spec.same_shape(manifest["spec"]):
            state = "compacted" if manifest.get("compacted") else "as written"
            print(f"reusing dataset in {data_dir} ({manifest['start_date']} .. {manifest['end_date']}, {state})")
        else:
            if (data_dir / "tables").exists():
                print(f"{data_dir} holds other data; use an empty or new --data directory", file=sys.stderr)
                return 2
            data_dir.mkdir(parents=True, exist_ok=True)
            print(
                f"generating {spec.observations:,} observations / {spec.traces:,} traces, {spec.projects} projects,"
                f" {spec.days} days, one flush per {spec.flush_seconds} s, into {data_dir}",
                flush=True,
            )
            manifest = generate(data_dir, spec, workers=args.workers)
            print(f"generated in {manifest['generation_seconds']} s")
        report["manifest"] = {k: v for k, v in manifest.items() if k != "samples"}
        rows = {t: s["rows"] for t, s in manifest["tables"].items()}
        usage = disk_usage(data_dir)
        print(f"dataset: {rows.get('observations', 0):,} observations, {rows.get('traces', 0):,} trace rows")
        print(f"on disk: {describe_usage(usage)}")
        report["before"] = usage

        if args.compact:
            from storage.compaction import Compactor

            started = time.perf_counter()
            stats = Compactor(data_dir, settle_seconds=0).run_once()
            seconds = time.perf_counter() - started
            after = disk_usage(data_dir)
            print(
                f"compacted {stats.partitions} partitions, {stats.files_in:,} files -> {stats.files_out:,}"
                f" in {seconds:.1f} s"
            )
            print(f"on disk: {describe_usage(after)}")
            report["compaction"] = {"seconds": round(seconds, 1), **asdict(stats)} | {"after": after}
            manifest["compacted"] = True  # a reuse of this directory measures the compacted layout
            (data_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))

        server = ServerProcess(workdir, data_dir, manifest["projects"])
        print("server:", shlex.join(server.command), flush=True)
        server.start()
        print(f"measuring on project {manifest['projects'][0]}: {args.warmups} warm-ups + {args.repeats} runs")
        results = run_measurements(server, manifest, args)
        report["results"] = [asdict(r) for r in results]
        if args.json:
            args.json.write_text(json.dumps(report, indent=1, default=str))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
