"""Helpers to send telemetry with the official OpenTelemetry exporters, or as raw OTLP."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from tests.conftest import PK, SK


def basic_auth(public_key: str = PK, secret_key: str = SK) -> str:
    return "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()


def span_exporter(kind: str, server: Any, auth: str | None = None, path: str = "/v1/traces") -> SpanExporter:
    """The official exporter for ``kind`` (grpc, http, json) pointed at an in-process server."""
    headers = {"authorization": auth or basic_auth()}
    if kind == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc(endpoint=f"http://127.0.0.1:{server.grpc_port}", insecure=True, headers=headers)
    if kind == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

        return Http(endpoint=f"http://127.0.0.1:{server.http_port}{path}", headers=headers)
    if kind == "json":
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as Json

        return Json(endpoint=f"http://127.0.0.1:{server.http_port}{path}", headers=headers)
    raise ValueError(kind)


def tracer_provider(exporter: SpanExporter, service: str = "test-service") -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP AnyValue (lists become arrays, dicts kvlists)."""
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in value.items()]))
    return kv("", value).value


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, list | dict):
        return KeyValue(key=key, value=any_value(value))
    if isinstance(value, bool):
        wrapped = AnyValue(bool_value=value)
    elif isinstance(value, int):
        wrapped = AnyValue(int_value=value)
    elif isinstance(value, float):
        wrapped = AnyValue(double_value=value)
    elif isinstance(value, bytes):
        wrapped = AnyValue(bytes_value=value)
    else:
        wrapped = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=wrapped)


def make_span(
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent: bytes = b"",
    name: str = "span",
    start_ns: int = 1_764_000_000_000_000_000,
    duration_ns: int = 1_000_000,
    attributes: dict[str, Any] | None = None,
    error: str | None = None,
) -> Span:
    return Span(
        trace_id=trace_id if trace_id is not None else os.urandom(16),
        span_id=span_id if span_id is not None else os.urandom(8),
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + duration_ns,
        attributes=[kv(k, v) for k, v in (attributes or {}).items()],
        status=Status(code=Status.STATUS_CODE_ERROR, message=error) if error else Status(),
    )


def trace_request(spans: list[Span], service: str = "raw-service") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(kv("service.name", service))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    scope_spans.spans.extend(spans)
    return request


def logs_request(records: list[LogRecord], service: str = "raw-service") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(kv("service.name", service))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "tests"
    scope_logs.log_records.extend(records)
    return request


Poster = Callable[..., Any]
