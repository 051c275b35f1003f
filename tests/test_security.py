"""Security: credentials on every route, no secret in logs or answers, constant-time checks, size limits.

Routes are enumerated from the running application (``app.routes``), never from a hand list, so a
route added later is covered (or fails :func:`test_every_route_is_classified`) without editing here.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

import collector.auth
from collector.auth import Authenticator, AuthError
from collector.config import ConfigError, parse_config
from collector.server import Server
from tests.conftest import PK, ROOT, SK, config_dict, make_config, wait_until
from tests.otlp_helpers import basic_auth, make_span, trace_request

# Reachable without credentials, and why: liveness, and the API's documentation (the schema holds
# no data, keys or configuration; it is the same API Langfuse documents publicly).
PUBLIC = {
    ("GET", "/api/public/health"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/openapi.json"),
}
OTHER_PK, OTHER_SK = "pk-lf-other", "sk-lf-other"
LIMIT = 64 * 1024
GRPC_METHODS = {
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": ExportTraceServiceResponse,
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export": ExportLogsServiceResponse,
}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


BAD_CREDENTIALS = {
    "none": None,
    "wrong secret": basic_auth(PK, "sk-lf-wrong"),
    "other project's secret": basic_auth(PK, OTHER_SK),
    "unknown public key": basic_auth("pk-lf-nobody", SK),
    "no colon": "Basic " + _b64(PK + SK),
    "empty secret": basic_auth(PK, ""),
    "not base64": "Basic !!!not-base64!!!",
    "not utf-8": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "empty basic": "Basic",
    "bearer token": f"Bearer {SK}",
    "secret as bearer": f"Bearer {_b64(f'{PK}:{SK}')}",
}


def app_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the application serves, including routes of included routers."""

    def walk(routes: list[Any]) -> Iterator[tuple[str, str]]:
        for route in routes:
            candidates = getattr(route, "effective_candidates", None)
            if candidates is not None:  # an included router (FastAPI ≥ 0.16x keeps them nested)
                yield from walk(candidates())
                continue
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    yield method, route.path

    return sorted(set(walk(app.routes)))


def _concrete(path: str) -> str:
    return path.replace("{", "").replace("}", "")  # /traces/{trace_id} -> /traces/trace_id


def _request(
    server: Server, method: str, path: str, authorization: str | None, client: httpx.Client | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"authorization": authorization} if authorization is not None else {}
    if path.startswith(("/v1/", "/api/public/otel/")):
        headers["content-type"] = "application/x-protobuf"
        kwargs.setdefault("content", trace_request([make_span()]).SerializeToString())
    elif method in ("POST", "DELETE"):
        kwargs.setdefault("json", {"traceIds": ["a"]} if method == "DELETE" else {"name": "x", "value": 1})
    url = f"http://127.0.0.1:{server.http_port}{_concrete(path)}"
    if client is not None:
        return client.request(method, url, headers=headers, timeout=30, **kwargs)
    return httpx.request(method, url, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def secure_server(start_server) -> Server:
    return start_server(
        parquet={"flush_interval": "100ms", "workers": 0},
        receivers={
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "127.0.0.1:0"},
                    "http": {"endpoint": "127.0.0.1:0", "max_request_body_size": LIMIT},
                }
            }
        },
    )


# ---------------------------------------------------------------- credentials on every route


def test_every_route_is_classified(secure_server):
    routes = app_routes(secure_server.http._app)
    assert len(routes) >= 30, routes
    assert set(routes) >= PUBLIC, "a public route disappeared; update PUBLIC and its reason"
    assert ("GET", "/metrics") in routes and ("POST", "/api/public/ingestion") in routes


