"""Ingest benchmark: OTLP spans/s acknowledged and queryable, ack latency, and peak RSS of the collector.

Starts ``python -m collector serve`` as a child process on fixed loopback ports (data in a temporary
directory), then for every transport (gRPC, HTTP protobuf) and client count runs one step: N load
generator processes send pre-built GenAI ``ExportTraceServiceRequest`` payloads back to back for a
bounded time. After each step it polls the Parquet files until every acknowledged span is readable,
then counts the observation files; CPU time is reported per acknowledged span for the collector
process, its workers (batches and compaction) and the load clients. Finally it stops the server
with SIGTERM and reports how long the clean shutdown took.

Run from the repository root::

    .venv/bin/python bench/ingest.py --seconds 10 --clients 1,2,4,8

Results are printed as a table and written to ``bench/results/ingest-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import platform
import queue
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psutil
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from rich.console import Console
from rich.table import Table

from storage.retired import live_paths

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
PUBLIC_KEY, SECRET_KEY = "pk-lf-bench", "sk-lf-bench"
PROJECT_ID = "bench"
AUTHORIZATION = "Basic " + base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()
GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
HTTP_PATH = "/v1/traces"
MIB = 1024 * 1024
RETRY_SLEEP_SECONDS = 0.05
REQUEST_TIMEOUT_SECONDS = 30.0
QUERYABLE_TIMEOUT_SECONDS = 120.0  # plus twice the step's duration: the backlog a step leaves grows with it
RSS_SAMPLE_SECONDS = 0.1


@dataclass(frozen=True)
class Template:
    """An encoded request cut around every trace and span id it holds, so a client can stamp
    fresh random ids into a copy without re-encoding it.

    ``pieces`` are the bytes between the ids; ``ids[i]`` is where, in a block of
    ``random_bytes`` fresh random bytes, the id after ``pieces[i]`` is taken from (an id that
    occurs several times, as a trace id or a parent's span id does, takes the same bytes).
    """

    payload: bytes
    pieces: tuple[bytes, ...]
    ids: tuple[tuple[int, int], ...]
    random_bytes: int


# ---------------------------------------------------------------------------------------------- payloads
_VOCABULARY = (
    "the order shipment refund account invoice customer delivery address warehouse tracking number status "
    "please check whether policy allows return within thirty days after purchase if item damaged replace "
    "support agent summarise conversation previous ticket escalate priority high low medium product "
    "subscription plan upgrade downgrade billing cycle payment method card expired update confirm email "
    "sent password reset link security question verify identity before sharing details about balance "
    "latency database query timeout retry exponential backoff service degraded region europe america asia "
    "translate answer politely concise bullet points markdown table json schema tool call function result "
    "weather forecast tomorrow rain sunny temperature celsius flight booking hotel reservation cancel "
    "recipe ingredients oven minutes serve calories nutrition vegetarian gluten free allergy warning"
)
_WORDS = _VOCABULARY.split()
_MODELS = (
    ("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("anthropic", "claude-3-5-sonnet", "claude-3-5-sonnet-20241022"),
    ("aws.bedrock", "meta.llama3-70b-instruct-v1:0", "meta.llama3-70b-instruct-v1:0"),
)
_TOOLS = ("get_order_status", "search_knowledge_base", "lookup_customer", "create_ticket")
_FINISH_REASONS = ("stop", "stop", "stop", "length", "tool_calls")


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    sentence = " ".join(words)
    return sentence[0].upper() + sentence[1:] + "."


def _any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[_any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def _attributes(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_any_value(value)) for key, value in values.items()]


def _messages(rng: random.Random, system: str) -> tuple[str, str]:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` JSON, about 1 KB together."""
    user_chars = rng.randint(280, 450)
    output_chars = rng.randint(150, 300)
    inputs = [
        {"role": "system", "parts": [{"type": "text", "content": system}]},
        {"role": "user", "parts": [{"type": "text", "content": _text(rng, user_chars)}]},
    ]
    outputs = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": _text(rng, output_chars)}],
            "finish_reason": rng.choice(_FINISH_REASONS),
        }
    ]
    return json.dumps(inputs), json.dumps(outputs)


