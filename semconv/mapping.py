"""OTLP requests -> table rows. Pure functions: protobuf messages in, dicts out.

The generic part (ids, times, name, kind, status, parent, service, scope, attributes,
events, links) is done here for every span. Attribute dialects (Langfuse, OTel GenAI,
OpenInference, ...) plug in through :mod:`semconv.registry`: each one that recognises a span
refines the rows the generic part produced.

Rows follow the columns of ``storage/schema.py``; times are integer microseconds (UTC).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from semconv.attrs import as_bool, as_str
from semconv.context import DEFAULT_ENVIRONMENT, context, normalize_environment, resource_facts
from semconv.dialects import genai
from semconv.encoded_span import SpanData, SpanStatus, span_data
from semconv.extract import Extract, SpanView, merge
from semconv.registry import dialects_for
from semconv.values import any_value, attributes, to_json

STATUS_CODE_ERROR: Final = 2
_SPAN_KINDS: Final = {0: None, 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}

# Rows are displays that start from one of these (``{**_OBSERVATION_ROW, ...}``). Compiled, a
# plain display of this size is a presized dict with general keys, and the writer's lookups by
# column name (equal strs, not the same objects) then take CPython's generic comparison. A dict
# made from a str-keyed one keeps the str-only layout: a third smaller, and Arrow converts it
# about a quarter faster. Each must hold exactly the keys of its display (a test checks).
_OBSERVATION_ROW: Final[dict[str, Any]] = dict.fromkeys(
    (
        "id",
        "trace_id",
        "parent_observation_id",
        "type",
        "name",
        "start_time",
        "end_time",
        "completion_start_time",
        "level",
        "status_message",
        "version",
        "environment",
        "model",
        "provider",
        "model_parameters",
        "input",
        "output",
        "metadata",
        "usage_details",
        "prompt_name",
        "prompt_version",
        "service_name",
        "scope_name",
        "scope_version",
        "span_kind",
        "attributes",
        "resource_attributes",
        "events",
        "links",
    )
)
TRACE_ROW: Final[dict[str, Any]] = dict.fromkeys(
    (
        "id",
        "observation_id",
        "timestamp",
        "name",
        "user_id",
        "session_id",
        "tags",
        "input",
        "output",
        "metadata",
        "release",
        "version",
        "environment",
        "public",
    )
)


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
    facts: dict[str, Any]  # trace-context fallbacks for every span (see context.resource_facts)


@dataclass(frozen=True, slots=True)
class ScopeContext:
    """The instrumentation scope every span of one ``ScopeSpans`` shares, read once."""

    name: str
    version: str


def resource_context(resource: Any) -> ResourceContext:
    attrs = attributes(resource.attributes)
    environment = as_str(attrs.get("deployment.environment.name") or attrs.get("deployment.environment"))
    return ResourceContext(
        attributes=attrs,
        attributes_json=to_json(attrs) if attrs else None,
        service_name=as_str(attrs.get("service.name")),
        environment=normalize_environment(environment) if environment else DEFAULT_ENVIRONMENT,
        facts=resource_facts(attrs),
    )


def _micros(nanos: int) -> int:
    return nanos // 1000


# Times a reader can turn back into a datetime: years 1..9999 (UTC), in microseconds.
_MIN_MICROS, _MAX_MICROS = -62_135_596_800_000_000, 253_402_300_799_999_999


def _time_or_none(micros: int | None) -> int | None:
    """``micros`` when it is a representable time, else None (dialects compute some from client numbers)."""
    return micros if micros is not None and _MIN_MICROS <= micros <= _MAX_MICROS else None


def _events(span: SpanData) -> tuple[str | None, str | None]:
    """Events as JSON, and the message of an ``exception`` event if there is one."""
    span_events = span.events
    if not span_events:
        return None, None
    exception_message = None
    events = []
    for event in span_events:
        attrs = attributes(event.attributes)
        if event.name == "exception" and exception_message is None:
            # Any type may come: an int or a map would break the str the status message is.
            exception_message = as_str(attrs.get("exception.message")) or as_str(attrs.get("exception.type"))
        events.append({"name": event.name, "time_unix_nano": event.time_unix_nano, "attributes": attrs})
    return to_json(events), exception_message


def _links(span: SpanData) -> str | None:
    span_links = span.links
    if not span_links:
        return None
    return to_json(
        [
            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(), "attributes": attributes(link.attributes)}
            for link in span_links
        ]
    )


def _status_message(status: SpanStatus, attrs: dict[str, Any], exception_message: str | None) -> str | None:
    if status.message:
        return status.message
    if status.code == STATUS_CODE_ERROR:
        return exception_message or as_str(attrs.get("error.type"))
    return None


def _read(view: SpanView, out: MappedSpans) -> Extract:
    readings = []
    for dialect in dialects_for(view):
        try:
            readings.append(dialect.extract(view))
        except Exception:  # a dialect bug must never drop a span: keep what the others read
            out.warnings += 1
    readings.append(context(view))
    return merge(readings)


def _json_or_none(value: Any) -> str | None:
    return to_json(value) if value is not None else None


def _tags(value: Any) -> list[str] | None:
    """Tags as a list of strings, whatever a dialect read (a string, a list of anything)."""
    if value is None:
        return None
    items = value if isinstance(value, list | tuple) else [value]
    return [tag for tag in (as_str(item) for item in items) if tag is not None]


def map_span(
    resource: ResourceContext, scope: ScopeContext, span: SpanData, out: MappedSpans, *, read: bool = True
) -> None:
    """Append the observation (and, when the span carries trace facts, the trace row) to ``out``.

    ``read=False`` skips the dialects and the trace context: the generic row only, every
    attribute kept as it came (the fallback for a span whose reading failed).
    """
    attrs = span.attributes
    e = (
        _read(SpanView.of(attrs, resource.attributes, scope.name, scope.version, span, resource.facts), out)
        if read
        else Extract()
    )
    trace_id = span.trace_id.hex()
    span_id = span.span_id.hex()
    parent_id = span.parent_span_id.hex() or None
    events_json, exception_message = _events(span)
    status = span.status
    end = span.end_time_unix_nano
    start = _micros(span.start_time_unix_nano)
    environment = as_str(e.environment) or resource.environment
    metadata = e.metadata
    if e.aggregated_usage:
        metadata = {**(metadata or {}), "aggregated_usage": e.aggregated_usage}
    unmapped = {k: v for k, v in attrs.items() if k not in e.consumed} if e.consumed else attrs
    observation: dict[str, Any] = {
        **_OBSERVATION_ROW,
        "id": span_id,
        "trace_id": trace_id,
        "parent_observation_id": parent_id,
        "type": as_str(e.type) or "SPAN",
        "name": as_str(e.name) or span.name,
        "start_time": start,
        "end_time": _micros(end) if end else None,
        "completion_start_time": _time_or_none(e.completion_start_time),
        "level": as_str(e.level) or ("ERROR" if status.code == STATUS_CODE_ERROR else "DEFAULT"),
        "status_message": as_str(e.status_message) or _status_message(status, attrs, exception_message),
        "version": as_str(e.version),
        "environment": environment,
        "model": as_str(e.model),
        "provider": as_str(e.provider),
        "model_parameters": _json_or_none(e.model_parameters),
        "input": _json_or_none(e.input),
        "output": _json_or_none(e.output),
        "metadata": _json_or_none(metadata),
        "usage_details": e.usage,
        "prompt_name": as_str(e.prompt_name),
        "prompt_version": e.prompt_version,
        "service_name": resource.service_name,
        "scope_name": scope.name or None,
        "scope_version": scope.version or None,
        "span_kind": _SPAN_KINDS.get(span.kind),
        "attributes": to_json(unmapped) if unmapped else None,
        "resource_attributes": resource.attributes_json,
        "events": events_json,
        "links": _links(span),
    }
    if e.cost:
        observation["cost_details"] = e.cost
        observation["total_cost"] = e.cost.get("total")
        observation["cost_source"] = "provided"

    is_root = parent_id is None or bool(e.root)
    has_facts = (  # a chain, not any(<generator>): this runs for every span
        e.trace_name is not None
        or e.trace_input is not None
        or e.trace_output is not None
        or e.trace_metadata is not None
        or e.user_id is not None
        or e.session_id is not None
        or e.tags is not None
        or e.public is not None
        or e.release is not None
    )
    trace: dict[str, Any] | None = None
    if is_root or has_facts:
        # A root's own input/output are the trace's unless a dialect says otherwise: their JSON is reused.
        trace_input = observation["input"] if is_root else None
        if e.trace_input is not None:
            trace_input = _json_or_none(e.trace_input)
        trace_output = observation["output"] if is_root else None
        if e.trace_output is not None:
            trace_output = _json_or_none(e.trace_output)
        trace = {
            **TRACE_ROW,
            "id": trace_id,
            "observation_id": span_id,
            "timestamp": start,
            "name": as_str(e.trace_name) or (observation["name"] if is_root else None),
            "user_id": as_str(e.user_id),
            "session_id": as_str(e.session_id),
            "tags": _tags(e.tags),
            "input": trace_input,
            "output": trace_output,
            "metadata": _json_or_none(e.trace_metadata),
            "release": as_str(e.release),
            "version": observation["version"],
            "environment": environment,
            "public": as_bool(e.public),
        }
    # Appended last, so that a failure above (see map_traces_request) leaves ``out`` as it was.
    out.observations.append(observation)
    if trace is not None:
        out.traces.append(trace)


def map_traces_request(request: Any) -> MappedSpans:
    """Map an ``ExportTraceServiceRequest`` into observation and trace rows."""
    parts: list[MappedSpans] = []
    map_traces_parts(request, parts.append, 0)
    return parts[0]


def map_traces_parts(request: Any, deliver: Callable[[MappedSpans], None], spans_per_part: int) -> None:
    """Map an ``ExportTraceServiceRequest``, handing its rows to ``deliver`` in parts of
    ``spans_per_part`` spans (0: one part) as they are mapped.

    A request's rows take about 60 times its encoded size (a 16 MiB request of small spans,
    about 1 GiB as dicts): in parts, a worker holds one part's at a time.
    """
    out = MappedSpans()
    for resource_spans in request.resource_spans:
        resource = resource_context(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            scope_message = scope_spans.scope
            scope = ScopeContext(scope_message.name, scope_message.version)
            for item in scope_spans.spans:
                span = span_data(item)  # a damaged encoded span fails the whole request, as decoding it would
                try:
                    map_span(resource, scope, span, out)
                except Exception:  # a mapping bug must never drop a span (or fail its batch): keep it unread
                    out.warnings += 1
                    map_span(resource, scope, span, out, read=False)
                if spans_per_part and len(out.observations) >= spans_per_part:
                    deliver(out)
                    out = MappedSpans()
    if not spans_per_part or out.observations or out.traces or out.warnings:
        deliver(out)


def _log_row(
    resource: ResourceContext, scope: Any, record: Any, fallback_ns: int, *, read: bool = True
) -> dict[str, Any]:
    """One log row; ``read=False`` leaves GenAI content unread (the fallback when reading it failed)."""
    attrs = attributes(record.attributes)
    event_name = as_str(getattr(record, "event_name", "") or attrs.get("event.name"))
    time_ns = record.time_unix_nano or record.observed_time_unix_nano or fallback_ns
    body = any_value(record.body) if record.HasField("body") else None
    input_messages, output_messages = (
        genai.log_content(event_name, body, attrs) if event_name and read else (None, None)
    )
    return {
        "id": hashlib.blake2b(record.SerializeToString(deterministic=True), digest_size=16).hexdigest(),
        "trace_id": record.trace_id.hex() or None,
        "span_id": record.span_id.hex() or None,
        "timestamp": _micros(time_ns),
        "observed_timestamp": _micros(record.observed_time_unix_nano) if record.observed_time_unix_nano else None,
        "event_name": event_name,
        "severity_number": record.severity_number or None,
        "severity_text": record.severity_text or None,
        "body": to_json(body),
        "input_messages": _json_or_none(input_messages),
        "output_messages": _json_or_none(output_messages),
        "attributes": to_json(attrs) if attrs else None,
        "resource_attributes": resource.attributes_json,
        "service_name": resource.service_name,
        "scope_name": scope.name or None,
    }


def map_logs_request(request: Any, received_ns: int) -> list[dict[str, Any]]:
    """Map an ``ExportLogsServiceRequest`` into log rows (records without a time use ``received_ns``)."""
    parts: list[list[dict[str, Any]]] = []
    map_logs_parts(request, received_ns, parts.append, 0)
    return parts[0]


def map_logs_parts(
    request: Any, received_ns: int, deliver: Callable[[list[dict[str, Any]]], None], records_per_part: int
) -> None:
    """:func:`map_logs_request`, handing the rows to ``deliver`` in parts of ``records_per_part``
    records (0: one part), as :func:`map_traces_parts` does for spans."""
    rows: list[dict[str, Any]] = []
    for resource_logs in request.resource_logs:
        resource = resource_context(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                try:
                    rows.append(_log_row(resource, scope_logs.scope, record, received_ns))
                except Exception:  # as for spans: a reading bug must never drop a record
                    rows.append(_log_row(resource, scope_logs.scope, record, received_ns, read=False))
                if records_per_part and len(rows) >= records_per_part:
                    deliver(rows)
                    rows = []
    if not records_per_part or rows:
        deliver(rows)
