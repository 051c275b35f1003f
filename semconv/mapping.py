"""OTLP requests -> table rows. Pure functions: protobuf messages in, dicts out.

The generic part (ids, times, name, kind, status, parent, service, scope, attributes,
events, links) is done here for every span. Attribute dialects (Langfuse, OTel GenAI,
OpenInference, ...) plug in through :mod:`semconv.registry`: each one that recognises a span
refines the rows the generic part produced.

Rows follow the columns of ``storage/schema.py``; times are integer microseconds (UTC).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from semconv.registry import SpanView, dialects_for
from semconv.values import any_value, attributes, to_json

STATUS_CODE_ERROR = 2
_SPAN_KINDS = {0: None, 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
DEFAULT_ENVIRONMENT = "default"


@dataclass
class MappedSpans:
    observations: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)
    warnings: int = 0


@dataclass(frozen=True, slots=True)
class ResourceContext:
    """What every span of one ``ResourceSpans`` shares, decoded once."""

    attributes: dict[str, Any]
    attributes_json: str | None
    service_name: str | None
    environment: str


def resource_context(resource: Any) -> ResourceContext:
    attrs = attributes(resource.attributes)
    environment = attrs.get("deployment.environment.name") or attrs.get("deployment.environment")
    return ResourceContext(
        attributes=attrs,
        attributes_json=to_json(attrs) if attrs else None,
        service_name=attrs.get("service.name"),
        environment=str(environment) if environment else DEFAULT_ENVIRONMENT,
    )


def _micros(nanos: int) -> int:
    return nanos // 1000


def _events(span: Any) -> tuple[str | None, str | None]:
    """Events as JSON, and the message of an ``exception`` event if there is one."""
    if not span.events:
        return None, None
    exception_message = None
    events = []
    for event in span.events:
        attrs = attributes(event.attributes)
        if event.name == "exception" and exception_message is None:
            exception_message = attrs.get("exception.message") or attrs.get("exception.type")
        events.append({"name": event.name, "time_unix_nano": event.time_unix_nano, "attributes": attrs})
    return to_json(events), exception_message


def _links(span: Any) -> str | None:
    if not span.links:
        return None
    return to_json(
        [
            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(), "attributes": attributes(link.attributes)}
            for link in span.links
        ]
    )


def map_span(resource: ResourceContext, scope: Any, span: Any, out: MappedSpans) -> None:
    """Append the observation (and, for a root span, the trace fact) of one span to ``out``."""
    attrs = attributes(span.attributes)
    trace_id = span.trace_id.hex()
    span_id = span.span_id.hex()
    parent_id = span.parent_span_id.hex() or None
    events_json, exception_message = _events(span)
    is_error = span.status.code == STATUS_CODE_ERROR
    start = _micros(span.start_time_unix_nano)
    observation: dict[str, Any] = {
        "id": span_id,
        "trace_id": trace_id,
        "parent_observation_id": parent_id,
        "type": "SPAN",
        "name": span.name,
        "start_time": start,
        "end_time": _micros(span.end_time_unix_nano) if span.end_time_unix_nano else None,
        "level": "ERROR" if is_error else "DEFAULT",
        "status_message": span.status.message or (exception_message if is_error else None),
        "environment": resource.environment,
        "service_name": resource.service_name,
        "scope_name": scope.name or None,
        "scope_version": scope.version or None,
        "span_kind": _SPAN_KINDS.get(span.kind),
        "attributes": to_json(attrs) if attrs else None,
        "resource_attributes": resource.attributes_json,
        "events": events_json,
        "links": _links(span),
    }
    trace: dict[str, Any] | None = None
    if parent_id is None:
        trace = {
            "id": trace_id,
            "observation_id": span_id,
            "timestamp": start,
            "name": span.name,
            "environment": resource.environment,
        }
    view = SpanView(attributes=attrs, resource=resource.attributes, scope_name=scope.name, span=span)
    for dialect in dialects_for(view):
        try:
            trace = dialect.apply(view, observation, trace)
        except Exception:  # a dialect bug must never drop a span: keep the generic rows
            out.warnings += 1
    out.observations.append(observation)
    if trace is not None:
        out.traces.append(trace)


def map_traces_request(request: Any) -> MappedSpans:
    """Map an ``ExportTraceServiceRequest`` into observation and trace rows."""
    out = MappedSpans()
    for resource_spans in request.resource_spans:
        resource = resource_context(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                map_span(resource, scope, span, out)
    return out


def _log_row(resource: ResourceContext, scope: Any, record: Any, fallback_ns: int) -> dict[str, Any]:
    attrs = attributes(record.attributes)
    event_name = getattr(record, "event_name", "") or attrs.get("event.name")
    time_ns = record.time_unix_nano or record.observed_time_unix_nano or fallback_ns
    return {
        "id": hashlib.blake2b(record.SerializeToString(deterministic=True), digest_size=16).hexdigest(),
        "trace_id": record.trace_id.hex() or None,
        "span_id": record.span_id.hex() or None,
        "timestamp": _micros(time_ns),
        "observed_timestamp": _micros(record.observed_time_unix_nano) if record.observed_time_unix_nano else None,
        "event_name": str(event_name) if event_name else None,
        "severity_number": record.severity_number or None,
        "severity_text": record.severity_text or None,
        "body": to_json(any_value(record.body)) if record.HasField("body") else None,
        "attributes": to_json(attrs) if attrs else None,
        "resource_attributes": resource.attributes_json,
        "service_name": resource.service_name,
        "scope_name": scope.name or None,
    }


def map_logs_request(request: Any, received_ns: int) -> list[dict[str, Any]]:
    """Map an ``ExportLogsServiceRequest`` into log rows (records without a time use ``received_ns``)."""
    rows = []
    for resource_logs in request.resource_logs:
        resource = resource_context(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                rows.append(_log_row(resource, scope_logs.scope, record, received_ns))
    return rows
