"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/logs`` and Langfuse's ``/api/public/otel/v1/*``.

Protobuf and JSON bodies, gzip, deflate or zstd (which an OpenTelemetry Collector upstream may be
set to send). Answers in the request's encoding: an
``Export…ServiceResponse`` on success (``partial_success`` when items were rejected), a
``google.rpc.Status`` on error. Status codes follow the OTLP specification: 400 malformed,
401 bad credentials, 413 too large, 415 unsupported media type or encoding, 429/503 with
``Retry-After`` when the collector cannot take the data right now (clients retry those).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import zstandard
from fastapi import FastAPI, Request, Response
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from isal import isal_zlib  # zlib's formats, inflated by ISA-L: 1.0 µs a span, not zlib's 2.5

from collector import otlp_json
from collector.admission import Busy, Hold
from collector.auth import Authenticator, AuthError
from collector.ingest import LOGS, TRACES, Ingestor, SignalSpec
from collector.telemetry import Telemetry
from storage.wal import WalClosed, WalFull, WalWriteFailed

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {"application/x-protobuf": PROTOBUF, "application/protobuf": PROTOBUF, "application/json": JSON}
RETRY_AFTER_SECONDS = 1
_JSON_INLINE_BYTES = 64 * 1024  # OTLP/JSON bodies parsed on the event loop; bigger ones in a thread
# What an OTLP/JSON body takes decoded, as Python objects and then constructor arguments, in its
# own bytes (measured 7.5 on the benchmark's requests): held in the request budget beside the body.
_JSON_DECODED_FACTOR = 8

ROUTES: dict[str, SignalSpec] = {
    "/v1/traces": TRACES,
    "/v1/logs": LOGS,
    "/api/public/otel/v1/traces": TRACES,
    "/api/public/otel/v1/logs": LOGS,
}

# google.rpc.Code values used in error bodies.
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _UNAVAILABLE, _UNAUTHENTICATED = 3, 8, 14, 16


@dataclass
class HttpError(Exception):
    status: int
    message: str
    code: int = _INVALID_ARGUMENT
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = "malformed"


def _retry_later(status: int, message: str, reason: str) -> HttpError:
    code = _RESOURCE_EXHAUSTED if status == 429 else _UNAVAILABLE
    return HttpError(status, message, code, {"Retry-After": str(RETRY_AFTER_SECONDS)}, reason)


def media_type(content_type: str | None) -> str:
    """The OTLP encoding named by a Content-Type header; raises 415 for anything else."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base not in _MEDIA_TYPES:
        shown = base or "none"
        raise HttpError(
            415,
            f"unsupported content type {shown!r}: use application/x-protobuf or application/json",
            reason="unsupported_media_type",
        )
    return _MEDIA_TYPES[base]


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` without ever producing more than ``limit`` bytes."""
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return body
    if name == "zstd":
        return _unzstd(body, limit)
    if name == "gzip":
        attempts = [isal_zlib.MAX_WBITS | 16]
    elif name == "deflate":
        attempts = [isal_zlib.MAX_WBITS, -isal_zlib.MAX_WBITS]  # zlib-wrapped, then raw deflate
    else:
        raise HttpError(
            415,
            f"unsupported content encoding {name!r}: use gzip, deflate, zstd or none",
            reason="unsupported_media_type",
        )
    for wbits in attempts:
        inflater = isal_zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, limit + 1)
        except isal_zlib.error:
            continue
        if len(out) > limit or inflater.unconsumed_tail:
            raise HttpError(413, f"decompressed body exceeds the limit of {limit} bytes", reason="too_large")
        if not inflater.eof:
            raise HttpError(400, f"truncated {name} body")
        return out
    raise HttpError(400, f"body is not valid {name} data")


# Input fed to zstd at a time: what comes out of it is at most ~8 MiB (64 blocks of 128 KiB), so a
# bomb is stopped a little past the limit. zstandard has no bound on one call's output of its own.
_ZSTD_STEP = 256


def _unzstd(body: bytes, limit: int) -> bytes:
    out = bytearray()
    pos = 0
    try:
        while True:  # a frame a round: a body may hold several, one after another
            frame = zstandard.ZstdDecompressor().decompressobj()
            while not frame.eof:
                if pos >= len(body):
                    raise HttpError(400, "truncated zstd body")
                piece = body[pos : pos + _ZSTD_STEP]
                pos += len(piece)
                out += frame.decompress(piece)
                if len(out) > limit:
                    raise HttpError(413, f"decompressed body exceeds the limit of {limit} bytes", reason="too_large")
            pos -= len(frame.unused_data)
            if pos >= len(body):
                return bytes(out)
    except zstandard.ZstdError:
        raise HttpError(400, "body is not valid zstd data") from None


async def read_body(request: Request, limit: int, hold: Hold) -> bytes:
    """The request body, at most ``limit`` bytes (413 past it), held in ``hold`` chunk by chunk
    as it arrives (not as declared: a client trickling a big body in holds only what it sent).
    When the budget cannot spare a chunk, the rest of the body is read and dropped (the
    connection stays usable) and :class:`~collector.admission.Busy` raised."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes", reason="too_large")
    chunks: list[bytes] = []
    size = 0
    refused: Busy | None = None
    async for chunk in request.stream():  # (one pass: a second stream() fails once the last chunk is in)
        size += len(chunk)
        if size > limit:
            if refused is not None:
                break
            raise HttpError(413, f"body exceeds the limit of {limit} bytes", reason="too_large")
        if refused is None:
            try:
                hold.take(len(chunk))
            except Busy as busy:
                refused, chunks = busy, []  # what was kept is dropped; the rest is read past
            else:
                chunks.append(chunk)
    if refused is not None:
        raise refused
    return b"".join(chunks)


async def read_held_body(request: Request, limit: int, hold: Hold, json: bool) -> bytes:
    """The body with ``Content-Encoding`` undone (:func:`read_body`, :func:`decompress`), holding
    in ``hold`` what decompressing adds and, for JSON, what decoding it will take."""
    raw = await read_body(request, limit, hold)
    body = decompress(raw, request.headers.get("content-encoding"), limit)
    if body is not raw:
        hold.take(len(body))
    if json:
        hold.take(_JSON_DECODED_FACTOR * len(body))
    return body


async def discard_body(request: Request, limit: int) -> None:
    """Read what is left of the body (at most ``limit`` bytes) without keeping it, so a request
    refused before its body was read leaves its connection ready for the next one."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return