def _chat_attributes(rng: random.Random, session: str, user: str, system_prompt: str) -> dict[str, Any]:
    provider, request_model, response_model = rng.choice(_MODELS)
    input_messages, output_messages = _messages(rng, system_prompt)
    return {
        "gen_ai.system": provider,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": request_model,
        "gen_ai.response.model": response_model,
        "gen_ai.usage.input_tokens": rng.randint(200, 4000),
        "gen_ai.usage.output_tokens": rng.randint(20, 800),
        "gen_ai.request.temperature": round(rng.uniform(0.0, 1.0), 2),
        "gen_ai.request.max_tokens": rng.choice((256, 512, 1024, 2048)),
        "gen_ai.request.top_p": round(rng.uniform(0.8, 1.0), 2),
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(96):024x}",
        "gen_ai.response.finish_reasons": [rng.choice(_FINISH_REASONS)],
        "session.id": session,
        "user.id": user,
        "server.address": "api.example-llm.com",
        "gen_ai.input.messages": input_messages,
        "gen_ai.output.messages": output_messages,
    }


def _tool_attributes(rng: random.Random, session: str, user: str) -> dict[str, Any]:
    """A tool call: no model or usage; ~1 KB of arguments and result instead of messages."""
    arguments = {"query": _text(rng, rng.randint(150, 300)), "limit": rng.randint(1, 20)}
    result = {"status": "ok", "items": [_text(rng, rng.randint(100, 200)) for _ in range(3)]}
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": rng.choice(_TOOLS),
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": f"call_{rng.getrandbits(64):016x}",
        "gen_ai.tool.description": _text(rng, 60),
        "gen_ai.agent.name": "support-agent",
        "gen_ai.conversation.id": session,
        "session.id": session,
        "user.id": user,
        "server.address": "tools.internal",
        "http.response.status_code": 200,
        "retry.attempt": 0,
        "code.function.name": "tools.dispatch",
        "gen_ai.tool.call.arguments": json.dumps(arguments),
        "gen_ai.tool.call.result": json.dumps(result),
    }


def _agent_attributes(rng: random.Random, session: str, user: str, system_prompt: str) -> dict[str, Any]:
    provider, request_model, _ = rng.choice(_MODELS)
    input_messages, output_messages = _messages(rng, system_prompt)
    return {
        "gen_ai.system": provider,
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "support-agent",
        "gen_ai.agent.id": "agent-7f3c",
        "gen_ai.agent.description": "Answers customer support questions with order and knowledge-base tools.",
        "gen_ai.request.model": request_model,
        "gen_ai.conversation.id": session,
        "session.id": session,
        "user.id": user,
        "langfuse.trace.tags": ["support", rng.choice(("web", "mobile", "email"))],
        "app.release": "2025.11.3",
        "app.tenant": f"tenant-{rng.randrange(40):02d}",
        "server.address": "agents.internal",
        "gen_ai.input.messages": input_messages,
        "gen_ai.output.messages": output_messages,
    }


def _span_attributes(rng: random.Random, operation: str, session: str, user: str, system_prompt: str) -> dict[str, Any]:
    if operation == "execute_tool":
        return _tool_attributes(rng, session, user)
    if operation == "invoke_agent":
        return _agent_attributes(rng, session, user, system_prompt)
    return _chat_attributes(rng, session, user, system_prompt)


# One trace: an agent invocation with LLM calls and tool calls; the last chat runs inside a tool.
_TRACE_SHAPE: tuple[tuple[str, int | None], ...] = (
    ("invoke_agent", None),
    ("chat", 0),
    ("execute_tool", 0),
    ("chat", 0),
    ("execute_tool", 0),
    ("chat", 0),
    ("execute_tool", 0),
    ("chat", 6),
)


