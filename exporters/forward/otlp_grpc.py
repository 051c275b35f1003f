"""OTLP/gRPC sender (the Collector's ``otlp`` exporter).

Requests travel as the raw bytes stored in the WAL. Status codes follow the OTLP specification:
UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS are retried, and so are
INTERNAL and UNKNOWN (a failing server should cost lag, not data); RESOURCE_EXHAUSTED is retried
when it carries ``RetryInfo`` (backpressure) and otherwise means the message is too large; the
rest (INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED…) are permanent.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from exporters.forward.base import LOGS, TRACES, Outcome, Result, TlsOptions, partial_success

METHODS = {
    TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}
_PAYLOAD_PROBLEMS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_CHANNEL_OPTIONS = [
    # Reconnect soon after the peer comes back (gRPC's default backoff grows to two minutes).
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.enable_retries", 0),  # the forwarder retries, with its own backoff and accounting
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
]


def retry_delay(metadata: Any) -> float | None:
    """Seconds from ``RetryInfo`` in trailing metadata (bare, or inside ``grpc-status-details-bin``)."""
    for key, value in metadata or ():
        if key == _RETRY_INFO_KEY:
            info = error_details_pb2.RetryInfo()
            try:
                info.ParseFromString(value)
            except DecodeError:
                continue
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
        if key == _STATUS_DETAILS_KEY:
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except DecodeError:
                continue
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def _credentials(tls: TlsOptions) -> grpc.ChannelCredentials:
    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(tls.ca_file),
        private_key=read(tls.key_file),
        certificate_chain=read(tls.cert_file),
    )


class OtlpGrpcSender:
    """Calls ``TraceService/Export`` and ``LogsService/Export`` on one channel."""

    def __init__(
        self,
        target: str,
        *,
        plaintext: bool = False,
        headers: Mapping[str, str] | None = None,
        compression: str = "gzip",
        timeout: float = 10.0,
        tls: TlsOptions | None = None,
        user_agent: str = "spanfuse",
    ) -> None:
        options = [*_CHANNEL_OPTIONS, ("grpc.primary_user_agent", user_agent)]
        if plaintext:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, _credentials(tls or TlsOptions()), options=options)
        # gRPC metadata keys must be lower case.
        self.metadata = tuple((key.lower(), value) for key, value in (headers or {}).items())
        self.compression = grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression
        self.timeout = timeout
        self._calls = {
            signal: self._channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            for signal, method in METHODS.items()
        }
        self._lock = threading.Lock()
        self._inflight: grpc.Future | None = None
        self._interrupted = False

    def send(self, signal: str, payload: bytes) -> Result:
        """One RPC; see the module docstring for how each status is classified."""
        future = self._calls[signal].future(
            payload, timeout=self.timeout, metadata=self.metadata, compression=self.compression
        )
        with self._lock:
            self._inflight = future
            if self._interrupted:
                future.cancel()
        try:
            response: bytes = future.result()
        except grpc.FutureCancelledError:
            return Result(Outcome.RETRY, "grpc_cancelled", "cancelled at shutdown")
        except grpc.RpcError as error:
            return self._classify(error)
        finally:
            with self._lock:
                self._inflight = None
        rejected, message = partial_success(signal, response)
        return Result(Outcome.SENT, "grpc_ok", message, rejected_items=rejected)

    @staticmethod
    def _classify(error: Any) -> Result:
        code: grpc.StatusCode = error.code()
        reason = f"grpc_{code.name.lower()}"
        message = f"{code.name}: {error.details()}"
        delay = retry_delay(error.trailing_metadata())
        if code in _RETRYABLE or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
            return Result(Outcome.RETRY, reason, message, retry_after=delay)
        return Result(Outcome.REJECTED, reason, message, payload_problem=code in _PAYLOAD_PROBLEMS)

    def interrupt(self) -> None:
        """Cancel the RPC in progress (and any later one): used at shutdown."""
        with self._lock:
            self._interrupted = True
            if self._inflight is not None:
                self._inflight.cancel()

    def close(self) -> None:
        self._channel.close()
