"""Client overhead: µs per span on the application thread, our LangfuseSpanProcessor vs Langfuse's.

Both processors sit on identical SDK TracerProviders and really export (gzip OTLP/HTTP) to a local
sink that answers 200, so their background threads do their normal work while the application
thread is timed. The spans are realistic: per trace, a ``langfuse-sdk`` scope agent span and two
``opentelemetry.instrumentation.openai_v2`` chat spans, ~15 attributes each. Time is for
``start_span`` + ``end`` (the processors' ``on_start`` + ``on_end`` plus the SDK's own work), so
the no-processor baseline is printed too. Scenarios: plain, and inside each library's own
``propagate_attributes(user_id, session_id, tags)``. Medians of interleaved repeats.

    .venv/bin/python bench/client_overhead.py [--traces 2000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = "1000000"  # neither processor may win by dropping spans
os.environ.setdefault("LANGFUSE_MEDIA_UPLOAD_ENABLED", "false")

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

PK, SK = "pk-lf-bench", "sk-lf-bench"
MESSAGES = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris? " * 8}]}])
GENAI_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 512,
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.response.id": "chatcmpl-123",
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 50,
    "gen_ai.input.messages": MESSAGES,
    "server.address": "api.openai.com",
    "server.port": 443,
    "http.response.status_code": 200,
}
LANGFUSE_ATTRIBUTES: dict[str, Any] = {
    "langfuse.observation.type": "agent",
    "langfuse.observation.input": json.dumps({"args": ["What is the weather in Paris?"], "kwargs": {}}),
    "langfuse.observation.output": "Sunny, 24 °C",
    "langfuse.observation.metadata.tenant": '"acme"',
    "langfuse.observation.metadata.region": '"eu"',
    "langfuse.observation.level": "DEFAULT",
    "langfuse.observation.model.name": "gpt-4o",
    "langfuse.observation.model.parameters": '{"temperature": 0.2}',
    "langfuse.observation.usage_details": '{"input": 1200, "output": 50}',
    "langfuse.observation.prompt.name": "weather",
    "langfuse.observation.prompt.version": 3,
    "langfuse.version": "1.4.0",
    "langfuse.trace.name": "weather-bot",
    "code.function": "answer",
    "code.namespace": "app.agent",
}


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()


def _ours(url: str) -> SpanProcessor:
    from exporters import LangfuseSpanProcessor

    return LangfuseSpanProcessor(PK, SK, url, flush_at=512, flush_interval=1.0, max_queue_size=1_000_000)


def _langfuse(url: str) -> SpanProcessor:
    from langfuse._client.span_processor import LangfuseSpanProcessor

    return LangfuseSpanProcessor(public_key=PK, secret_key=SK, base_url=url, flush_at=512, flush_interval=1.0)


def _propagation(kind: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    if kind == "ours":
        from exporters import propagate_attributes
    elif kind == "langfuse":
        from langfuse import propagate_attributes
    else:
        return contextlib.nullcontext
    return lambda: propagate_attributes(user_id="user-1", session_id="session-1", tags=["bench", "eu"])


class Setup:
    """One provider with (or without) one processor, and the spans to time on it."""

    def __init__(self, name: str, processor: SpanProcessor | None) -> None:
        self.name = name
        self.processor = processor
        self.provider = TracerProvider()
        if processor is not None:
            self.provider.add_span_processor(processor)
        self.langfuse_tracer = self.provider.get_tracer("langfuse-sdk", "5.0.4", attributes={"public_key": PK})
        self.genai_tracer = self.provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.1b0")

    def run(self, traces: int, propagated: Callable[[], contextlib.AbstractContextManager[Any]]) -> tuple[float, float]:
        """Seconds (wall, thread CPU) for ``traces`` traces of three spans."""
        agent_tracer, genai_tracer = self.langfuse_tracer, self.genai_tracer
        set_in_context = trace.set_span_in_context
        with propagated():
            wall, cpu = time.perf_counter(), time.thread_time()
            for _ in range(traces):
                agent = agent_tracer.start_span("weather-agent", attributes=LANGFUSE_ATTRIBUTES)
                ctx = set_in_context(agent)
                genai_tracer.start_span("chat gpt-4o", context=ctx, attributes=GENAI_ATTRIBUTES).end()
                genai_tracer.start_span("chat gpt-4o", context=ctx, attributes=GENAI_ATTRIBUTES).end()
                agent.end()
            return time.perf_counter() - wall, time.thread_time() - cpu

    def drain(self) -> None:
        if self.processor is not None:
            self.processor.force_flush(60_000)


@contextlib.contextmanager
def sink() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.requests = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=2000, help="traces (3 spans each) per timed repeat")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import langfuse

    with sink() as server:
        url = f"http://127.0.0.1:{server.server_port}"
        setups = [Setup("no processor", None), Setup("spanfuse", _ours(url)), Setup("langfuse", _langfuse(url))]
        spans = 3 * args.traces
        python = sys.version.split()[0]
        print(f"{spans} spans per repeat, {args.repeats} repeats, langfuse {langfuse.__version__}, python {python}")
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for scenario in ("plain", "propagated"):
            for setup in setups:  # warm-up: imports, caches, connections
                setup.run(200, contextlib.nullcontext)
                setup.drain()
            for _ in range(args.repeats):
                for setup in setups:  # interleaved, so drift in machine load hits all alike
                    kind = {"spanfuse": "ours", "langfuse": "langfuse"}.get(setup.name, "none")
                    results.setdefault((scenario, setup.name), []).append(
                        setup.run(
                            args.traces, _propagation(kind) if scenario == "propagated" else contextlib.nullcontext
                        )
                    )
                    setup.drain()  # untimed: the next setup starts with no backlog in flight

        print(f"\n{'scenario':<12}{'setup':<14}{'µs/span wall':>14}{'µs/span cpu':>13}{'wall - base':>13}")
        for scenario in ("plain", "propagated"):
            walls, cpus = {}, {}
            for setup in setups:
                runs = results[(scenario, setup.name)]
                walls[setup.name] = statistics.median(r[0] for r in runs) / spans * 1e6
                cpus[setup.name] = statistics.median(r[1] for r in runs) / spans * 1e6
                overhead = walls[setup.name] - walls["no processor"]
                print(
                    f"{scenario:<12}{setup.name:<14}{walls[setup.name]:>14.2f}{cpus[setup.name]:>13.2f}{overhead:>13.2f}"
                )
            for label, figures in (("wall", walls), ("cpu", cpus)):
                base = figures["no processor"]
                total = figures["spanfuse"] / figures["langfuse"]
                own = (figures["spanfuse"] - base) / max(figures["langfuse"] - base, 1e-9)
                print(f"{'':<12}ratio spanfuse/langfuse ({label}): {total:.2f} per span, {own:.2f} overhead only")

        for setup in setups:
            if setup.processor is not None:
                setup.processor.force_flush(60_000)
            setup.provider.shutdown()
        ours = setups[1].processor
        print(f"\nsink received {server.requests} requests; spanfuse stats: {ours.stats}")  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
