"""What every sender shares: the result of one attempt, TLS options, backoff, OTLP responses."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

TRACES = "traces"
LOGS = "logs"
MAX_RETRY_AFTER_SECONDS = 300.0  # a downstream asking for longer is still retried after this


class Outcome(enum.Enum):
    """How the downstream answered one export request."""

    SENT = "sent"  # accepted (possibly with a partial_success naming items it dropped)
    RETRY = "retry"  # unreachable, overloaded or failing: send the same data again later
    REJECTED = "rejected"  # refused for good (bad data, bad credentials): sending it again cannot help


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to one attempt.

    ``reason`` is a short, low-cardinality label for metrics (``http_503``, ``grpc_unavailable``,
    ``connect_error``); ``message`` is for the log. ``payload_problem`` marks a rejection caused by
    the request's content (400, 413, INVALID_ARGUMENT…), which a caller sending several records in
    one request can narrow down by sending them one by one.
    """

    outcome: Outcome
    reason: str
    message: str = ""
    rejected_items: int = 0
    retry_after: float | None = None
    payload_problem: bool = False


class Sender(Protocol):
    """One downstream endpoint speaking one protocol."""

    def send(self, signal: str, payload: bytes) -> Result:
        """Send one serialized ``Export{Trace,Logs}ServiceRequest``; never raises for downstream failures."""
        ...

    def interrupt(self) -> None:
        """Abort an attempt in progress from another thread, if the transport allows it (shutdown)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """``tls`` as the OpenTelemetry Collector spells it for its exporters."""

    insecure: bool = False
    insecure_skip_verify: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class Backoff:
    """Exponential backoff with jitter, capped; a downstream's own ``Retry-After`` wins when given."""

    def __init__(self, initial: float, maximum: float, rand: Callable[[], float] = random.random) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0
        self._rand = rand

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt (and count this one)."""
        self.attempts += 1
        if retry_after is not None and retry_after >= 0:
            # Honour the server's figure; a little jitter keeps many senders from returning together.
            return min(retry_after, MAX_RETRY_AFTER_SECONDS) * (1 + 0.1 * self._rand())
        ceiling = min(self.maximum, self.initial * 2 ** min(self.attempts - 1, 32))
        return ceiling * (0.5 + 0.5 * self._rand())  # in [ceiling/2, ceiling]: spread, never above the cap

    def reset(self) -> None:
        self.attempts = 0


def partial_success(signal: str, body: bytes) -> tuple[int, str]:
    """Items the downstream dropped, and why, from an OTLP export response (0 when it is unreadable)."""
    if not body:
        return 0, ""
    response = ExportTraceServiceResponse() if signal == TRACES else ExportLogsServiceResponse()
    try:
        response.ParseFromString(body)
    except DecodeError:
        return 0, ""
    partial = response.partial_success
    rejected = partial.rejected_spans if signal == TRACES else partial.rejected_log_records
    return int(rejected), partial.error_message
