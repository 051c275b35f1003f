"""A scripted OTLP/HTTP sink on 127.0.0.1 and helpers to build processors against it."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider

from exporters import LangfuseSpanProcessor


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: ExportTraceServiceRequest

    def spans(self) -> list[Any]:
        return [s for rs in self.body.resource_spans for ss in rs.scope_spans for s in ss.spans]


@dataclass
class Sink:
    """Answers each POST with the next scripted ``(status, headers)``, then 200; records accepted bodies."""

    server: ThreadingHTTPServer
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def spans(self) -> list[Any]:
        with self.lock:
            return [span for request in self.received for span in request.spans()]


def attributes(span: Any) -> dict[str, Any]:
    """A protobuf span's attributes as plain Python values."""
    out: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [getattr(v, v.WhichOneof("value")) for v in kv.value.array_value.values]
        else:
            out[kv.key] = getattr(kv.value, kind)
    return out


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            with sink.lock:
                sink.attempts += 1
                status, headers = sink.script.pop(0) if sink.script else (200, {})
                if status == 200:
                    data = gzip.decompress(raw) if self.headers.get("content-encoding") == "gzip" else raw
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(data)
                    sink.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, request))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

    return Handler


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    sink = Sink(server)
    server.RequestHandlerClass = _handler(sink)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_processor(sink: Sink) -> Iterator[Callable[..., tuple[LangfuseSpanProcessor, TracerProvider]]]:
    """``make_processor(**kwargs)``: a processor against the sink on a fresh provider (shut down after)."""
    made: list[TracerProvider] = []

    def make(**kwargs: Any) -> tuple[LangfuseSpanProcessor, TracerProvider]:
        kwargs.setdefault("public_key", "pk-test")
        kwargs.setdefault("secret_key", "sk-test")
        kwargs.setdefault("base_url", sink.url)
        kwargs.setdefault("flush_interval", 60)  # tests flush explicitly
        processor = LangfuseSpanProcessor(**kwargs)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        made.append(provider)
        return processor, provider

    yield make
    for provider in made:
        provider.shutdown()