@pytest.mark.slow  # ~300 requests, ~12 s
def test_every_route_except_health_and_docs_refuses_missing_or_wrong_credentials(secure_server):
    routes = [r for r in app_routes(secure_server.http._app) if r not in PUBLIC]
    checked = 0
    with httpx.Client() as client:
        for method, path in routes:
            for label, authorization in BAD_CREDENTIALS.items():
                response = _request(secure_server, method, path, authorization, client)
                assert response.status_code == 401, (method, path, label, response.status_code, response.text)
                checked += 1
    for method, path in PUBLIC:
        assert _request(secure_server, method, path, None).status_code == 200, path
    print(f"auth: {len(routes)} protected routes x {len(BAD_CREDENTIALS)} bad credentials = {checked} refusals")


def test_malformed_bodies_without_credentials_are_401_not_described(secure_server):
    """The body is validated before the credentials dependency runs; the caller without keys still gets 401."""
    base = f"http://127.0.0.1:{secure_server.http_port}"
    for method, path in (
        ("POST", "/api/public/scores"),
        ("POST", "/api/public/ingestion"),
        ("DELETE", "/api/public/traces"),
    ):
        for body in (b"{not json", b'{"traceIds": 5}'):
            response = httpx.request(method, base + path, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 401, (method, path, body, response.text)
            assert "traceIds" not in response.text and "json" not in response.text.lower()
            authorized = httpx.request(
                method, base + path, content=body, headers={"content-type": "application/json"}, auth=(PK, SK)
            )
            assert authorized.status_code == 400, (method, path, body, authorized.text)


def test_grpc_exports_refuse_missing_or_wrong_credentials(secure_server):
    body = trace_request([make_span()]).SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{secure_server.grpc_port}") as channel:
        for method, response_type in GRPC_METHODS.items():
            call = channel.unary_unary(method, request_serializer=None, response_deserializer=response_type.FromString)
            for label, authorization in BAD_CREDENTIALS.items():
                metadata = (("authorization", authorization),) if authorization is not None else ()
                with pytest.raises(grpc.RpcError) as caught:
                    call(body if "Trace" in method else b"", metadata=metadata, timeout=10)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, (method, label)


def test_metrics_takes_the_credentials_of_any_project(secure_server):
    url = f"http://127.0.0.1:{secure_server.http_port}/metrics"
    assert httpx.get(url).status_code == 401
    for keys in ((PK, SK), (OTHER_PK, OTHER_SK)):
        response = httpx.get(url, auth=keys)
        assert response.status_code == 200 and "spanfuse_" in response.text


def test_docs_and_schema_are_public_and_hold_no_keys_or_paths(secure_server):
    base = f"http://127.0.0.1:{secure_server.http_port}"
    for path in ("/docs", "/openapi.json"):
        text = httpx.get(base + path).text
        for secret in (PK, SK, OTHER_PK, OTHER_SK, str(secure_server.data_dir)):
            assert secret not in text, (path, secret)
    paths = httpx.get(base + "/openapi.json").json()["paths"]
    assert "/metrics" not in paths and "/v1/traces" not in paths


def test_anonymous_ingest_never_opens_reads_or_metrics(start_server):
    server = start_server(auth={"anonymous_project": "default"}, parquet={"workers": 0})
    base = f"http://127.0.0.1:{server.http_port}"
    body = trace_request([make_span(name="anonymous")]).SerializeToString()
    response = httpx.post(f"{base}/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
    assert response.status_code == 200
    for method, path in app_routes(server.http._app):
        if (method, path) in PUBLIC or path.startswith(("/v1/", "/api/public/otel/")):
            continue
        assert _request(server, method, path, None).status_code == 401, (method, path)


def test_routes_missing_from_the_isolation_tests_are_scoped_too(secure_server):
    """tests/api/test_isolation.py covers the data routes; these are the rest of app.routes."""
    base = f"http://127.0.0.1:{secure_server.http_port}"
    mine, theirs = (PK, SK), (OTHER_PK, OTHER_SK)
    assert httpx.get(f"{base}/api/public/projects", auth=mine).json()["data"][0]["id"] == "default"
    assert httpx.get(f"{base}/api/public/projects", auth=theirs).json()["data"][0]["id"] == "other"
    # Writes over every write route land in the writer's project only.
    trace_id = os.urandom(16)
    spans = [make_span(trace_id, name="secret-otlp")]
    for path in ("/v1/traces", "/api/public/otel/v1/traces"):
        response = httpx.post(
            base + path,
            content=trace_request(spans).SerializeToString(),
            headers={"content-type": "application/x-protobuf", "authorization": basic_auth(*mine)},
        )
        assert response.status_code == 200
    event = {
        "id": "e1",
        "timestamp": "2026-01-01T00:00:00Z",
        "type": "trace-create",
        "body": {"id": trace_id.hex(), "name": "intruder"},
    }
    assert httpx.post(f"{base}/api/public/ingestion", json={"batch": [event]}, auth=theirs).status_code == 207
    wait_until(lambda: secure_server.query.count("other", "traces") == 1)
    wait_until(lambda: secure_server.query.count("default", "observations") == 1)
    mine_trace = httpx.get(f"{base}/api/public/traces/{trace_id.hex()}", auth=mine).json()
    assert mine_trace["name"] != "intruder"
    theirs_trace = httpx.get(f"{base}/api/public/traces/{trace_id.hex()}", auth=theirs).json()
    assert theirs_trace["name"] == "intruder" and theirs_trace["observations"] == []
    # v1 metrics (the isolation tests cover /metrics/daily and /v2/metrics).
    query = {
        "view": "observations",
        "metrics": [{"measure": "count", "aggregation": "count"}],
        "dimensions": [],
        "filters": [],
        "fromTimestamp": "2000-01-01T00:00:00Z",
        "toTimestamp": "2100-01-01T00:00:00Z",
    }
    for keys, expected in ((mine, 1), (theirs, 0)):
        response = httpx.get(f"{base}/api/public/metrics", params={"query": json.dumps(query)}, auth=keys)
        assert response.status_code == 200, response.text
        assert sum(row.get("count_count") or 0 for row in response.json()["data"]) == expected, response.text
    covered_elsewhere = {
        "/api/public/traces", "/api/public/traces/{trace_id}", "/api/public/sessions",
        "/api/public/sessions/{session_id}", "/api/public/observations", "/api/public/observations/{observation_id}",
        "/api/public/v2/observations", "/api/public/metrics/daily", "/api/public/v2/metrics", "/api/public/scores",
        "/api/public/v2/scores", "/api/public/v2/scores/{score_id}", "/api/public/scores/{score_id}",
        "/api/public/v3/scores",
    }  # fmt: skip
    covered_here = {
        "/api/public/projects", "/v1/traces", "/api/public/otel/v1/traces", "/api/public/ingestion",
        "/api/public/metrics", "/metrics", "/v1/logs", "/api/public/otel/v1/logs",
    }  # fmt: skip
    data_routes = {path for _, path in app_routes(secure_server.http._app) if (_, path) not in PUBLIC}
    assert data_routes <= covered_elsewhere | covered_here, data_routes - covered_elsewhere - covered_here
    print(f"isolation: {len(data_routes)} routes covered")


# ---------------------------------------------------------------- secrets never leak


def test_secrets_never_appear_in_logs_or_error_answers(secure_server, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "spanfuse", "grpc"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    base = f"http://127.0.0.1:{secure_server.http_port}"
    full_headers = [basic_auth(PK, SK), basic_auth(OTHER_PK, OTHER_SK), basic_auth(PK, "sk-lf-wrong-secret")]
    answers: list[str] = []
    span = make_span(attributes={"leak": SK})
    protobuf = {"content-type": "application/x-protobuf"}
    json_type = {"content-type": "application/json"}
    for authorization in full_headers:
        auth = {"authorization": authorization}
        otlp = f"{base}/v1/traces"
        answers += [
            httpx.post(otlp, content=trace_request([span]).SerializeToString(), headers={**protobuf, **auth}).text,
            httpx.post(otlp, content=SK.encode() * 3, headers={**protobuf, **auth}).text,
            httpx.post(otlp, content=f'{{"x": "{SK}"'.encode(), headers={**json_type, **auth}).text,
            httpx.post(f"{base}/api/public/ingestion", content=f'{{"batch": "{SK}"', headers=auth).text,
            httpx.post(f"{base}/api/public/ingestion", json={"batch": [{"secret": SK}]}, headers=auth).text,
            httpx.post(f"{base}/api/public/scores", json={"name": SK, "value": SK, "traceId": 5}, headers=auth).text,
            httpx.request("DELETE", f"{base}/api/public/traces", json={"traceIds": SK}, headers=auth).text,
            httpx.get(f"{base}/api/public/traces", params={"page": 1}, headers=auth).text,
            httpx.get(f"{base}/metrics", headers=auth).text,
        ]  # fmt: skip
    with grpc.insecure_channel(f"127.0.0.1:{secure_server.grpc_port}") as channel:
        call = channel.unary_unary(next(iter(GRPC_METHODS)), request_serializer=None, response_deserializer=None)
        for authorization in full_headers:
            try:
                call(SK.encode() * 3, metadata=(("authorization", authorization),), timeout=10)
            except grpc.RpcError as error:
                answers.append(error.details() or "")
    secrets = [SK, OTHER_SK, "sk-lf-wrong-secret", *full_headers, *(h.split()[1] for h in full_headers)]
    records = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    output = "".join(capfd.readouterr())
    assert records, "nothing was logged at DEBUG: the check would prove nothing"
    for secret in secrets:
        assert not [r for r in records if secret in r], secret
        assert secret not in output, secret
        assert not [a for a in answers if secret in a], (secret, [a for a in answers if secret in a][:1])
    print(f"secrets: {len(answers)} answers and {len(records)} log records checked")


@pytest.mark.parametrize(
    "broken",
    [
        lambda doc: doc["projects"].append({"id": "dup", "name": "Dup", "public_key": PK, "secret_key": SK}),
        lambda doc: doc["projects"][0].update(secret_key=12345678901234567890, extra_secret=SK),
        lambda doc: doc["projects"][0].update(secret_key=[SK]),
        lambda doc: doc["projects"][0].update(public_key=""),
        lambda doc: doc["projects"][0].update(secret_key={"value": SK}),
        lambda doc: doc["projects"][0].pop("public_key"),
    ],
    ids=["duplicate public key", "wrong type and unknown key", "list secret", "empty public key", "mapping", "no pk"],
)
def test_config_errors_never_echo_a_secret_key(tmp_path, broken):
    doc = config_dict(tmp_path / "data")
    broken(doc)
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(doc), environ={})
    message = str(caught.value)
    assert SK not in message and "12345678901234567890" not in message, message


def test_yaml_syntax_error_near_a_secret_does_not_echo_it(tmp_path):
    text = yaml.safe_dump(config_dict(tmp_path / "data")).replace(f"secret_key: {SK}", f"secret_key: {SK}: [", 1)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ={})
    assert SK not in str(caught.value)


# ---------------------------------------------------------------- constant-time comparison


def test_known_and_unknown_public_keys_take_the_same_constant_time_path(tmp_path, monkeypatch):
    auth = Authenticator(make_config(tmp_path / "data"))
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(collector.auth.hmac, "compare_digest", compare_digest)
    assert auth.project_for(basic_auth(PK, SK)) == "default"
    for header in (
        basic_auth(PK, "wrong"),
        basic_auth("pk-unknown", SK),
        basic_auth("pk-unknown", "x" * 500),
        "Basic " + _b64(PK),
    ):
        with pytest.raises(AuthError) as caught:
            auth.project_for(header)
        assert str(caught.value) == collector.auth.INVALID_CREDENTIALS  # one message: nothing to tell apart
    # One comparison per attempt, always of two fixed-length digests, known public key or not.
    assert calls == [(32, 32)] * 5


def test_auth_uses_no_ordinary_comparison_of_secrets():
    source = (ROOT / "collector" / "auth.py").read_text()
    assert "hmac.compare_digest" in source
    assert "secret ==" not in source and "== secret" not in source and "secret_key ==" not in source


# ---------------------------------------------------------------- request size limits


def _body_routes(server: Server) -> list[tuple[str, str]]:
    return [(m, p) for m, p in app_routes(server.http._app) if m in ("POST", "PUT", "PATCH", "DELETE")]


def _raw_exchange(port: int, head: bytes, body_parts: list[bytes], timeout: float = 10) -> bytes:
    """Send ``head`` and ``body_parts`` without finishing the body; return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except OSError:
                break  # the server answered and closed: exactly what we want to see
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_declared_oversized_bodies_are_413_on_every_body_route_before_the_body_is_sent(secure_server):
    routes = _body_routes(secure_server)
    assert len(routes) >= 9, routes
    for method, path in routes:
        head = (
            f"{method} {_concrete(path)} HTTP/1.1\r\nhost: x\r\nauthorization: {basic_auth()}\r\n"
            f"content-type: application/x-protobuf\r\ncontent-length: {1 << 30}\r\n\r\n"
        ).encode()
        answer = _raw_exchange(secure_server.http_port, head, [])  # 1 GiB declared, nothing sent
        assert answer.startswith(b"HTTP/1.1 413"), (method, path, answer[:200])
    print(f"size limits: {len(routes)} body routes refuse a declared 1 GiB body")


def test_streamed_oversized_bodies_are_cut_off_at_the_limit_on_every_body_route(secure_server):
    chunk = b"x" * 16384
    part = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    for method, path in _body_routes(secure_server):
        head = (
            f"{method} {_concrete(path)} HTTP/1.1\r\nhost: x\r\nauthorization: {basic_auth()}\r\n"
            "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        ).encode()
        # Twice the limit, never terminated: only a server that stops reading at the limit answers.
        answer = _raw_exchange(secure_server.http_port, head, [part] * (2 * LIMIT // len(chunk)))
        if method == "DELETE" and "{" in path:  # takes no body: answered without reading it, never buffered
            assert answer.startswith(b"HTTP/1.1 "), (method, path, answer[:200])
            continue
        assert answer.startswith(b"HTTP/1.1 413"), (method, path, answer[:200])


def test_absurd_query_strings_and_headers_are_refused(secure_server):
    auth = f"authorization: {basic_auth()}\r\n"
    many = "".join(f"x-h{i}: {'c' * 100}\r\n" for i in range(2000))
    for target, extra in (
        (f"/api/public/traces?name={'a' * 200_000}", ""),
        ("/api/public/traces", f"x-junk: {'b' * 200_000}\r\n"),
        ("/api/public/traces", many),
    ):
        head = f"GET {target} HTTP/1.1\r\nhost: x\r\n{auth}{extra}\r\n".encode()
        answer = _raw_exchange(secure_server.http_port, head, [])
        # Refused with a 4xx, or the connection closed without an answer; never served.
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), (target[:60], answer[:200])


# ---------------------------------------------------------------- insecure start-up


def test_cli_refuses_to_serve_beyond_loopback_with_development_keys(tmp_path):
    doc = config_dict(tmp_path / "data")
    doc["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = "0.0.0.0:0"
    doc["projects"] = [{"id": "default", "name": "Default", "public_key": "pk-lf-local", "secret_key": "sk-lf-local"}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [sys.executable, "-m", "collector", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "development keys" in lines[0], done.stderr
    assert "sk-lf-local" not in done.stderr + done.stdout
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").rglob("*.wal"))
