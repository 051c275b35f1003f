"""Mapper speed: spans/s for OTLP decode + semconv mapping (+ pricing) on one core.

Realistic spans of several dialects (OTel GenAI with ~1 KB of messages, Langfuse SDK,
OpenInference), 512 per request, decoded as the Parquet pipeline decodes them
(`collector.wire`). Measures the compiled mapper (when a build matches the sources:
`spanfuse build-mapper`) and the plain Python source, each in its own process, alternating,
and prints medians and their ratio; and for scale the floor of any mapper whose rules run in
Python: decoding the requests and reading every span's ids, times and attributes into Python
objects, with no mapping at all.

    .venv/bin/python bench/mapping.py [--requests 40] [--repeats 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import native
from collector.batch import price
from collector.pricing import PriceTable
from collector.wire import pipeline_request_type
from semconv.encoded_span import span_data
from semconv.mapping import map_traces_request
from semconv.values import attributes
from tests.otlp_helpers import kv, make_span

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "the",
    "model",
    "answers",
    "questions",
    "about",
    "the",
    "weather",
]


def _text(words: int) -> str:
    return " ".join(random.choice(WORDS) for _ in range(words))


def _genai(tid: bytes, parent: bytes) -> dict:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.request.temperature": 0.7,
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.response.id": "chatcmpl-" + os.urandom(6).hex(),
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": random.randint(100, 3000),
        "gen_ai.usage.output_tokens": random.randint(10, 500),
        "gen_ai.usage.cache_read.input_tokens": 64,
        "gen_ai.conversation.id": f"conv-{random.randint(1, 50)}",
        "server.address": "api.openai.com",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": _text(90)}]}]),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": _text(60)}], "finish_reason": "stop"}]
        ),
    }


def _langfuse(tid: bytes, parent: bytes) -> dict:
    return {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "claude-sonnet-4-5",
        "langfuse.observation.input": json.dumps([{"role": "user", "content": _text(90)}]),
        "langfuse.observation.output": _text(60),
        "langfuse.observation.usage_details": '{"input": 900, "output": 80}',
        "langfuse.observation.metadata.team": '"search"',
        "user.id": "u-1",
        "session.id": "s-1",
        "langfuse.trace.tags": ["prod"],
        "langfuse.environment": "production",
    }


def _openinference(tid: bytes, parent: bytes) -> dict:
    return {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.provider": "openai",
        "llm.invocation_parameters": '{"temperature": 0.1}',
        "llm.token_count.prompt": 800,
        "llm.token_count.completion": 120,
        "llm.token_count.total": 920,
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": _text(90),
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": _text(60),
        "session.id": "s-2",
        "input.value": _text(20),
        "input.mime_type": "text/plain",
    }


def build_request(spans: int) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend([kv("service.name", "chatbot"), kv("deployment.environment", "prod")])
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "bench"
    makers = [_genai, _langfuse, _openinference]
    now = time.time_ns()
    for t in range(spans // 8):
        tid, root = os.urandom(16), os.urandom(8)
        for i in range(8):
            attributes = makers[(t + i) % 3](tid, root)
            scope.spans.append(
                make_span(
                    tid,
                    root if i == 0 else os.urandom(8),
                    b"" if i == 0 else root,
                    name=f"step {i}",
                    start_ns=now,
                    attributes=attributes,
                )
            )
    return request.SerializeToString()


def measure(payloads: list[bytes], repeats: int) -> dict[str, Any]:
    """Spans/s of this process's mapper (compiled or plain, as the import system chose)."""
    spans = 512 * len(payloads)
    prices = PriceTable()
    prices.warm()

    def run(with_pricing: bool) -> float:
        started = time.perf_counter()
        for payload in payloads:
            mapped = map_traces_request(pipeline_request_type().FromString(payload))
            if with_pricing:
                for observation in mapped.observations:
                    price(observation, prices, "p")
        return spans / (time.perf_counter() - started)

    def walk() -> float:
        read: list[Any] = []
        started = time.perf_counter()
        for payload in payloads:
            for resource_spans in pipeline_request_type().FromString(payload).resource_spans:
                attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for item in scope_spans.spans:  # encoded spans (compiled) are read as the mapper reads them
                        span = span_data(item)
                        ids = span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex()
                        fields = span.name, span.start_time_unix_nano, span.end_time_unix_nano, span.status.code
                        read.append((ids, fields, span.attributes))
                read.clear()
        return spans / (time.perf_counter() - started)

    run(True)  # warm caches
    return {
        "build": str(native.active_build()) if native.active_build() else None,
        "map": [run(False) for _ in range(repeats)],
        "priced": [run(True) for _ in range(repeats)],
        "walk": [walk() for _ in range(repeats)],
    }


def _child(mode: str, corpus: Path, repeats: int) -> dict[str, Any]:
    env = {**os.environ, "SPANFUSE_NATIVE": "0" if mode == "plain" else "1"}
    command = [sys.executable, __file__, "--measure", str(corpus), "--repeats", str(repeats)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3, help="runs per round and mapper")
    parser.add_argument("--rounds", type=int, default=3, help="compiled and plain mappers alternate this often")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child: measure this corpus, print JSON
    args = parser.parse_args()
    if args.measure:
        payloads = [bytes.fromhex(p) for p in json.loads(Path(args.measure).read_text())]
        print(json.dumps(measure(payloads, args.repeats)))
        return
    random.seed(7)
    payloads = [build_request(512) for _ in range(args.requests)]
    spans = 512 * args.requests
    compiled = native.active_build() is not None
    modes = ("compiled", "plain") if compiled else ("plain",)
    results: dict[str, dict[str, list[float]]] = {m: {"map": [], "priced": [], "walk": []} for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.json"
        corpus.write_text(json.dumps([p.hex() for p in payloads]))
        for _ in range(args.rounds):
            for mode in modes:
                figures = _child(mode, corpus, args.repeats)
                assert (figures["build"] is not None) == (mode == "compiled"), figures["build"]
                for key in ("map", "priced", "walk"):
                    results[mode][key] += figures[key]
    runs = args.rounds * args.repeats
    print(f"spans per run: {spans} ({args.requests} requests of 512), {len(payloads[0]) // 512} B/span on the wire")
    print(f"medians of {runs} runs per mapper, the mappers alternating in {args.rounds} rounds, one core each")
    for mode in modes:
        label = f"compiled ({native.active_build()})" if mode == "compiled" else "plain Python source"
        print(f"  {label}")
        print(f"    decode + map            : {statistics.median(results[mode]['map']):10,.0f} spans/s")
        print(f"    decode + map + pricing  : {statistics.median(results[mode]['priced']):10,.0f} spans/s")
    if compiled:
        ratio = statistics.median(results["compiled"]["map"]) / statistics.median(results["plain"]["map"])
        print(f"  compiled / plain (decode + map): {ratio:.2f}x")
    else:
        print("  no compiled mapper matches the sources: `spanfuse build-mapper` builds one")
    floor = statistics.median(results[modes[0]]["walk"])
    print(f"decode + walk, no mapping : {floor:10,.0f} spans/s (reading every span into Python objects, {modes[0]})")
    print(f"at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