def build_template(seed: int, spans: int, now_ns: int) -> Template:
    """One ``ExportTraceServiceRequest`` of ``spans`` spans in traces of 8, and where its ids are."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        _attributes(
            {
                "service.name": f"bench-agent-{seed % 4}",
                "service.version": "1.4.2",
                "deployment.environment.name": "bench",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.language": "python",
                "telemetry.sdk.version": "1.30.0",
            }
        )
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.openai_v2"
    scope_spans.scope.version = "2.1b0"
    expected: dict[bytes, int] = {}  # id -> how often it must occur in the encoding
    made = 0
    while made < spans:
        trace_id = rng.randbytes(16)
        session = f"session-{rng.getrandbits(48):012x}"
        user = f"user-{rng.randrange(500):04d}"
        system_prompt = _text(rng, 120)
        trace_start = now_ns - rng.randrange(60_000_000_000)
        span_ids: list[bytes] = []
        for index, (operation, parent) in enumerate(_TRACE_SHAPE[: spans - made]):
            span_id = rng.randbytes(8)
            span_ids.append(span_id)
            start = trace_start + index * 150_000_000
            if operation == "invoke_agent":
                name, kind, duration = "invoke_agent support-agent", Span.SPAN_KIND_INTERNAL, 1_300_000_000
            elif operation == "execute_tool":
                name, kind, duration = "execute_tool", Span.SPAN_KIND_INTERNAL, rng.randrange(5, 120) * 1_000_000
            else:
                name, kind, duration = "chat", Span.SPAN_KIND_CLIENT, rng.randrange(200, 3000) * 1_000_000
            parent_id = span_ids[parent] if parent is not None else b""
            scope_spans.spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=parent_id,
                    name=name,
                    kind=kind,
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + duration,
                    attributes=_attributes(_span_attributes(rng, operation, session, user, system_prompt)),
                    status=Status(),
                )
            )
            expected[trace_id] = expected.get(trace_id, 0) + 1
            expected[span_id] = expected.get(span_id, 0) + 1
            if parent_id:
                expected[parent_id] += 1
            made += 1
    payload = request.SerializeToString()
    occurrences: list[tuple[int, int, int]] = []  # (offset, length, where in the random block)
    random_bytes = 0
    for id_bytes, count in expected.items():
        at = payload.find(id_bytes)
        found = 0
        while at >= 0:
            occurrences.append((at, len(id_bytes), random_bytes))
            found += 1
            at = payload.find(id_bytes, at + 1)
        if found != count:
            raise RuntimeError(f"id found {found} times in the template, expected {count}; change the seed")
        random_bytes += len(id_bytes)
    occurrences.sort()
    pieces: list[bytes] = []
    pos = 0
    for offset, length, _ in occurrences:
        pieces.append(payload[pos:offset])
        pos = offset + length
    pieces.append(payload[pos:])
    ids = tuple((source, source + length) for _, length, source in occurrences)
    return Template(payload, tuple(pieces), ids, random_bytes)


def fresh_payload(template: Template) -> bytes:
    """A copy of ``template`` with new random trace and span ids (parent links kept consistent).

    Joined from the pieces between the ids: 0.4 µs a span against 1.1 for patching a copy id by id,
    CPU the load clients spend on the same two cores as the collector they measure.
    """
    fresh = os.urandom(template.random_bytes)
    parts: list[bytes] = [b""] * (2 * len(template.ids) + 1)
    parts[0::2] = template.pieces
    parts[1::2] = [fresh[start:end] for start, end in template.ids]
    return b"".join(parts)


def check_template(template: Template, spans: int) -> None:
    """Decode a re-stamped copy once: the span count and every parent link must survive."""
    request = ExportTraceServiceRequest.FromString(fresh_payload(template))
    all_spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    ids = {(s.trace_id, s.span_id) for s in all_spans}
    if len(all_spans) != spans or len(ids) != spans:
        raise RuntimeError("re-stamped template lost or duplicated spans")
    for span in all_spans:
        if span.parent_span_id and (span.trace_id, span.parent_span_id) not in ids:
            raise RuntimeError("re-stamped template broke a parent link")


# ---------------------------------------------------------------------------------------------- clients
OK, RETRY, ERROR = "ok", "retry", "error"


@dataclass(frozen=True)
class ClientSpec:
    transport: str
    port: int
    authorization: str
    seconds: float
    max_requests: int
    batch: int
    first_template: int


def _rejected_spans(body: bytes) -> int:
    if not body:
        return 0
    return ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans


class _GrpcSender:
    def __init__(self, port: int, authorization: str) -> None:
        import grpc

        self._grpc = grpc
        self._channel = grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_send_message_length", 64 * MIB), ("grpc.max_receive_message_length", 64 * MIB)],
        )
        # No serializers: the payload is already an encoded request, the answer is parsed by hand.
        self._export = self._channel.unary_unary(GRPC_METHOD, request_serializer=None, response_deserializer=None)
        self._metadata = (("authorization", authorization),)
        self._retryable = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}

    def warm_up(self) -> None:
        self._grpc.channel_ready_future(self._channel).result(timeout=REQUEST_TIMEOUT_SECONDS)

    def send(self, payload: bytes) -> tuple[str, int, str]:
        try:
            body = self._export(payload, metadata=self._metadata, timeout=REQUEST_TIMEOUT_SECONDS)
        except self._grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, self._grpc.Call) else None
            name = code.name if code is not None else type(exc).__name__
            return (RETRY if code in self._retryable else ERROR), 0, name
        return OK, _rejected_spans(body), ""

    def close(self) -> None:
        self._channel.close()


class _HttpSender:
    def __init__(self, port: int, authorization: str) -> None:
        self._client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"authorization": authorization, "content-type": "application/x-protobuf"},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )

    def warm_up(self) -> None:
        self._client.get("/metrics")  # opens the persistent connection

    def send(self, payload: bytes) -> tuple[str, int, str]:
        try:
            response = self._client.post(HTTP_PATH, content=payload)
        except httpx.HTTPError as exc:
            return ERROR, 0, type(exc).__name__
        if response.status_code == 200:
            return OK, _rejected_spans(response.content), ""
        kind = RETRY if response.status_code in (429, 503) else ERROR
        return kind, 0, f"HTTP {response.status_code}"

    def close(self) -> None:
        self._client.close()


def client_main(spec: ClientSpec, templates: list[Template], ready: Any, go: Any, results: Any) -> None:
    """One load generator process: send back to back until the step's time or request cap is up.

    Latency is from the first attempt of a payload to its acknowledgement, retries included.
    Results go to ``results`` as a plain dict (classes of ``__main__`` do not unpickle in the parent).
    """
    sender: _GrpcSender | _HttpSender
    if spec.transport == "grpc":
        sender = _GrpcSender(spec.port, spec.authorization)
    else:
        sender = _HttpSender(spec.port, spec.authorization)
    latencies: list[float] = []
    acked = requests = retryable = errors = partially_rejected = 0
    reasons: Counter[str] = Counter()
    started = finished = 0.0
    cpu_started = 0.0
    failure = ""
    try:
        sender.warm_up()
        ready.put(os.getpid())
        if not go.wait(timeout=120):
            raise RuntimeError("the step never started")
        started = time.monotonic()
        cpu_started = time.process_time()
        deadline = started + spec.seconds
        index = spec.first_template
        while time.monotonic() < deadline and requests < spec.max_requests:
            payload = fresh_payload(templates[index % len(templates)])
            index += 1
            requests += 1
            sent = time.perf_counter()
            while True:
                outcome, rejected, reason = sender.send(payload)
                if outcome == OK:
                    latencies.append((time.perf_counter() - sent) * 1000)
                    acked += spec.batch - rejected
                    partially_rejected += rejected
                    break
                reasons[reason] += 1
                if outcome == RETRY:
                    retryable += 1
                else:
                    errors += 1
                time.sleep(RETRY_SLEEP_SECONDS)
                if outcome == ERROR or time.monotonic() >= deadline:
                    break
        finished = time.monotonic()
    except BaseException as exc:
        failure = repr(exc)
        raise
    finally:
        sender.close()
        results.put(
            {
                "pid": os.getpid(),
                "failure": failure,
                "started": started,
                "finished": finished,
                "requests": requests,
                "acked_spans": acked,
                "rejected_spans": partially_rejected,
                "retryable": retryable,
                "errors": errors,
                "reasons": dict(reasons),
                "latencies_ms": latencies,
                "cpu_seconds": time.process_time() - cpu_started if started else 0.0,
            }
        )


# ---------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    path: Path, data_dir: Path, grpc_port: int, http_port: int, max_backlog_mib: int = 1024, workers: int = 2
) -> None:
    doc = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{http_port}"},
                }
            }
        },
        "exporters": {"parquet": {"path": str(data_dir), "flush_interval": "1s", "workers": workers}},
        "service": {
            "pipelines": {
                "traces": {"receivers": ["otlp"], "exporters": ["parquet"]},
                "logs": {"receivers": ["otlp"], "exporters": ["parquet"]},
            }
        },
        "projects": [{"id": PROJECT_ID, "name": "Bench", "public_key": PUBLIC_KEY, "secret_key": SECRET_KEY}],
        "storage": {"wal": {"max_backlog_mib": max_backlog_mib}},
    }
    path.write_text(yaml.safe_dump(doc))


class RssSampler(threading.Thread):
    """Samples the server's RSS every 100 ms; :meth:`peak` gives the maximum over a time window."""

    def __init__(self, process: psutil.Process) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.process = process
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append((time.monotonic(), self.process.memory_info().rss))
            except psutil.Error:
                return
            self._stop_event.wait(RSS_SAMPLE_SECONDS)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def peak(self, since: float = 0.0, until: float = math.inf) -> int:
        return max((rss for at, rss in list(self.samples) if since <= at <= until), default=0)


