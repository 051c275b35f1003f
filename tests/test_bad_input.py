"""Bad input gets a clear answer and changes nothing; partly bad input is partly accepted."""

from __future__ import annotations

import gzip
import json
import os
import zlib

import grpc
import httpx
import pytest
import zstandard
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.conftest import wait_until
from tests.otlp_helpers import basic_auth, kv, make_span, trace_request

LIMIT = 64 * 1024
PROTOBUF = {"content-type": "application/x-protobuf", "authorization": basic_auth()}
JSON = {"content-type": "application/json", "authorization": basic_auth()}


@pytest.fixture
def limited(start_server):
    return start_server(
        receivers={
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "127.0.0.1:0", "max_recv_msg_size_mib": 1},
                    "http": {"endpoint": "127.0.0.1:0", "max_request_body_size": LIMIT},
                }
            }
        }
    )


def _valid_body() -> bytes:
    return trace_request([make_span()]).SerializeToString()


BAD_HTTP = [
    # (case, method, path, headers, body, status, message fragment)
    ("garbage protobuf", "POST", "/v1/traces", PROTOBUF, b"\xff\xff\xff\xff", 400, "malformed protobuf"),
    ("truncated protobuf", "POST", "/v1/traces", PROTOBUF, _valid_body()[:-7], 400, "malformed protobuf"),
    ("garbage json", "POST", "/v1/traces", JSON, b"{not json", 400, "malformed JSON"),
    ("json of the wrong shape", "POST", "/v1/traces", JSON, b'{"resourceSpans": "x"}', 400, "malformed OTLP/JSON"),
    ("json array", "POST", "/v1/logs", JSON, b"[1, 2]", 400, "must be a JSON object"),
    (
        "json wrong field type",
        "POST",
        "/v1/traces",
        JSON,
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 7}]}]}]}).encode(),
        400,
        "malformed OTLP/JSON",
    ),
    (
        "text/plain",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "content-type": "text/plain"},
        _valid_body(),
        415,
        "unsupported content type",
    ),
    (
        "no content type",
        "POST",
        "/v1/traces",
        {"authorization": basic_auth()},
        _valid_body(),
        415,
        "unsupported content type",
    ),
    (
        "brotli",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "content-encoding": "br"},
        _valid_body(),
        415,
        "unsupported content encoding",
    ),
    ("body over the limit", "POST", "/v1/traces", PROTOBUF, os.urandom(LIMIT + 1), 413, "exceeds the limit"),
    (
        "gzip bomb",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "content-encoding": "gzip"},
        gzip.compress(b"\0" * (50 * LIMIT)),
        413,
        "exceeds the limit",
    ),
    (
        "deflate bomb",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "content-encoding": "deflate"},
        zlib.compress(b"\0" * (50 * LIMIT)),
        413,
        "exceeds the limit",
    ),
    (
        "zstd bomb",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "content-encoding": "zstd"},
        zstandard.ZstdCompressor().compress(b"\0" * (50 * LIMIT)),
        413,
        "exceeds the limit",
    ),
    ("not zstd", "POST", "/v1/traces", {**PROTOBUF, "content-encoding": "zstd"}, b"plain bytes", 400, "not valid zstd"),
    (
        "truncated zstd",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "content-encoding": "zstd"},
        zstandard.ZstdCompressor().compress(_valid_body())[:-4],
        400,
        "truncated zstd",
    ),
    ("not gzip", "POST", "/v1/traces", {**PROTOBUF, "content-encoding": "gzip"}, b"plain bytes", 400, "not valid gzip"),
    (
        "truncated gzip",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "content-encoding": "gzip"},
        gzip.compress(_valid_body())[:-12],
        400,
        "truncated gzip",
    ),
    (
        "wrong secret",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "authorization": basic_auth(secret_key="nope")},
        _valid_body(),
        401,
        "Invalid credentials",
    ),
    (
        "unknown public key",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "authorization": basic_auth("pk-x", "sk-lf-test")},
        _valid_body(),
        401,
        "Invalid credentials",
    ),
    (
        "other project's secret",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "authorization": basic_auth(secret_key="sk-lf-other")},
        _valid_body(),
        401,
        "Invalid credentials",
    ),
    (
        "bearer token",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "authorization": "Bearer pk-lf-test"},
        _valid_body(),
        401,
        "Invalid credentials",
    ),
    (
        "broken basic",
        "POST",
        "/v1/traces",
        {**PROTOBUF, "authorization": "Basic %%%"},
        _valid_body(),
        401,
        "Invalid credentials",
    ),
    (
        "no credentials",
        "POST",
        "/v1/traces",
        {"content-type": "application/x-protobuf"},
        _valid_body(),
        401,
        "Missing credentials",
    ),
    ("GET on an export path", "GET", "/v1/traces", PROTOBUF, b"", 405, "Method Not Allowed"),
    (
        "PUT on the Langfuse path",
        "PUT",
        "/api/public/otel/v1/traces",
        PROTOBUF,
        _valid_body(),
        405,
        "Method Not Allowed",
    ),
]


