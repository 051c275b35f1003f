"""OTLP/gRPC receiver: ``TraceService/Export`` and ``LogsService/Export``.

Requests are taken as raw bytes so an accepted request is stored exactly as it arrived.
Errors use the OTLP status codes: INVALID_ARGUMENT (malformed), UNAUTHENTICATED,
RESOURCE_EXHAUSTED with ``RetryInfo`` (backpressure; gRPC itself answers it for messages over
the size limit), UNAVAILABLE (shutting down, disk failure).
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import RetryInfo

from collector.admission import Busy
from collector.auth import Authenticator, AuthError
from collector.ingest import LOGS, TRACES, Ingestor, SignalSpec
from collector.telemetry import Telemetry
from storage.wal import WalClosed, WalFull, WalWriteFailed

log = logging.getLogger("spanfuse.grpc")

SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": TRACES,
    "opentelemetry.proto.collector.logs.v1.LogsService": LOGS,
}
_RETRY_INFO = RetryInfo(retry_delay=Duration(seconds=1)).SerializeToString()


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, reason: str, retry: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.reason, self.retry = code, message, reason, retry


class OtlpGrpcReceiver:
    """A gRPC server exposing the OTLP export services."""

    def __init__(
        self,
        endpoint: str,
        ingestor: Ingestor,
        auth: Authenticator,
        telemetry: Telemetry,
        max_message_bytes: int,
        workers: int = 16,
    ) -> None:
        self.endpoint = endpoint
        self.ingestor = ingestor
        self.auth = auth
        self.telemetry = telemetry
        self.port = 0
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
                # Streams one connection may have open at once (gRPC's default is unlimited); those past
                # it are refused as UNAVAILABLE, which exporters retry. nginx allows 128, Go's HTTP/2 250.
                ("grpc.max_concurrent_streams", 128),
            ],
            # No cap on concurrent RPCs: grpcio refuses those over a cap with RESOURCE_EXHAUSTED and
            # no RetryInfo, which the Collector's and Go SDK's exporters drop as permanent. RPCs
            # wait for a thread instead; a full WAL refuses them with RetryInfo.
            maximum_concurrent_rpcs=None,
        )
        handlers = []
        for service, spec in SERVICES.items():
            method = grpc.unary_unary_rpc_method_handler(
                self._handler(spec),
                request_deserializer=None,  # raw bytes: stored as received
                response_serializer=lambda message: message.SerializeToString(),
            )
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
        self._server.add_generic_rpc_handlers(tuple(handlers))

    def start(self) -> None:
        """Listen; raises :class:`OSError` naming the endpoint if it cannot."""
        try:
            self.port = self._server.add_insecure_port(self.endpoint)
        except RuntimeError:  # grpcio raises where older releases returned 0
            self.port = 0
        if self.port == 0:  # gRPC does not say why
            raise OSError(f"gRPC endpoint {self.endpoint}: cannot listen there (address in use or not available)")
        self._server.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting RPCs and wait up to ``grace`` seconds for those in flight."""
        self._server.stop(grace).wait()

    def _handler(self, spec: SignalSpec) -> Any:
        def export(request: bytes, context: grpc.ServicerContext) -> Any:
            try:
                response = self._export(spec, request, context)
            except _Abort as abort:
                self.telemetry.requests.labels("grpc", spec.name, abort.reason).inc()
                if abort.retry:
                    context.set_trailing_metadata((("google.rpc.retryinfo-bin", _RETRY_INFO),))
                context.abort(abort.code, abort.message)
            self.telemetry.requests.labels("grpc", spec.name, "ok").inc()
            return response

        return export

    def _export(self, spec: SignalSpec, request: bytes, context: grpc.ServicerContext) -> Any:
        metadata = dict(context.invocation_metadata())
        try:
            project_id = self.auth.project_for(metadata.get("authorization"))
        except AuthError as exc:
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, str(exc), "unauthenticated") from None
        with self.ingestor.budget.hold() as hold:
            try:
                self.ingestor.check_room()  # refuse before parsing
                hold.take(len(request))
            except (WalFull, Busy) as exc:
                raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), "backpressure", retry=True) from None
            return self._store(spec, project_id, request)

    def _store(self, spec: SignalSpec, project_id: str, request: bytes) -> Any:
        try:
            # Validating a request decodes what parsing left encoded: damage may show in either.
            submission = self.ingestor.submit(spec, project_id, spec.parse(request), request, "grpc")
        except (DecodeError, RecursionError) as exc:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed protobuf {spec.request_type.__name__}: {exc}",
                "malformed",
            ) from None
        except WalFull as exc:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), "backpressure", retry=True) from None
        except WalClosed as exc:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, str(exc), "unavailable", retry=True) from None
        if submission.future is not None:
            try:
                submission.future.result()
            except WalWriteFailed as exc:
                self.ingestor.settled(submission, exc)
                raise _Abort(grpc.StatusCode.UNAVAILABLE, str(exc), "wal_write_failed", retry=True) from None
            self.ingestor.settled(submission, None)
        return submission.response