class ServerProcess:
    def __init__(self, workdir: Path, max_backlog_mib: int = 1024, workers: int = 2) -> None:
        self.data_dir = workdir / "data"
        self.config_path = workdir / "config.yaml"
        self.log_path = workdir / "server.log"
        self.grpc_port, self.http_port = free_port(), free_port()
        write_config(self.config_path, self.data_dir, self.grpc_port, self.http_port, max_backlog_mib, workers)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "collector", "serve", "--config", str(self.config_path)]

    def start(self, timeout: float = 30.0) -> psutil.Process:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=log, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        deadline = time.monotonic() + timeout
        while not (self._accepts(self.grpc_port) and self._accepts(self.http_port)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not listening after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        return psutil.Process(self.proc.pid)

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    def terminate(self, timeout: float = 60.0) -> tuple[float, int | None]:
        """SIGTERM, then wait: (seconds until the process exited, return code or None if killed)."""
        assert self.proc is not None
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.kill()
        return time.perf_counter() - started, code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """``/metrics`` summed over labels, by sample name."""
        try:
            text = httpx.get(
                f"http://127.0.0.1:{self.http_port}/metrics", headers={"authorization": AUTHORIZATION}, timeout=10
            ).text
        except httpx.HTTPError:
            return {}
        totals: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name_part, _, value = line.rpartition(" ")
            name = name_part.split("{", 1)[0]
            with contextlib.suppress(ValueError):
                totals[name] = totals.get(name, 0.0) + float(value)
        return totals


class RowCounter:
    """Counts observation rows in the Parquet files, as a reader would see them.

    A published file never changes (compaction writes new ones and retires the old), so each is
    counted once, through DuckDB, when it first appears. Counting every file on every poll cost
    the benchmark ~34 ms of CPU per poll at 130 files: ~25 % of a core taken from the workers
    while they drained a step's backlog, on the two cores the figures are about.
    """

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "tables" / "observations"
        self._db = duckdb.connect(config={"threads": 1})
        self._rows_in: dict[str, int] = {}  # file -> its rows, for files seen so far

    def count(self) -> int:
        """Rows in the live files; -1 when none is readable yet or one went away while being read."""
        files = self._live_files()
        if not files:
            return -1
        rows_in: dict[str, int] = {}  # only the files listed now: those compaction retired are forgotten
        for file in files:
            rows = self._rows_in.get(file)
            if rows is None:
                rows = self._scalar("SELECT count(*) FROM read_parquet(?)", [file])
                if rows < 0:
                    return -1
            rows_in[file] = rows
        self._rows_in = rows_in
        return sum(rows_in.values())

    def distinct(self) -> int:
        files = self._live_files()
        if not files:
            return -1
        return self._scalar("SELECT count(*) FROM (SELECT DISTINCT trace_id, id FROM read_parquet(?))", files)

    def _live_files(self) -> list[str]:
        return [str(path) for path in live_paths(self.directory)]  # as a reader lists them

    def _scalar(self, sql: str, files: list[str]) -> int:
        try:
            row = self._db.execute(sql, [files]).fetchone()
        except duckdb.Error:  # a file replaced by compaction between listing and reading
            return -1
        return int(row[0]) if row else 0

    def wait_for(self, expected: int, timeout: float) -> tuple[float | None, int, int]:
        """Poll until ``expected`` distinct rows are readable: (time it happened, rows, distinct rows).

        ``count(*)`` is read from file footers and cheap; only when it reaches ``expected`` with extra
        rows (duplicates, or a compaction briefly showing inputs and output) is the distinct count taken.
        """
        deadline = time.monotonic() + timeout
        rows = distinct = 0
        while time.monotonic() < deadline:
            rows = self.count()
            now = time.monotonic()
            if rows == expected:
                return now, rows, rows
            if rows > expected:
                distinct = self.distinct()
                if distinct >= expected:
                    return now, rows, distinct
            time.sleep(0.1)
        return None, rows, distinct

    def close(self) -> None:
        self._db.close()


# ---------------------------------------------------------------------------------------------- steps
@dataclass
class StepResult:
    transport: str
    clients: int
    seconds: float
    requests: int
    acked_spans: int
    spans_per_s_acked: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    retryable_rejections: int
    errors: int
    reasons: dict[str, int]
    spans_rejected_in_response: int
    seconds_until_queryable: float | None
    spans_per_s_queryable: float | None
    rows_visible: int
    distinct_rows_visible: int
    expected_rows_total: int
    peak_rss_mib: float
    server_cpu_cores: float
    worker_cpu_cores: float
    # CPU time per acknowledged span: server, workers, the workers' batches alone (their mapping and
    # writing; the rest of the workers' time is mostly compaction), clients
    cpu_us_per_span: dict[str, float]
    observation_files: int  # Parquet files of the observations table once the step is queryable
    wal_fsyncs: int
    wal_fsync_seconds: float
    parquet_flushes: int
    parquet_flush_seconds: float
    compactions: int
    compaction_seconds: float
    server_counters: dict[str, float] = field(default_factory=dict)


def percentile(sorted_values: list[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def _descendants_cpu(process: psutil.Process) -> dict[int, float]:
    """CPU seconds (user + system) of each process below ``process``: the pipeline's workers."""
    seconds = {}
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue  # ended meanwhile
        seconds[child.pid] = times.user + times.system
    return seconds


def _wait_ready(ready: Any, workers: list[Any], timeout: float) -> None:
    """Wait until every client is connected; fail fast if one of them died."""
    deadline = time.monotonic() + timeout
    pending = len(workers)
    while pending:
        try:
            ready.get(timeout=0.5)
            pending -= 1
        except queue.Empty:
            dead = [w.name for w in workers if w.exitcode is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"clients not ready (exited: {dead or 'none'})") from None


def run_step(
    transport: str,
    clients: int,
    args: argparse.Namespace,
    server: ServerProcess,
    server_ps: psutil.Process,
    sampler: RssSampler,
    rows: RowCounter,
    templates: list[Template],
    expected_before: int,
) -> StepResult:
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    port = server.grpc_port if transport == "grpc" else server.http_port
    workers = []
    for index in range(clients):
        spec = ClientSpec(
            transport=transport,
            port=port,
            authorization=AUTHORIZATION,
            seconds=args.seconds,
            max_requests=args.max_requests,
            batch=args.batch,
            first_template=index * len(templates) // clients,
        )
        worker = ctx.Process(
            target=client_main, args=(spec, templates, ready, go, results), name=f"client-{index}", daemon=True
        )
        worker.start()
        workers.append(worker)
    outcomes: list[dict[str, Any]] = []
    try:
        _wait_ready(ready, workers, timeout=120)
        metrics_before = server.metrics()
        cpu_before = server_ps.cpu_times()
        workers_before = _descendants_cpu(server_ps)
        step_start = time.monotonic()
        go.set()
        for _ in range(clients):
            outcomes.append(results.get(timeout=args.seconds + 4 * REQUEST_TIMEOUT_SECONDS))
        acked_at = time.monotonic()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=10)

    failures = [o["failure"] for o in outcomes if o["failure"]]
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed: {failures[0]}")
    acked = sum(o["acked_spans"] for o in outcomes)
    wall = max((o["finished"] for o in outcomes), default=acked_at) - step_start
    expected = expected_before + acked
    visible_at, rows_visible, distinct_visible = rows.wait_for(expected, QUERYABLE_TIMEOUT_SECONDS + 2 * args.seconds)
    step_end = visible_at if visible_at is not None else time.monotonic()
    observation_files = len(live_paths(rows.directory))
    cpu_after = server_ps.cpu_times()
    workers_after = _descendants_cpu(server_ps)
    metrics_after = server.metrics()
    latencies = sorted(lat for o in outcomes for lat in o["latencies_ms"])
    reasons: Counter[str] = Counter()
    for o in outcomes:
        reasons.update(o["reasons"])
    queryable_seconds = visible_at - step_start if visible_at is not None else None
    cpu_seconds = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    worker_seconds = sum(cpu - workers_before.get(pid, 0.0) for pid, cpu in workers_after.items())
    counters = (
        "spanfuse_requests_total",
        "spanfuse_accepted_items_total",
        "spanfuse_rejected_items_total",
        "spanfuse_rows_written_total",
        "spanfuse_consumer_errors_total",
        "spanfuse_mapping_warnings_total",
    )
    return StepResult(
        transport=transport,
        clients=clients,
        seconds=round(wall, 3),
        requests=sum(o["requests"] for o in outcomes),
        acked_spans=acked,
        spans_per_s_acked=acked / wall if wall > 0 else 0.0,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else None,
        retryable_rejections=sum(o["retryable"] for o in outcomes),
        errors=sum(o["errors"] for o in outcomes),
        reasons=dict(reasons),
        spans_rejected_in_response=sum(o["rejected_spans"] for o in outcomes),
        seconds_until_queryable=queryable_seconds,
        spans_per_s_queryable=acked / queryable_seconds if queryable_seconds else None,
        rows_visible=rows_visible,
        distinct_rows_visible=distinct_visible,
        expected_rows_total=expected,
        peak_rss_mib=sampler.peak(step_start, step_end) / MIB,
        server_cpu_cores=cpu_seconds / (step_end - step_start) if step_end > step_start else 0.0,
        worker_cpu_cores=worker_seconds / (step_end - step_start) if step_end > step_start else 0.0,
        observation_files=observation_files,
        cpu_us_per_span={
            name: seconds * 1e6 / acked if acked else 0.0
            for name, seconds in (
                ("server", cpu_seconds),
                ("workers", worker_seconds),
                ("batches", _delta(metrics_after, metrics_before, "spanfuse_batch_cpu_seconds_total")),
                ("clients", sum(o["cpu_seconds"] for o in outcomes)),
            )
        },
        wal_fsyncs=int(_delta(metrics_after, metrics_before, "spanfuse_wal_fsyncs_total")),
        wal_fsync_seconds=_delta(metrics_after, metrics_before, "spanfuse_wal_fsync_seconds_total"),
        parquet_flushes=int(_delta(metrics_after, metrics_before, "spanfuse_flushes_total")),
        parquet_flush_seconds=_delta(metrics_after, metrics_before, "spanfuse_flush_duration_seconds_sum"),
        compactions=int(_delta(metrics_after, metrics_before, "spanfuse_compactions_total")),
        compaction_seconds=_delta(metrics_after, metrics_before, "spanfuse_compaction_duration_seconds_sum"),
        server_counters={name: _delta(metrics_after, metrics_before, name) for name in counters},
    )


def warm_up(server: ServerProcess, templates: list[Template], batch: int, rows: RowCounter) -> int:
    """A few requests per transport before measuring (imports, first files); returns spans acked."""
    acked = 0
    for sender in (_GrpcSender(server.grpc_port, AUTHORIZATION), _HttpSender(server.http_port, AUTHORIZATION)):
        try:
            sender.warm_up()
            for index in range(3):
                outcome, rejected, reason = sender.send(fresh_payload(templates[index % len(templates)]))
                if outcome != OK:
                    raise RuntimeError(f"warm-up request failed: {reason}\n{server.log_tail()}")
                acked += batch - rejected
        finally:
            sender.close()
    if rows.wait_for(acked, QUERYABLE_TIMEOUT_SECONDS)[0] is None:
        raise RuntimeError(f"warm-up spans never became queryable\n{server.log_tail()}")
    return acked


# ---------------------------------------------------------------------------------------------- output
def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(console: Console, steps: list[StepResult], overall_peak_mib: float) -> None:
    table = Table(title="Spanfuse ingest benchmark", title_justify="left")
    columns = (
        "transport",
        "clients",
        "acked spans",
        "spans/s acked",
        "p50 ms",
        "p99 ms",
        "retryable rej.",
        "errors",
        "s to queryable",
        "spans/s queryable",
        "peak RSS MiB",
        "server CPU",
        "workers CPU",
        "CPU µs/span srv/wrk/batch/cli",
        "obs files",
        "fsyncs",
        "flush s",
    )
    for name in columns:
        table.add_column(name, justify="left" if name == "transport" else "right")
    for s in steps:
        table.add_row(
            s.transport,
            str(s.clients),
            f"{s.acked_spans:,}",
            _fmt(s.spans_per_s_acked),
            _fmt(s.p50_ms, 1),
            _fmt(s.p99_ms, 1),
            str(s.retryable_rejections),
            str(s.errors),
            _fmt(s.seconds_until_queryable, 2),
            _fmt(s.spans_per_s_queryable),
            _fmt(s.peak_rss_mib, 1),
            _fmt(s.server_cpu_cores, 2),
            _fmt(s.worker_cpu_cores, 2),
            "/".join(_fmt(v, 1) for v in s.cpu_us_per_span.values()),
            str(s.observation_files),
            str(s.wal_fsyncs),
            _fmt(s.parquet_flush_seconds, 2),
        )
    console.print(table)
    console.print(f"overall peak server RSS: {overall_peak_mib:,.1f} MiB")


def git_state() -> dict[str, Any]:
    """The commit measured and the files that differ from it (the server runs from the working tree)."""

    def git(*argv: str) -> str:
        try:
            done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "changed_files": git("status", "--porcelain").splitlines()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each step (default: %(default)s)")
    parser.add_argument("--clients", default="1,2,4,8", help="client counts, comma separated (default: %(default)s)")
    parser.add_argument("--transports", default="grpc,http", help="grpc and/or http (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=512, help="spans per request (default: %(default)s)")
    parser.add_argument(
        "--max-backlog-mib",
        type=int,
        default=1024,
        help="the server's WAL backlog bound; a small one shows sustained overload (default: %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="the parquet exporter's mapping processes (default: %(default)s)"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=100_000,
        help="hard cap on requests per client and step (default: %(default)s)",
    )
    parser.add_argument("--templates", type=int, default=16, help="distinct pre-built payloads (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        args.client_counts = [int(part) for part in args.clients.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--clients: expected a comma separated list of integers, got {args.clients!r}")
    args.transport_list = [part.strip() for part in args.transports.split(",") if part.strip()]
    if not args.client_counts or any(n < 1 or n > 64 for n in args.client_counts):
        parser.error("--clients: every count must be between 1 and 64")
    if not args.transport_list or any(t not in ("grpc", "http") for t in args.transport_list):
        parser.error("--transports: use grpc, http or grpc,http")
    if not 0 < args.seconds <= 3600:
        parser.error("--seconds must be in (0, 3600]")
    if not 1 <= args.batch <= 100_000:
        parser.error("--batch must be between 1 and 100000")
    if args.max_requests < 1 or args.templates < 1:
        parser.error("--max-requests and --templates must be at least 1")
    return args


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: clients, server and temp dir go


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    console = Console(width=200)
    command = shlex.join([sys.executable, *sys.argv])
    cpu_count = os.cpu_count() or 0
    console.print(f"command: {command}")
    console.print(f"cpus: {cpu_count} (logical), python {platform.python_version()}, {platform.platform()}")
    git = git_state()
    console.print(f"git: {git['commit'][:12] or 'unknown'}, {len(git['changed_files'])} changed file(s) in the tree")

    started_at = dt.datetime.now(dt.UTC).isoformat()
    started = time.perf_counter()
    now_ns = time.time_ns()
    templates = [build_template(seed, args.batch, now_ns) for seed in range(args.templates)]
    check_template(templates[0], args.batch)
    payload_bytes = sum(len(t.payload) for t in templates) / len(templates)
    console.print(
        f"payloads: {len(templates)} templates of {args.batch} spans, {payload_bytes / 1024:,.0f} KiB each "
        f"({payload_bytes / args.batch:,.0f} B/span), built in {time.perf_counter() - started:.1f}s; "
        "fresh trace/span ids stamped into every request"
    )

    workdir = Path(tempfile.mkdtemp(prefix="spanfuse-bench-"))
    server = ServerProcess(workdir, args.max_backlog_mib, args.workers)
    sampler: RssSampler | None = None
    rows: RowCounter | None = None
    steps: list[StepResult] = []
    report: dict[str, Any] = {}
    try:
        server_ps = server.start()
        console.print(
            f"server: pid {server_ps.pid}, grpc 127.0.0.1:{server.grpc_port}, http 127.0.0.1:{server.http_port}, "
            f"data {server.data_dir}"
        )
        sampler = RssSampler(server_ps)
        sampler.start()
        rows = RowCounter(server.data_dir)
        expected = warm_up(server, templates, args.batch, rows)
        for transport in args.transport_list:
            for clients in args.client_counts:
                if not server.alive():
                    raise RuntimeError(f"server died:\n{server.log_tail()}")
                step = run_step(transport, clients, args, server, server_ps, sampler, rows, templates, expected)
                expected = step.expected_rows_total
                steps.append(step)
                console.print(
                    f"  {transport} x{clients}: {step.spans_per_s_acked:,.0f} spans/s acked, "
                    f"p50 {_fmt(step.p50_ms, 1)} ms, p99 {_fmt(step.p99_ms, 1)} ms, "
                    f"queryable after {_fmt(step.seconds_until_queryable, 2)} s, "
                    f"retryable {step.retryable_rejections}, errors {step.errors}"
                )
        overall_peak = sampler.peak() / MIB
        shutdown_seconds, exit_code = server.terminate()
        sampler.stop()
        rows_after_shutdown = rows.count()
        print_table(console, steps, overall_peak)
        console.print(
            f"shutdown (SIGTERM): {shutdown_seconds:.2f} s, exit code {exit_code}; "
            f"observation rows after shutdown {rows_after_shutdown:,} (acked in total {expected:,})"
        )
        problems = [line for line in server.log_lines() if " WARNING " in line or " ERROR " in line]
        for line in problems[:20]:
            console.print(f"server log: {line}", markup=False)
        report = {
            "command": command,
            "cpu_count": cpu_count,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "started_at": started_at,
            "server_command": shlex.join(server.command),
            "git": git,
            "settings": {
                "seconds": args.seconds,
                "clients": args.client_counts,
                "transports": args.transport_list,
                "batch": args.batch,
                "max_requests": args.max_requests,
                "templates": args.templates,
                "flush_interval": "1s",
                "payload_bytes_avg": round(payload_bytes),
                "latency": "first attempt of a request until its acknowledgement, retries included",
                "spans_per_s_acked": "acknowledged spans / (step start until the last client stopped)",
                "spans_per_s_queryable": "acknowledged spans / (step start until all of them are counted in Parquet)",
            },
            "steps": [asdict(s) for s in steps],
            "overall_peak_rss_mib": overall_peak,
            "shutdown_seconds": shutdown_seconds,
            "shutdown_exit_code": exit_code,
            "acked_spans_total_incl_warmup": expected,
            "rows_after_shutdown": rows_after_shutdown,
            "server_log_problems": problems[:100],
        }
    finally:
        if sampler is not None:
            sampler.stop()
        if rows is not None:
            rows.close()
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"ingest-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    console.print(f"results written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