def _error_message(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/x-protobuf"):
        return status_pb2.Status.FromString(response.content).message
    if kind.startswith("application/json"):
        body = response.json()
        return body.get("message") or body.get("detail", "")
    return response.text


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "fragment"),
    [case[1:] for case in BAD_HTTP],
    ids=[case[0] for case in BAD_HTTP],
)
def test_bad_http_request_is_refused_and_changes_nothing(limited, method, path, headers, body, status, fragment):
    before = limited.wal.durable_offset
    response = httpx.request(method, f"http://127.0.0.1:{limited.http_port}{path}", headers=headers, content=body)
    assert response.status_code == status
    assert fragment in _error_message(response)
    if status in (400, 413, 415, 401) and headers.get("content-type") == "application/x-protobuf":
        assert response.headers["content-type"] == "application/x-protobuf"
    assert limited.wal.durable_offset == before
    # The server is still healthy afterwards.
    ok = httpx.post(f"http://127.0.0.1:{limited.http_port}/v1/traces", headers=PROTOBUF, content=_valid_body())
    assert ok.status_code == 200


def _zstd_frames(body: bytes) -> bytes:
    """``body`` as two zstd frames, one after the other, as a streaming compressor may send it."""
    middle = len(body) // 2
    return b"".join(zstandard.ZstdCompressor().compress(part) for part in (body[:middle], body[middle:]))


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("zstd", zstandard.ZstdCompressor().compress),
        ("zstd", _zstd_frames),
    ],
    ids=["gzip", "deflate", "zstd", "zstd in two frames"],
)
def test_compressed_bodies_are_stored(limited, encoding, compress):
    # What an OpenTelemetry Collector upstream may send (its otlphttp exporter's `compression`).
    spans = [make_span(name=f"{encoding}-{index}") for index in range(20)]
    response = httpx.post(
        f"http://127.0.0.1:{limited.http_port}/v1/traces",
        content=compress(trace_request(spans).SerializeToString()),
        headers={**PROTOBUF, "content-encoding": encoding},
    )
    assert response.status_code == 200, response.text
    wait_until(lambda: len(limited.query.observations("default")) == 20)
    assert {o["name"] for o in limited.query.observations("default")} == {f"{encoding}-{i}" for i in range(20)}


def test_json_errors_are_answered_in_json(limited):
    response = httpx.post(f"http://127.0.0.1:{limited.http_port}/v1/traces", headers=JSON, content=b"{")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == 3


def test_invalid_span_ids_are_rejected_individually(limited):
    good = make_span(name="good")
    spans = [
        good,
        make_span(name="short trace id", trace_id=b"\x01" * 8),
        make_span(name="zero span id", span_id=bytes(8)),
        make_span(name="bad parent", parent=b"\x01\x02"),
    ]
    response = httpx.post(
        f"http://127.0.0.1:{limited.http_port}/v1/traces",
        headers=PROTOBUF,
        content=trace_request(spans).SerializeToString(),
    )
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 3
    assert "invalid" in answer.partial_success.error_message
    rows = wait_until(lambda: limited.query.observations("default"))
    assert [r["name"] for r in rows] == ["good"]


