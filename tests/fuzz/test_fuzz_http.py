"""Hostile OTLP bodies over real sockets against a real in-process server (HTTP and gRPC).

Every answer is a 2xx (with ``partial_success`` when something was dropped) or a 4xx with a
message — never a 5xx; the server answers its health check after each; and at the end the
stored observations are exactly the valid spans sent in the run, nothing else.
"""

from __future__ import annotations

import gzip
import os
import random
import zlib
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import zstandard
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.server import Server
from tests.conftest import rss_growth_at_peak, wait_until
from tests.fuzz.campaign import count, examples
from tests.fuzz.test_fuzz_otlp import _INVALID_UTF8, INVALID_UTF8_MARKER, _deep_json, deep_wire_request
from tests.otlp_helpers import basic_auth, logs_request, make_span, trace_request

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACE_PATHS = ("/v1/traces", "/api/public/otel/v1/traces")
MIB = 1024 * 1024


class Run:
    """One campaign against one server: sends, checks each answer, remembers the valid spans sent."""

    def __init__(self, server: Server, campaign: str) -> None:
        self.server = server
        self.campaign = campaign
        self.base = f"http://127.0.0.1:{server.http_port}"
        self.client = httpx.Client(base_url=self.base, timeout=60)
        self.expected: set[str] = set()  # span ids (hex) of the valid spans sent

    def post(
        self,
        path: str,
        body: bytes,
        content_type: str | None = PROTOBUF,
        encoding: str | None = None,
        expect: int | tuple[int, ...] | None = None,
    ) -> httpx.Response:
        headers = {"authorization": basic_auth()}
        if content_type is not None:
            headers["content-type"] = content_type
        if encoding is not None:
            headers["content-encoding"] = encoding
        response = self.client.post(path, content=body, headers=headers)
        status = response.status_code
        count(self.campaign, f"http_{status}")
        assert status < 500, f"{path}: {status} {response.text[:300]}"
        assert 200 <= status < 300 or 400 <= status < 500
        if expect is not None:
            assert status in ((expect,) if isinstance(expect, int) else expect), (status, response.text[:300])
        if status >= 400:
            assert message_of(response).strip(), f"{status} without a message"
        self.healthy()
        return response

    def healthy(self) -> None:
        assert self.client.get("/api/public/health").status_code == 200

    def stored_ids(self) -> set[str]:
        ids: set[str] = set()
        page = 1
        while True:
            answer = self.client.get(
                "/api/public/observations", params={"limit": 100, "page": page}, headers={"authorization": basic_auth()}
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            ids.update(item["id"] for item in body["data"])
            if page >= body["meta"]["totalPages"]:
                return ids
            page += 1


def message_of(response: httpx.Response) -> str:
    """The error message of an OTLP or REST error answer, whatever its encoding."""
    kind = response.headers.get("content-type", "")
    if kind.startswith(PROTOBUF):
        return status_pb2.Status.FromString(response.content).message
    if kind.startswith(JSON):
        body = response.json()
        return str(body.get("message") or body.get("detail") or "")
    return response.text


@pytest.fixture
def run(server: Server) -> Iterator[Run]:
    campaign = Run(server, "http:hostile_bodies")
    yield campaign
    campaign.client.close()


def valid_span(run: Run, **kwargs: Any) -> Any:
    """A span the server must store; remembered as expected."""
    span = make_span(**kwargs)
    run.expected.add(span.span_id.hex())
    return span


def mutate(body: bytes, rng: random.Random) -> bytes:
    """A random corruption: bit flips, a cut, an insertion or a duplicated slice."""
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.4 and data:
            position = rng.randrange(len(data))
            data[position] ^= 1 << rng.randrange(8)
        elif choice < 0.6 and data:
            del data[rng.randrange(len(data)) :]
        elif choice < 0.8:
            position = rng.randrange(len(data) + 1)
            data[position:position] = rng.randbytes(rng.randint(1, 16))
        elif data:
            start = rng.randrange(len(data))
            data[start:start] = data[start : start + rng.randint(1, 64)]
    return bytes(data)


def _bomb(size: int, encoding: str) -> bytes:
    """``size`` zero bytes, gzip- (about a thousandth of ``size``) or zstd-compressed (a
    thirty-thousandth), built in chunks."""
    compressor: Any = (
        zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        if encoding == "gzip"
        else zstandard.ZstdCompressor().compressobj()
    )
    chunk = bytes(MIB)
    parts = [compressor.compress(chunk) for _ in range(size // MIB)]
    parts.append(compressor.flush())
    return b"".join(parts)


def test_hostile_http_bodies_never_5xx_and_store_only_valid_spans(run: Run) -> None:
    # Valid spans of the run, of several shapes, over both trace paths and encodings.
    good = trace_request([valid_span(run, name="good-1"), valid_span(run, name="good-2")]).SerializeToString()
    run.post("/v1/traces", good, expect=200)
    run.post("/api/public/otel/v1/traces", gzip.compress(good), encoding="gzip", expect=200)  # same spans again
    huge_value = trace_request([valid_span(run, name="ten-mb", attributes={"input.value": "v" * (10 * MIB)})])
    run.post("/v1/traces", huge_value.SerializeToString(), expect=200)
    wide = valid_span(run, name="wide")
    wide.attributes.extend(trace_request([make_span(attributes={f"k.{i}": i for i in range(100_000)})])
                           .resource_spans[0].scope_spans[0].spans[0].attributes)  # fmt: skip
    run.post("/api/public/otel/v1/traces", trace_request([wide]).SerializeToString(), expect=200)
    mixed = trace_request([valid_span(run, name="kept"), make_span(name="dropped", trace_id=b"\x01" * 3)])
    answer = run.post("/v1/traces", mixed.SerializeToString(), expect=200)
    assert ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans == 1

    # Refusals, each with the status the OTLP specification gives it.
    for path in TRACE_PATHS:
        run.post(path, os.urandom(512), expect=400)
        run.post(path, good[:-5], expect=400)
        run.post(path, os.urandom(512), content_type=JSON, expect=400)
        run.post(path, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\\ud800"}]}]}]}', JSON, expect=400)
        run.post(path, deep_wire_request(60, "array"), expect=400)
        run.post(path, deep_wire_request(5000, "kvlist"), expect=400)
        run.post(path, _deep_json(2000), content_type=JSON, expect=400)
        utf8 = trace_request([make_span(name=INVALID_UTF8_MARKER)]).SerializeToString()
        run.post(path, utf8.replace(INVALID_UTF8_MARKER.encode(), _INVALID_UTF8), expect=400)
        run.post(path, good, content_type="text/plain", expect=415)
        run.post(path, good, content_type=None, expect=415)
        run.post(path, good, content_type="application/x-protobuf; charset=\x7f", expect=200)
        run.post(path, good, encoding="br", expect=415)
        run.post(path, good, encoding="gzip", expect=400)
        run.post(path, gzip.compress(good)[:-10], encoding="gzip", expect=400)
        run.post(path, bytes(17 * MIB), expect=413)
    run.post("/v1/logs", os.urandom(256), expect=400)
    run.post("/api/public/otel/v1/logs", b"[]", content_type=JSON, expect=400)

    # Random corruptions of valid requests (traces and logs, both encodings): 2xx or 4xx, never 5xx.
    rng = random.Random(6)
    logs_body = logs_request([]).SerializeToString()
    for _ in range(examples(60)):
        path = rng.choice([*TRACE_PATHS, "/v1/logs"])
        if path == "/v1/logs":
            response = run.post(path, mutate(logs_body, rng))
            if response.status_code == 200:
                ExportLogsServiceResponse.FromString(response.content)
            continue
        spans = [make_span(name=f"mutant-{rng.random()}") for _ in range(rng.randint(1, 3))]
        body = trace_request(spans).SerializeToString()
        content_type = rng.choice([PROTOBUF, JSON])
        if content_type == JSON:
            from google.protobuf import json_format

            body = json_format.MessageToJson(trace_request(spans)).encode()
        mutated = mutate(body, rng)
        response = run.post(path, mutated, content_type=content_type)
        if response.status_code == 200 and mutated != body:
            # A corruption that still parses is stored as whatever it decodes to: those spans are
            # valid input now (ids of the right length), so they are expected too.
            run.expected.update(_accepted_ids(mutated, content_type))
        elif response.status_code == 200:
            run.expected.update(s.span_id.hex() for s in spans)

    # Nothing but the valid spans is stored.
    assert wait_until(lambda: run.stored_ids() == run.expected or None, timeout=30)


def _accepted_ids(body: bytes, content_type: str) -> set[str]:
    """Span ids the server keeps from ``body`` (the same decoding and validation it applies)."""
    from collector.ingest import TRACES, remove_invalid_items
    from collector.receivers.http import OtlpHttpHandler
    from semconv.encoded_span import span_data  # spans may be left encoded (collector.ingest.parse_traces)

    message = OtlpHttpHandler._parse(body, TRACES, content_type)
    remove_invalid_items(TRACES, message)
    return {span_data(s).span_id.hex() for rs in message.resource_spans for ss in rs.scope_spans for s in ss.spans}


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_compression_bomb_is_refused_cheaply(server: Server, encoding: str) -> None:
    bomb = _bomb(1024 * MIB, encoding)  # 1 GiB of zeros in about 1 MB (gzip) or 32 KB (zstd)
    campaign = Run(server, f"http:{encoding}_bomb")

    def send_everywhere() -> None:
        for path in (*TRACE_PATHS, "/v1/logs"):
            response = campaign.post(path, bomb, encoding=encoding, expect=413)
            assert "exceeds the limit" in message_of(response)

    growth = rss_growth_at_peak(send_everywhere)
    assert growth < 200 * MIB, f"RSS grew by {growth / MIB:.0f} MiB at its peak"
    campaign.client.close()


# ----------------------------------------------------------------------------- gRPC

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _grpc_call(server: Server, body: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(
        f"127.0.0.1:{server.grpc_port}", options=[("grpc.max_send_message_length", 64 * MIB)]
    ) as channel:
        export = channel.unary_unary(
            _EXPORT, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )
        try:
            export(body, metadata=(("authorization", basic_auth()),), timeout=30)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_hostile_grpc_payloads_are_invalid_argument_or_resource_exhausted(server: Server) -> None:
    good = trace_request([make_span()]).SerializeToString()
    utf8 = trace_request([make_span(name=INVALID_UTF8_MARKER)]).SerializeToString()
    cases = {
        "garbage": (os.urandom(1024), grpc.StatusCode.INVALID_ARGUMENT),
        "truncated": (good[:-5], grpc.StatusCode.INVALID_ARGUMENT),
        "invalid utf-8": (utf8.replace(INVALID_UTF8_MARKER.encode(), _INVALID_UTF8), grpc.StatusCode.INVALID_ARGUMENT),
        "deep nesting": (deep_wire_request(5000, "array"), grpc.StatusCode.INVALID_ARGUMENT),
        "over the size limit": (bytes(17 * MIB), grpc.StatusCode.RESOURCE_EXHAUSTED),
    }
    for name, (body, expected) in cases.items():
        code = _grpc_call(server, body)
        count("grpc:hostile_payloads", code.name)
        assert code == expected, name
    rng = random.Random(4317)
    for _ in range(examples(40)):
        code = _grpc_call(server, mutate(good, rng))
        count("grpc:hostile_payloads", code.name)
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), code
    assert _grpc_call(server, good) == grpc.StatusCode.OK
