"""A synthetic Spanfuse dataset, written the way the collector writes it.

Shape (defaults): 1,000,000 observations in 100,000 traces (10 per trace) over 3 projects and the
30 UTC days before today. Each trace has a root SPAN (which also writes the trace's facts row: name,
user, session, tags, environment, release, version) and nine children: 4 GENERATIONs (model, usage
with cache reads, cost), 3 SPANs, 1 TOOL, 1 EVENT. Every observation carries ~200 B of input and of
output text; 2% are ERROR.

**Files.** The collector buffers rows and writes one file per (table, project, date) partition per
flush. Here a span is "ingested" 0-5 s after it ends and the simulated collector flushes once per
``flush_seconds`` of simulated time (default 60 s — kinder than the real 1 s flush interval, which
at this low rate would write about one file per export). So each partition gets one file per
minute that saw data for it. Columns are built as lists, turned into Arrow in bulk and written
with :func:`storage.parquet_writer.write_parquet` (the collector's flush-file options: LZ4, bloom
filters on the lookup ids, page index, no dictionaries for long text) into the collector's layout
(:func:`storage.parquet_writer.partition_dir`, ``part-<ms>-<writer>-<n>.parquet``), rows of a file
in the order they were ingested: the files ``PartitionedWriter.flush`` would write, without its
per-row path and without an fsync per file. ``--compact`` in ``bench/query.py`` turns them into
what compaction leaves (sorted, zstd). Days are generated in parallel processes.

A ``bench-dataset.json`` manifest in the data directory records the parameters, dates, file and
row counts and sample ids, so a later run can reuse the data.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import random
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from storage.parquet_writer import FLUSH_COMPRESSION, partition_dir, write_parquet
from storage.schema import OBSERVATIONS, TABLES, TRACES

MANIFEST = "bench-dataset.json"
US = 1_000_000
DAY_US = 86_400 * US

NAMES = ["chat", "rag-query", "summarize", "classify", "agent-run", "extract", "translate", "search", "qa", "draft"]
TAGS = ["prod", "beta", "rag", "agent", "eval", "mobile", "web", "internal"]
ENVIRONMENTS = ["production", "staging", "development"]
ENVIRONMENT_WEIGHTS = [0.7, 0.2, 0.1]
# model, $ per input token, $ per cached input token, $ per output token
MODELS = [
    ("gpt-4o", 2.5e-6, 1.25e-6, 10e-6),
    ("gpt-4o-mini", 0.15e-6, 0.075e-6, 0.6e-6),
    ("claude-3-5-sonnet-20241022", 3e-6, 0.3e-6, 15e-6),
    ("claude-3-5-haiku-20241022", 0.8e-6, 0.08e-6, 4e-6),
    ("gemini-1.5-pro", 1.25e-6, 0.3125e-6, 5e-6),
    ("llama-3.1-70b", 0.6e-6, 0.6e-6, 0.6e-6),
]
# the nine children of a root span, in order
CHILD_TYPES = ["GENERATION", "SPAN", "GENERATION", "TOOL", "GENERATION", "SPAN", "GENERATION", "EVENT", "SPAN"]
CHILD_NAMES = ["plan", "retrieve", "answer", "web-search", "critique", "rerank", "final", "feedback", "format"]
USERS_PER_PROJECT = 2_000
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "this",
    "are",
    "be",
    "from",
    "it",
    "at",
    "or",
    "an",
    "was",
    "which",
    "not",
    "have",
    "has",
    "can",
    "model",
    "token",
    "prompt",
    "answer",
    "context",
    "retrieve",
    "user",
    "system",
    "assistant",
    "document",
    "query",
    "vector",
    "index",
    "cache",
    "latency",
    "cost",
    "price",
    "trace",
    "span",
    "session",
    "agent",
    "tool",
    "call",
    "search",
    "result",
    "summary",
    "draft",
    "review",
    "policy",
]


@dataclass(frozen=True)
class DatasetSpec:
    observations: int = 1_000_000
    projects: int = 3
    days: int = 30
    flush_seconds: int = 60
    end_date: str = ""  # exclusive, YYYY-MM-DD; default: today (UTC)
    seed: int = 7

    @property
    def traces(self) -> int:
        return self.observations // 10

    @property
    def end(self) -> dt.date:
        return dt.date.fromisoformat(self.end_date) if self.end_date else dt.datetime.now(dt.UTC).date()

    @property
    def start(self) -> dt.date:
        return self.end - dt.timedelta(days=self.days)

    def project_ids(self) -> list[str]:
        return [f"bench-{i}" for i in range(self.projects)]

    def same_shape(self, other: dict[str, Any]) -> bool:
        mine = asdict(self)
        return all(other.get(k) == v for k, v in mine.items() if k != "end_date")


@dataclass
class TableStats:
    rows: int = 0
    files: int = 0
    bytes: int = 0


@dataclass
class DayResult:
    tables: dict[str, TableStats] = field(default_factory=dict)
    samples: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # project -> {trace_ids, user_ids, ...}


def _hex_ids(rng: random.Random, count: int, nbytes: int) -> list[str]:
    text = rng.randbytes(count * nbytes).hex()
    width = 2 * nbytes
    return [text[i * width : (i + 1) * width] for i in range(count)]


def _texts(rng: random.Random, count: int, length: int, pool: str) -> list[str]:
    top = len(pool) - length
    return [pool[s : s + length] for s in (rng.randrange(top) for _ in range(count))]


def _map_array(rows: list[dict[str, Any] | None], value_type: pa.DataType) -> pa.Array:
    """A MAP<string, value_type> column from per-row dicts (None rows are null)."""
    offsets = [0]
    keys: list[str] = []
    values: list[Any] = []
    for row in rows:
        if row:
            keys.extend(row)
            values.extend(row.values())
        offsets.append(len(keys))
    mask = pa.array([row is None for row in rows])
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(keys, pa.string()), pa.array(values, value_type), mask=mask
    )


def _generate_day(args: tuple[Path, DatasetSpec, int, int]) -> DayResult:
    """Generate and write the traces that start on day ``day`` (0-based)."""
    root, spec, day, n_traces = args
    rng = random.Random(spec.seed * 100_003 + day)
    projects = spec.project_ids()
    day_start = int(dt.datetime.combine(spec.start, dt.time(), dt.UTC).timestamp()) * US + day * DAY_US
    pool = " ".join(rng.choices(WORDS, k=40_000))

    # ---- traces (sorted by start), one facts row each
    t_project = [rng.randrange(spec.projects) for _ in range(n_traces)]
    t_start = sorted(day_start + rng.randrange(DAY_US) for _ in range(n_traces))
    t_ids = _hex_ids(rng, n_traces, 16)
    t_name = rng.choices(NAMES, k=n_traces)
    t_user = [f"user-{p}-{rng.randrange(USERS_PER_PROJECT):05d}" for p in t_project]
    sessions = max(1, n_traces // 4)
    t_session = [f"session-{day:03d}-{rng.randrange(sessions):06d}" for _ in range(n_traces)]
    t_tags = [sorted(set(rng.choices(TAGS, k=k))) for k in rng.choices([0, 1, 2], [0.3, 0.5, 0.2], k=n_traces)]
    t_env = rng.choices(ENVIRONMENTS, ENVIRONMENT_WEIGHTS, k=n_traces)
    t_release = [f"1.{rng.randrange(10)}.0" for _ in range(n_traces)]

    # ---- observations: a root SPAN and nine children per trace, trace-major
    n = n_traces * 10
    o_ids = _hex_ids(rng, n, 8)
    columns: dict[str, list[Any]] = defaultdict(list)
    o_project: list[int] = []
    t_ingested: list[int] = []
    for t in range(n_traces):
        root_id = o_ids[t * 10]
        start0 = t_start[t]
        ends = []
        rows = []
        for j, (kind, name) in enumerate(zip(CHILD_TYPES, CHILD_NAMES, strict=True), 1):
            start = start0 + j * 250_000 + rng.randrange(200_000)
            if kind == "GENERATION":
                duration = int(rng.lognormvariate(13.9, 0.6))  # median ~1.1 s
            elif kind == "EVENT":
                duration = 0
            else:
                duration = rng.randrange(5_000, 400_000)
            ends.append(start + duration)
            rows.append((o_ids[t * 10 + j], root_id, kind, name, start, start + duration))
        rows.insert(0, (root_id, None, "SPAN", t_name[t], start0, max(ends) + 10_000))
        for oid, parent, kind, name, start, end in rows:
            ingested = end + rng.randrange(5 * US)
            columns["id"].append(oid)
            columns["trace_id"].append(t_ids[t])
            columns["parent_observation_id"].append(parent)
            columns["type"].append(kind)
            columns["name"].append(name)
            columns["start_time"].append(start)
            columns["end_time"].append(end)
            columns["environment"].append(t_env[t])
            columns["ingested_at"].append(ingested)
            error = rng.random() < 0.02
            columns["level"].append("ERROR" if error else "DEFAULT")
            columns["status_message"].append("upstream error" if error else None)
            columns["metadata"].append(f'{{"step":"{name}"}}')
            o_project.append(t_project[t])
            if parent is None:
                t_ingested.append(ingested)
            if kind == "GENERATION":
                model, p_in, p_cache, p_out = rng.choice(MODELS)
                input_tokens = rng.randrange(100, 4_000)
                cached = input_tokens // 3 if rng.random() < 0.3 else 0  # 30% of calls hit the prompt cache
                fresh, output = input_tokens - cached, rng.randrange(20, 800)
                usage = {"input": fresh, "output": output, "total": input_tokens + output}
                cost = {"input": fresh * p_in, "output": output * p_out}
                if cached:
                    usage["cache_read"] = cached
                    cost["cache_read"] = cached * p_cache
                cost["total"] = sum(cost.values())
                columns["model"].append(model)
                columns["matched_model"].append(model)
                columns["completion_start_time"].append(start + (end - start) // 4)
                columns["usage_details"].append(usage)
                columns["cost_details"].append(cost)
                columns["total_cost"].append(cost["total"])
                columns["cost_source"].append("computed")
            else:
                for key in ("model", "matched_model", "completion_start_time", "usage_details", "cost_details"):
                    columns[key].append(None)
                columns["total_cost"].append(None)
                columns["cost_source"].append(None)
    columns["input"] = [f'[{{"role":"user","content":"{x}"}}]' for x in _texts(rng, n, 170, pool)]
    columns["output"] = [f'"{x}"' for x in _texts(rng, n, 190, pool)]
    obs_arrays: dict[str, Any] = {
        **{k: v for k, v in columns.items() if k not in ("usage_details", "cost_details")},
        "usage_details": _map_array(columns["usage_details"], pa.int64()),
        "cost_details": _map_array(columns["cost_details"], pa.float64()),
        "service_name": ["bench-app"] * n,
        "scope_name": ["langfuse-sdk"] * n,
        "scope_version": ["3.0.0"] * n,
        "span_kind": ["INTERNAL"] * n,
        "resource_attributes": ['{"service.name":"bench-app"}'] * n,
        "ingest_seq": list(range(day * 10**9, day * 10**9 + n)),
    }
    observations = _table(OBSERVATIONS.schema, obs_arrays, n)

    trace_arrays: dict[str, Any] = {
        "id": t_ids,
        "observation_id": [o_ids[t * 10] for t in range(n_traces)],
        "timestamp": t_start,
        "name": t_name,
        "user_id": t_user,
        "session_id": t_session,
        "tags": t_tags,
        "input": [f'{{"question":"{x}"}}' for x in _texts(rng, n_traces, 170, pool)],
        "output": [f'"{x}"' for x in _texts(rng, n_traces, 190, pool)],
        "metadata": ['{"source":"bench"}'] * n_traces,
        "release": t_release,
        "version": ["v1"] * n_traces,
        "environment": t_env,
        "public": [False] * n_traces,
        "ingested_at": t_ingested,
        "ingest_seq": list(range(day * 10**9 + 5 * 10**8, day * 10**9 + 5 * 10**8 + n_traces)),
    }
    traces = _table(TRACES.schema, trace_arrays, n_traces)

    result = DayResult()
    result.tables["observations"] = _write_flushes(
        root, "observations", observations, o_project, columns["start_time"], columns["ingested_at"], spec
    )
    result.tables["traces"] = _write_flushes(root, "traces", traces, t_project, t_start, t_ingested, spec)
    for p, project in enumerate(projects):
        mine = [t for t in range(n_traces) if t_project[t] == p][:20]
        result.samples[project] = {"trace_ids": [t_ids[t] for t in mine], "user_ids": [t_user[t] for t in mine]}
    return result


def _table(schema: pa.Schema, columns: dict[str, Any], n: int) -> pa.Table:
    arrays = []
    for f in schema:
        value = columns.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
        elif isinstance(value, pa.Array):
            arrays.append(value)
        else:
            arrays.append(pa.array(value, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_flushes(
    root: Path,
    table_name: str,
    table: pa.Table,
    project_idx: list[int],
    start: list[int],
    ingested: list[int],
    spec: DatasetSpec,
) -> TableStats:
    """One file per (flush, project, date of the row's start), like ``PartitionedWriter.flush``."""
    table_spec = TABLES[table_name]
    projects = spec.project_ids()
    flush_us = spec.flush_seconds * US
    keys = [(i // flush_us, p, s // DAY_US) for i, p, s in zip(ingested, project_idx, start, strict=True)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    sorted_table = table.take(pa.array(order, pa.int64()))
    writer = uuid.uuid4().hex[:8]
    stats = TableStats(rows=table.num_rows)
    epoch = dt.date(1970, 1, 1)
    lo = 0
    seq = 0
    while lo < len(order):
        key = keys[order[lo]]
        hi = lo + 1
        while hi < len(order) and keys[order[hi]] == key:
            hi += 1
        flush, p, day = key
        part = sorted_table.slice(lo, hi - lo)
        directory = partition_dir(root, table_name, projects[p], (epoch + dt.timedelta(days=day)).isoformat())
        directory.mkdir(parents=True, exist_ok=True)
        seq += 1
        path = directory / f"part-{(flush + 1) * flush_us // 1000}-{writer}-{seq:06d}.parquet"
        write_parquet(part, path, table_spec, compression=FLUSH_COMPRESSION)
        stats.files += 1
        stats.bytes += path.stat().st_size
        lo = hi
    return stats


def generate(root: Path, spec: DatasetSpec, workers: int = 2, log: Any = print) -> dict[str, Any]:
    """Write the dataset under ``root`` (which must hold no tables yet) and its manifest."""
    started = time.perf_counter()
    rng = random.Random(spec.seed)
    per_day = [0] * spec.days
    for day in rng.choices(range(spec.days), k=spec.traces):
        per_day[day] += 1
    jobs = [(root, spec, day, count) for day, count in enumerate(per_day)]
    totals: dict[str, TableStats] = defaultdict(TableStats)
    samples: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    ctx = mp.get_context("fork")
    with ctx.Pool(max(1, workers)) as pool:
        for done, result in enumerate(pool.imap_unordered(_generate_day, jobs), 1):
            for name, stats in result.tables.items():
                totals[name].rows += stats.rows
                totals[name].files += stats.files
                totals[name].bytes += stats.bytes
            for project, lists in result.samples.items():
                for key, values in lists.items():
                    samples[project][key].extend(values)
            if done % 5 == 0 or done == len(jobs):
                log(f"  generated {done}/{len(jobs)} days ({time.perf_counter() - started:.0f} s)")
    manifest = {
        "spec": asdict(spec) | {"end_date": spec.end.isoformat()},
        "start_date": spec.start.isoformat(),
        "end_date": spec.end.isoformat(),
        "projects": spec.project_ids(),
        "tables": {name: asdict(stats) for name, stats in totals.items()},
        "samples": {p: dict(v) for p, v in samples.items()},
        "generation_seconds": round(time.perf_counter() - started, 1),
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def load_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def disk_usage(root: Path) -> dict[str, dict[str, int]]:
    """Parquet files and bytes per table as they are on disk now."""
    usage: dict[str, dict[str, int]] = {}
    tables = root / "tables"
    if not tables.is_dir():
        return usage
    for table in sorted(p for p in tables.iterdir() if p.is_dir()):
        files = size = 0
        for dirpath, _, names in os.walk(table):
            for name in names:
                if name.endswith(".parquet"):
                    files += 1
                    size += os.path.getsize(os.path.join(dirpath, name))
        usage[table.name] = {"files": files, "bytes": size}
    return usage