def _error_response(error: HttpError, encoding: str) -> Response:
    if encoding == PROTOBUF:
        body = status_pb2.Status(code=error.code, message=error.message).SerializeToString()
    else:
        body = otlp_json.render(status_pb2.Status(code=error.code, message=error.message))
    return Response(body, status_code=error.status, media_type=encoding, headers=error.headers)


class OtlpHttpHandler:
    """Turns one OTLP/HTTP request into a WAL record and an answer."""

    def __init__(self, ingestor: Ingestor, auth: Authenticator, telemetry: Telemetry, max_body_bytes: int) -> None:
        self.ingestor = ingestor
        self.auth = auth
        self.telemetry = telemetry
        self.max_body_bytes = max_body_bytes

    async def handle(self, request: Request, spec: SignalSpec) -> Response:
        content_type = request.headers.get("content-type")
        # Errors are answered in the request's encoding when it is one we speak.
        encoding = _MEDIA_TYPES.get((content_type or "").split(";", 1)[0].strip().lower(), JSON)
        try:
            response = await self._export(request, spec, content_type)
        except HttpError as error:
            self.telemetry.requests.labels("http", spec.name, error.reason).inc()
            return _error_response(error, encoding)
        self.telemetry.requests.labels("http", spec.name, "ok").inc()
        return response

    async def _export(self, request: Request, spec: SignalSpec, content_type: str | None) -> Response:
        try:
            project_id = self.auth.project_for(request.headers.get("authorization"))
        except AuthError as exc:
            raise HttpError(401, str(exc), _UNAUTHENTICATED, reason="unauthenticated") from None
        encoding = media_type(content_type)
        with self.ingestor.budget.hold() as hold:
            return await self._store(request, spec, project_id, encoding, hold)

    async def _store(self, request: Request, spec: SignalSpec, project_id: str, encoding: str, hold: Hold) -> Response:
        try:
            try:
                self.ingestor.check_room()  # refuse before reading, decompressing and parsing
            except WalFull:
                await discard_body(request, self.max_body_bytes)
                raise
            body = await read_held_body(request, self.max_body_bytes, hold, json=encoding == JSON)
            if encoding == JSON and len(body) > _JSON_INLINE_BYTES:
                # ~0.1 ms a span: off the event loop, which serves every other request meanwhile.
                message = await asyncio.to_thread(self._parse, body, spec, encoding)
            else:
                message = self._parse(body, spec, encoding)
            submission = self.ingestor.submit(spec, project_id, message, body if encoding == PROTOBUF else None, "http")
        except (DecodeError, RecursionError) as exc:  # validating decodes the spans parsing left encoded
            raise _malformed(spec, exc) from None
        except (WalFull, Busy) as exc:
            raise _retry_later(429, str(exc), "backpressure") from None
        except WalClosed as exc:
            raise _retry_later(503, str(exc), "unavailable") from None
        if submission.future is not None:
            try:
                await asyncio.wrap_future(submission.future)
            except WalWriteFailed as exc:
                self.ingestor.settled(submission, exc)
                raise _retry_later(503, str(exc), "wal_write_failed") from None
            self.ingestor.settled(submission, None)
        if encoding == PROTOBUF:
            return Response(submission.response.SerializeToString(), media_type=PROTOBUF)
        return Response(otlp_json.render(submission.response), media_type=JSON)

    @staticmethod
    def _parse(body: bytes, spec: SignalSpec, encoding: str) -> Any:
        if encoding == JSON:
            try:
                return otlp_json.parse(body, spec.request_type)
            except otlp_json.JsonDecodeError as exc:
                raise HttpError(400, str(exc)) from None
        try:
            return spec.parse(body)
        except (DecodeError, RecursionError) as exc:
            raise _malformed(spec, exc) from None


def _malformed(spec: SignalSpec, error: Exception) -> HttpError:
    return HttpError(400, f"malformed protobuf {spec.request_type.__name__}: {error}")


def _endpoint_for(spec: SignalSpec) -> Any:
    async def export(request: Request) -> Response:
        handler: OtlpHttpHandler = request.app.state.otlp
        return await handler.handle(request, spec)

    return export


# Made once for every application, taking the handler from the application's state: FastAPI keeps
# the endpoints it has seen in a process-wide cache (4,096 of them), so endpoints made for each
# application would keep a replaced collector (a reload's) alive with everything it held.
_ENDPOINTS = {spec.name: _endpoint_for(spec) for spec in ROUTES.values()}


def add_otlp_routes(app: FastAPI, handler: OtlpHttpHandler) -> None:
    """Register the OTLP export paths (POST only; other methods get 405)."""
    app.state.otlp = handler
    for path, spec in ROUTES.items():
        app.add_api_route(path, _ENDPOINTS[spec.name], methods=["POST"], include_in_schema=False)