def test_invalid_hex_id_in_json_rejects_only_that_span(limited):
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "kept",
                                "startTimeUnixNano": "1764000000000000000",
                                "endTimeUnixNano": 1764000000001000000,
                            },
                            {
                                "traceId": "not-hex",
                                "spanId": "eee19b7ec3c1b175",
                                "name": "dropped",
                                "startTimeUnixNano": "1764000000000000000",
                            },
                        ]
                    }
                ]
            }
        ]
    }
    response = httpx.post(f"http://127.0.0.1:{limited.http_port}/v1/traces", headers=JSON, json=body)
    assert response.status_code == 200
    assert response.json() == {
        "partialSuccess": {"rejectedSpans": "1", "errorMessage": "1 spans rejected: invalid trace id"}
    }
    rows = wait_until(lambda: limited.query.observations("default"))
    assert [(r["name"], r["trace_id"], r["id"]) for r in rows] == [
        ("kept", "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    ]


def test_request_where_every_span_is_invalid_stores_nothing(limited):
    before = limited.wal.durable_offset
    response = httpx.post(
        f"http://127.0.0.1:{limited.http_port}/v1/traces",
        headers=PROTOBUF,
        content=trace_request([make_span(trace_id=b"")]).SerializeToString(),
    )
    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 1
    assert limited.wal.durable_offset == before


def test_empty_request_is_accepted_and_stores_nothing(limited):
    before = limited.wal.durable_offset
    response = httpx.post(f"http://127.0.0.1:{limited.http_port}/v1/traces", headers=JSON, content=b"{}")
    assert response.status_code == 200
    assert response.json() == {}
    assert limited.wal.durable_offset == before


def _grpc_export(server, body: bytes, metadata=None):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        return call(body, metadata=metadata if metadata is not None else (("authorization", basic_auth()),), timeout=10)


BAD_GRPC = [
    ("garbage", b"\xff\xff\xff\xff", None, grpc.StatusCode.INVALID_ARGUMENT, "malformed protobuf"),
    (
        "too large",
        trace_request([make_span(attributes={"big": "x" * (2 * 1024 * 1024)})]).SerializeToString(),
        None,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "larger than max",
    ),
    (
        "wrong secret",
        _valid_body(),
        (("authorization", basic_auth(secret_key="nope")),),
        grpc.StatusCode.UNAUTHENTICATED,
        "Invalid credentials",
    ),
    ("no credentials", _valid_body(), (), grpc.StatusCode.UNAUTHENTICATED, "Missing credentials"),
]


@pytest.mark.parametrize(
    ("body", "metadata", "code", "fragment"), [c[1:] for c in BAD_GRPC], ids=[c[0] for c in BAD_GRPC]
)
def test_bad_grpc_request_is_refused_and_changes_nothing(limited, body, metadata, code, fragment):
    before = limited.wal.durable_offset
    with pytest.raises(grpc.RpcError) as raised:
        _grpc_export(limited, body, metadata)
    assert raised.value.code() == code
    assert fragment in raised.value.details()
    assert limited.wal.durable_offset == before
    assert _grpc_export(limited, _valid_body()).partial_success.rejected_spans == 0


def test_grpc_partial_success_for_invalid_ids(limited):
    answer = _grpc_export(limited, trace_request([make_span(), make_span(span_id=b"\x01")]).SerializeToString())
    assert answer.partial_success.rejected_spans == 1
    wait_until(lambda: len(limited.query.observations("default")) == 1)


def test_anonymous_project_takes_requests_without_credentials(start_server):
    server = start_server(auth={"anonymous_project": "other"})
    body = trace_request([make_span(name="anon")]).SerializeToString()
    response = httpx.post(
        f"http://127.0.0.1:{server.http_port}/v1/traces",
        headers={"content-type": "application/x-protobuf"},
        content=body,
    )
    assert response.status_code == 200
    rows = wait_until(lambda: server.query.observations("other"))
    assert [r["name"] for r in rows] == ["anon"]
    assert server.query.observations("default") == []
    # Wrong credentials are still refused, even with anonymous ingest on.
    bad = httpx.post(
        f"http://127.0.0.1:{server.http_port}/v1/traces",
        headers={"content-type": "application/x-protobuf", "authorization": basic_auth(secret_key="x")},
        content=body,
    )
    assert bad.status_code == 401


def test_each_key_writes_only_its_own_project(server):
    for public, secret, name in (("pk-lf-test", "sk-lf-test", "mine"), ("pk-lf-other", "sk-lf-other", "theirs")):
        response = httpx.post(
            f"http://127.0.0.1:{server.http_port}/v1/traces",
            headers={"content-type": "application/x-protobuf", "authorization": basic_auth(public, secret)},
            content=trace_request([make_span(name=name)]).SerializeToString(),
        )
        assert response.status_code == 200
    assert [r["name"] for r in wait_until(lambda: server.query.observations("default"))] == ["mine"]
    assert [r["name"] for r in wait_until(lambda: server.query.observations("other"))] == ["theirs"]


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_spans_repeating_a_huge_resource_past_the_bound_are_refused_and_the_rest_stored(start_server, transport):
    # Every stored span repeats its resource's attributes: a 0.6 MiB request (a 0.5 MiB resource
    # attribute on 2,000 spans) took the workers to 2.3 GB, and 15 MiB on 1,000 spans would need
    # 15 GiB; a worker killed for it failed the batch on every retry. Such spans are refused
    # through partial_success, and the other spans of the request are stored.
    server = start_server()
    request = trace_request([make_span(name="kept")])
    huge = request.resource_spans.add()
    huge.resource.attributes.append(kv("k8s.blob", "x" * (1 << 20)))
    huge.scope_spans.add().spans.extend(make_span(name=f"repeats-{i}") for i in range(100))  # ~100 MiB stored
    body = request.SerializeToString()
    if transport == "http":
        response = httpx.post(f"http://127.0.0.1:{server.http_port}/v1/traces", headers=PROTOBUF, content=body)
        assert response.status_code == 200
        answer = ExportTraceServiceResponse.FromString(response.content)
    else:
        answer = _grpc_export(server, body)
    assert answer.partial_success.rejected_spans == 100
    assert "repeated on each of 100 spans, exceed 64 MiB" in answer.partial_success.error_message
    rows = wait_until(lambda: server.query.observations("default"))
    assert [r["name"] for r in rows] == ["kept"]
