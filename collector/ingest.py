"""What every receiver does with an export request: decode, validate, then append to the WAL.

Spans (or log records) with unusable ids are removed from the request and reported through
``partial_success``; the rest is appended to the WAL as one record. The caller acknowledges
only after the returned future resolves (the record is fsynced).

With the compiled mapper, a protobuf trace request is decoded with its spans left encoded
(:data:`collector.wire.TraceRequest`) and each span checked by the C span reader, which checks
what protobuf would (UTF-8 included) without making any object; a span it does not read is
decoded by protobuf. Either way a request is refused exactly when protobuf cannot decode it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.admission import RequestBudget
from collector.telemetry import Telemetry
from collector.wire import TraceRequest
from semconv.encoded_span import C_SPAN_PROBLEMS, ID_PROBLEMS
from storage.wal import Signal, WalFull, WriteAheadLog

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
# Every stored span (log record) repeats its resource's and scope's attributes and names: a 15 MiB
# resource attribute on 1,000 spans would be 15 GiB in a worker. Four times the default body limit.
MAX_REPEATED_BYTES = 64 * 1024 * 1024


def _span_problem(span: Any) -> str | None:
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return "invalid trace id"
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return "invalid span id"
    if parent and len(parent) != 8:
        return "invalid parent span id"
    return None


def _span_problems(spans: Sequence[Any]) -> list[tuple[int, str]]:
    """(index, problem) of each unusable span; spans left encoded (see ``parse_traces``) are
    checked in C, and decoded by protobuf when the C reader does not read them (a
    ``DecodeError`` then refuses the request)."""
    if not spans or type(spans[0]) is not bytes:
        return _each(_span_problem, spans)
    assert C_SPAN_PROBLEMS is not None
    found = []
    for index, code in C_SPAN_PROBLEMS(spans):
        problem = ID_PROBLEMS[code] if code > 0 else _span_problem(Span.FromString(spans[index]))
        if problem is not None:
            found.append((index, problem))
    return found


def _log_problem(record: Any) -> str | None:
    if record.trace_id and len(record.trace_id) != 16:
        return "invalid trace id"
    if record.span_id and len(record.span_id) != 8:
        return "invalid span id"
    return None


# A protobuf ``ExportTraceServiceRequest`` from its bytes (raises ``DecodeError``): with the C span
# reader built, its spans are left encoded, each then checked by remove_invalid_items. Chosen once.
parse_traces: Callable[[bytes], Any] = (
    trace_service_pb2.ExportTraceServiceRequest.FromString if C_SPAN_PROBLEMS is None else TraceRequest.FromString
)


def _each(problem: Callable[[Any], str | None], items: Sequence[Any]) -> list[tuple[int, str]]:
    """(index, problem) of each item ``problem`` finds fault with."""
    return [(index, found) for index, item in enumerate(items) if (found := problem(item)) is not None]


@dataclass(frozen=True)
class SignalSpec:
    """Everything that differs between the traces and the logs signal."""

    signal: int
    name: str
    request_type: type  # what OTLP/JSON is decoded into, and names the signal's messages
    parse: Callable[[bytes], Any]  # a protobuf request (raises DecodeError)
    response_type: type
    path: tuple[str, str, str]  # resource list, scope list, item list
    items: str  # "spans" / "log records", for messages
    rejected_field: str
    json_root: str
    problems: Callable[[Sequence[Any]], list[tuple[int, str]]]  # (index, problem) of unusable items


TRACES = SignalSpec(
    signal=Signal.TRACES,
    name="traces",
    request_type=trace_service_pb2.ExportTraceServiceRequest,
    parse=parse_traces,
    response_type=trace_service_pb2.ExportTraceServiceResponse,
    path=("resource_spans", "scope_spans", "spans"),
    items="spans",
    rejected_field="rejected_spans",
    json_root="resourceSpans",
    problems=_span_problems,
)
LOGS = SignalSpec(
    signal=Signal.LOGS,
    name="logs",
    request_type=logs_service_pb2.ExportLogsServiceRequest,
    parse=logs_service_pb2.ExportLogsServiceRequest.FromString,
    response_type=logs_service_pb2.ExportLogsServiceResponse,
    path=("resource_logs", "scope_logs", "log_records"),
    items="log records",
    rejected_field="rejected_log_records",
    json_root="resourceLogs",
    problems=partial(_each, _log_problem),
)


@dataclass
class Submission:
    """A validated request: its WAL future (None if nothing was left to store) and its response."""

    spec: SignalSpec
    project_id: str
    transport: str
    accepted: int
    rejected: int
    response: Any
    future: Future[int] | None


def remove_invalid_items(spec: SignalSpec, message: Any) -> tuple[int, int, str | None]:
    """Drop items with unusable ids from ``message`` in place, and the items of a scope whose
    resource and scope, repeated on each of them, exceed :data:`MAX_REPEATED_BYTES`.

    Returns (kept, removed, message describing the first problem). Raises ``DecodeError`` when
    a span left encoded cannot be decoded (the request is then refused whole, as protobuf would).
    """
    outer, middle, inner = spec.path
    kept = removed = 0
    first_problem = None
    for resource in getattr(message, outer):
        shared = resource.resource.ByteSize()
        for scope in getattr(resource, middle):
            items = getattr(scope, inner)
            each = shared + scope.scope.ByteSize()
            if each * len(items) > MAX_REPEATED_BYTES:
                first_problem = first_problem or (
                    f"resource and scope of {each} bytes, repeated on each of "
                    f"{len(items)} {spec.items}, exceed {MAX_REPEATED_BYTES >> 20} MiB; send them in smaller requests "
                    "or with smaller resource attributes"
                )
                spec.problems(items)  # refused either way, but damage refuses the whole request
                removed += len(items)
                del items[:]
                continue
            bad = spec.problems(items)
            if bad:
                first_problem = first_problem or bad[0][1]
            for index, _ in reversed(bad):
                del items[index]
            kept += len(items)
            removed += len(bad)
    return kept, removed, first_problem


class Ingestor:
    """Validates decoded requests and appends them to the WAL, counting everything."""

    def __init__(self, wal: WriteAheadLog, telemetry: Telemetry, budget: RequestBudget) -> None:
        self.wal = wal
        self.telemetry = telemetry
        self.budget = budget  # the bytes of requests every receiver may hold at once

    def check_room(self) -> None:
        """Raise :class:`~storage.wal.WalFull` early, before a request body is read and parsed."""
        if not self.wal.has_room():
            raise WalFull("write-ahead log backlog is over its bound; retry later")

    def submit(self, spec: SignalSpec, project_id: str, message: Any, raw: bytes | None, transport: str) -> Submission:
        """Validate ``message`` and queue it for the WAL.

        ``raw`` is the request's protobuf encoding when it arrived as protobuf; it is stored as
        is unless items had to be removed. Raises the WAL's :class:`~storage.wal.WalFull` /
        :class:`~storage.wal.WalClosed` when the request cannot be queued.
        """
        kept, removed, problem = remove_invalid_items(spec, message)
        labels = (project_id, transport, spec.name)
        self.telemetry.received.labels(*labels).inc(kept + removed)
        response = spec.response_type()
        if removed:
            self.telemetry.rejected.labels(*labels, "invalid_id").inc(removed)
            partial = response.partial_success
            setattr(partial, spec.rejected_field, removed)
            partial.error_message = f"{removed} {spec.items} rejected: {problem}"
            raw = None
        future = None
        if kept:
            payload = raw if raw is not None else message.SerializeToString()
            try:
                future = self.wal.append(spec.signal, project_id, payload)
            except Exception:
                self.telemetry.rejected.labels(*labels, "unavailable").inc(kept)
                raise
        return Submission(spec, project_id, transport, kept, removed, response, future)

    def settled(self, submission: Submission, error: BaseException | None) -> None:
        """Count the outcome once the WAL future has resolved."""
        labels = (submission.project_id, submission.transport, submission.spec.name)
        if error is None:
            self.telemetry.accepted.labels(*labels).inc(submission.accepted)
        else:
            self.telemetry.rejected.labels(*labels, "wal_write_failed").inc(submission.accepted)
