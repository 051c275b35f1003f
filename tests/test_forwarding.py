"""Forwarding: a collector delivers what it received to other OTLP / Langfuse backends, from its WAL.

Two real Spanfuse instances are chained over real sockets (A forwards to B); B goes away and
comes back; every span reaches B exactly once as its REST API reports it. A tiny scripted HTTP
server stands in for downstreams that refuse or throttle.
"""

from __future__ import annotations

import gzip
import http.server
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import pyarrow.parquet as pq
import pytest
import yaml
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from collector.config import parse_config
from collector.server import Server
from exporters.forward.base import Backoff, Outcome, TlsOptions
from exporters.forward.otlp_grpc import OtlpGrpcSender
from exporters.forward.otlp_http import parse_retry_after
from storage.retired import live_paths
from tests.conftest import PK, ROOT, SK, config_dict, free_port, wait_until
from tests.otlp_helpers import basic_auth, logs_request, make_span, trace_request

OTHER_PK, OTHER_SK = "pk-lf-other", "sk-lf-other"
FAST_RETRY = {"initial_interval": "100ms", "max_interval": "1s"}


# ---------------------------------------------------------------------------------------- helpers
class Cluster:
    """In-process servers built from ``config_dict`` with extra exporters; all stopped at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[Server] = []

    def start(
        self,
        name: str,
        *,
        ports: tuple[int, int] | None = None,
        forwarders: dict[str, Any] | None = None,
        traces: list[str] | None = None,
        logs: list[str] | None = None,
        wal: dict[str, Any] | None = None,
    ) -> Server:
        doc = config_dict(self.tmp_path / name, parquet={"workers": 0})
        if ports is not None:
            protocols = doc["receivers"]["otlp"]["protocols"]
            protocols["grpc"]["endpoint"] = f"127.0.0.1:{ports[0]}"
            protocols["http"]["endpoint"] = f"127.0.0.1:{ports[1]}"
        doc["exporters"].update(forwarders or {})
        pipelines = doc["service"]["pipelines"]
        pipelines["traces"]["exporters"] += traces if traces is not None else list(forwarders or {})
        pipelines["logs"]["exporters"] += logs or []
        if wal:
            doc["storage"] = {"wal": wal}
        server = Server(parse_config(yaml.safe_dump(doc), environ={}))
        server.start()
        self.running.append(server)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        self.running.remove(server)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)
    yield made
    for server in reversed(made.running):
        server.stop()


def post_spans(server: Server, count: int, auth: str | None = None, name: str = "span") -> list[str]:
    """One OTLP/HTTP protobuf request of ``count`` new spans; returns their ids (hex)."""
    spans = [make_span(name=name) for _ in range(count)]
    response = httpx.post(
        f"http://127.0.0.1:{server.http_port}/v1/traces",
        content=trace_request(spans).SerializeToString(),
        headers={"content-type": "application/x-protobuf", "authorization": auth or basic_auth()},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return [span.span_id.hex() for span in spans]


def observation_ids(server: Server, public_key: str = PK, secret_key: str = SK) -> list[str]:
    """Every observation id the REST API lists for the project of these keys (duplicates kept)."""
    ids: list[str] = []
    for page in range(1, 50):
        response = httpx.get(
            f"http://127.0.0.1:{server.http_port}/api/public/observations",
            params={"page": page, "limit": 100},
            auth=(public_key, secret_key),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        ids += [row["id"] for row in data]
        if len(data) < 100:
            return ids
    raise AssertionError("more pages than expected")


def metric(server: Server, name: str, **labels: str) -> float:
    """The value of one series in ``/metrics`` (0 when absent)."""
    text = httpx.get(f"http://127.0.0.1:{server.http_port}/metrics", auth=(PK, SK), timeout=10).text
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def forwarder(server: Server, exporter: str) -> Any:
    return next(f for f in server.forwarders if f.exporter == exporter)


def downstream_settings(kind: str, b_ports: tuple[int, int]) -> dict[str, Any]:
    grpc_port, http_port = b_ports
    if kind == "otlp":
        endpoint: dict[str, Any] = {"endpoint": f"127.0.0.1:{grpc_port}", "tls": {"insecure": True}}
    else:
        endpoint = {"endpoint": f"http://127.0.0.1:{http_port}"}
    return {**endpoint, "headers": {"authorization": basic_auth()}, "retry_on_failure": FAST_RETRY, "timeout": "5s"}


# ------------------------------------------------------------------------------ chained instances
@pytest.mark.parametrize("kind", ["otlp", "otlphttp"])
def test_chained_spanfuse_gets_every_span_exactly_once_across_a_downstream_restart(cluster, kind):
    b_ports = (free_port(), free_port())
    b = cluster.start("b", ports=b_ports)
    exporter = f"{kind}/b"
    a = cluster.start("a", forwarders={exporter: downstream_settings(kind, b_ports)}, logs=[exporter])

    sent = [span_id for _ in range(3) for span_id in post_spans(a, 20)]
    wait_until(lambda: len(observation_ids(b)) == 60, timeout=60)

    cluster.stop(b)  # the downstream goes away; A keeps accepting and keeps its own copy current
    sent += [span_id for _ in range(3) for span_id in post_spans(a, 20)]
    response = httpx.post(
        f"http://127.0.0.1:{a.http_port}/v1/logs",
        content=_one_log_request("forwarded log").SerializeToString(),
        headers={"content-type": "application/x-protobuf", "authorization": basic_auth()},
        timeout=10,
    )
    assert response.status_code == 200
    wait_until(lambda: len(observation_ids(a)) == 120, timeout=60)  # A's Parquet pipeline is not held up
    wait_until(lambda: metric(a, "spanfuse_forwarder_retries_total", exporter=exporter) >= 5, timeout=60)
    assert metric(a, "spanfuse_forwarder_lag_bytes", exporter=exporter) > 0

    b = cluster.start("b", ports=b_ports)  # same ports, same data directory
    restarted = time.monotonic()
    wait_until(lambda: len(observation_ids(b)) >= 120, timeout=60)
    caught_up = time.monotonic() - restarted
    wait_until(lambda: forwarder(a, exporter).lag_bytes() == 0, timeout=60)

    ids = observation_ids(b)
    assert len(ids) == len(set(ids)), "a span reads twice"
    assert sorted(ids) == sorted(sent), "spans missing or unexpected"
    assert b.query.count("default", "logs") == 1
    assert metric(a, "spanfuse_forwarder_sent_items_total", exporter=exporter, signal="traces") >= 120
    assert metric(a, "spanfuse_forwarder_rejected_items_total", exporter=exporter) == 0
    stored = pq.read_table(live_paths(b.data_dir / "tables" / "observations")).num_rows
    print(f"\n{kind}: B caught up {caught_up:.2f}s after its restart; rows stored {stored} for 120 spans")


def _one_log_request(body: str) -> Any:
    record = LogRecord(time_unix_nano=1_764_000_000_000_000_000, trace_id=os.urandom(16), span_id=os.urandom(8))
    record.body.string_value = body
    return logs_request([record])


# ------------------------------------------------------------------------------------- langfuse
def test_langfuse_exporter_posts_to_the_otel_path_with_basic_auth_and_bad_keys_are_rejected(cluster):
    b = cluster.start("b")  # B plays the Langfuse server; its "other" project owns these keys
    endpoint = f"http://127.0.0.1:{b.http_port}"
    a = cluster.start(
        "a",
        forwarders={
            "langfuse/cloud": {"endpoint": endpoint, "public_key": OTHER_PK, "secret_key": OTHER_SK},
            "langfuse/wrong": {
                "endpoint": endpoint + "/",  # a trailing slash must not double the path's slash
                "public_key": OTHER_PK,
                "secret_key": "sk-wrong",
                "retry_on_failure": FAST_RETRY,
            },
        },
    )
    sent = post_spans(a, 5) + post_spans(a, 5)

    wait_until(lambda: sorted(observation_ids(b, OTHER_PK, OTHER_SK)) == sorted(sent), timeout=60)
    assert observation_ids(b) == []  # routed by the keys, not by the project the spans came from
    wait_until(lambda: forwarder(a, "langfuse/wrong").lag_bytes() == 0, timeout=60)  # skipped, not stuck
    assert metric(a, "spanfuse_forwarder_rejected_items_total", exporter="langfuse/wrong", reason="http_401") == 10
    assert metric(a, "spanfuse_forwarder_retries_total", exporter="langfuse/wrong") == 0
    assert metric(a, "spanfuse_forwarder_sent_items_total", exporter="langfuse/cloud", signal="traces") == 10


# ---------------------------------------------------------------------------- project selection
def test_only_the_selected_projects_are_forwarded(cluster):
    b = cluster.start("b")
    settings = {"endpoint": f"http://127.0.0.1:{b.http_port}", "headers": {"authorization": basic_auth()}}
    a = cluster.start("a", forwarders={"otlphttp/b": {**settings, "projects": ["other"]}})

    skipped = post_spans(a, 4)  # project "default"
    wanted = post_spans(a, 3, auth=basic_auth(OTHER_PK, OTHER_SK))
    skipped += post_spans(a, 4)

    wait_until(lambda: forwarder(a, "otlphttp/b").lag_bytes() == 0, timeout=60)
    wait_until(lambda: sorted(observation_ids(b)) == sorted(wanted), timeout=60)
    assert not set(skipped) & set(observation_ids(b))
    assert metric(a, "spanfuse_forwarder_sent_records_total", exporter="otlphttp/b") == 1


# ------------------------------------------------------------------- refusals and backpressure
class ScriptedDownstream:
    """An OTLP/HTTP endpoint whose answer is decided per request by ``respond(span names)``."""

    def __init__(
        self, respond: Callable[[list[str]], tuple[int, dict[str, str]]], tls: tuple[Path, Path] | None = None
    ) -> None:
        self.requests: list[tuple[float, list[str], int]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                names = [s.name for rs in _parse_traces(body).resource_spans for ss in rs.scope_spans for s in ss.spans]
                status, headers = respond(names)
                outer.requests.append((time.monotonic(), names, status))
                self.send_response(status)
                for key, value in {"content-length": "0", **headers}.items():
                    self.send_header(key, value)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _parse_traces(body: bytes) -> Any:
    return ExportTraceServiceRequest.FromString(body)


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedDownstream]]:
    made: list[ScriptedDownstream] = []

    def make(respond: Callable[[list[str]], tuple[int, dict[str, str]]], **kwargs: Any) -> ScriptedDownstream:
        made.append(ScriptedDownstream(respond, **kwargs))
        return made[-1]

    yield make
    for downstream in made:
        downstream.close()


def test_permanent_400_is_skipped_and_counted_and_503_with_retry_after_is_retried(cluster, scripted):
    throttled = {"first": True}
    arrived, release = threading.Event(), threading.Event()

    def respond(names: list[str]) -> tuple[int, dict[str, str]]:
        if "slow" in names:
            arrived.set()
            release.wait(5)  # holds the forwarder while more records queue up behind it
            return 200, {}
        if "poison" in names:
            return 400, {}
        if "throttled" in names and throttled.pop("first", False):
            return 503, {"retry-after": "1"}
        return 200, {}

    fake = scripted(respond)
    a = cluster.start("a", forwarders={"otlphttp/fake": {"endpoint": fake.url, "retry_on_failure": FAST_RETRY}})
    exporter = "otlphttp/fake"

    post_spans(a, 1, name="slow")
    wait_until(arrived.is_set, timeout=60)
    post_spans(a, 2, name="good")
    post_spans(a, 3, name="poison")
    post_spans(a, 2, name="good")
    release.set()
    # The three records queued behind "slow" go as one request; its 400 is narrowed down to "poison".
    wait_until(lambda: forwarder(a, exporter).lag_bytes() == 0, timeout=60)
    statuses = [(sorted(set(names)), status) for _, names, status in fake.requests]
    assert statuses == [
        (["slow"], 200),
        (["good", "poison"], 400),
        (["good"], 200),
        (["poison"], 400),
        (["good"], 200),
    ]
    assert metric(a, "spanfuse_forwarder_rejected_items_total", exporter=exporter, reason="http_400") == 3
    assert metric(a, "spanfuse_forwarder_sent_items_total", exporter=exporter, signal="traces") == 5

    post_spans(a, 1, name="throttled")
    wait_until(lambda: forwarder(a, exporter).lag_bytes() == 0, timeout=60)
    attempts = [(when, status) for when, names, status in fake.requests if names == ["throttled"]]
    assert [status for _, status in attempts] == [503, 200]
    assert attempts[1][0] - attempts[0][0] >= 0.95  # Retry-After: 1 honoured over the 100 ms backoff
    assert metric(a, "spanfuse_forwarder_retries_total", exporter=exporter, reason="http_503") == 1
    assert metric(a, "spanfuse_forwarder_sent_records_total", exporter=exporter) == 4  # slow, good, good, throttled


def test_unreachable_downstream_neither_blocks_ingest_nor_delays_shutdown(cluster):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    settings = {"endpoint": dead, "retry_on_failure": {"initial_interval": "5s", "max_interval": "5s"}}
    a = cluster.start("a", forwarders={"otlphttp/dead": settings})
    sent = post_spans(a, 10)
    wait_until(lambda: sorted(observation_ids(a)) == sorted(sent), timeout=60)
    wait_until(lambda: metric(a, "spanfuse_forwarder_retries_total", exporter="otlphttp/dead") >= 1, timeout=60)

    started = time.monotonic()
    cluster.stop(a)  # in the middle of a 5 s backoff
    assert time.monotonic() - started < 4


def test_a_long_outage_ends_in_backpressure_and_drains_when_the_downstream_returns(cluster, scripted):
    down = threading.Event()
    down.set()
    fake = scripted(lambda names: (503, {}) if down.is_set() else (200, {}))
    a = cluster.start(
        "a",
        forwarders={"otlphttp/fake": {"endpoint": fake.url, "retry_on_failure": FAST_RETRY}},
        wal={"segment_size_mib": 1, "max_backlog_mib": 1},
    )

    def post() -> int:
        request = trace_request([make_span(name="x" * 100_000)]).SerializeToString()
        headers = {"content-type": "application/x-protobuf", "authorization": basic_auth()}
        return httpx.post(f"http://127.0.0.1:{a.http_port}/v1/traces", content=request, headers=headers).status_code

    statuses = [post() for _ in range(15)]  # 1.5 MB offered against a 1 MiB backlog bound
    assert statuses[0] == 200 and statuses[-1] == 429  # the outage pins the WAL: backpressure, not memory
    accepted = statuses.count(200)

    def delivered() -> float:
        return metric(a, "spanfuse_forwarder_sent_items_total", exporter="otlphttp/fake", signal="traces")

    down.clear()
    wait_until(lambda: delivered() == accepted, timeout=60)  # everything acknowledged, nothing lost
    assert post() == 200  # room again
    wait_until(lambda: delivered() == accepted + 1, timeout=60)


def test_a_forwarder_removed_from_the_config_stops_pinning_wal_segments(cluster, caplog):
    dead = f"http://127.0.0.1:{free_port()}"
    wal = {"segment_size_mib": 1, "max_backlog_mib": 64}
    a = cluster.start("a", forwarders={"otlphttp/gone": {"endpoint": dead}}, wal=wal)
    for _ in range(6):  # ~1.8 MiB: more than one segment, all held back by the unreachable forwarder
        post_spans(a, 3, name="x" * 100_000)
    wait_until(lambda: a.wal.committed()["parquet"] == a.wal.durable_offset, timeout=60)
    assert a.wal.size_bytes() > 1024 * 1024
    cluster.stop(a)
    assert (a.data_dir / "wal" / "consumers" / "forward-otlphttp-gone.offset").exists()

    a = cluster.start("a", wal=wal)
    assert "forward-otlphttp-gone" not in a.wal.committed()
    assert not (a.data_dir / "wal" / "consumers" / "forward-otlphttp-gone.offset").exists()
    assert a.wal.size_bytes() < 1024 * 1024  # the segments only it was holding are gone
    assert "no longer configured consumer=forward-otlphttp-gone" in caplog.text


def test_a_new_forwarder_starts_at_the_end_of_the_wal(cluster):
    b = cluster.start("b")
    settings = {"endpoint": f"http://127.0.0.1:{b.http_port}", "headers": {"authorization": basic_auth()}}
    a = cluster.start("a")
    before = post_spans(a, 3)
    wait_until(lambda: len(observation_ids(a)) == 3, timeout=60)
    cluster.stop(a)
    a = cluster.start("a", forwarders={"otlphttp/b": settings})
    after = post_spans(a, 2)
    wait_until(lambda: sorted(observation_ids(b)) == sorted(after), timeout=60)
    assert not set(before) & set(observation_ids(b))


# ------------------------------------------------------------------------------------------- TLS
@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key), made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_tls_downstreams_are_verified_against_ca_file(cluster, scripted, certificate):
    cert, key = certificate
    fake = scripted(lambda names: (200, {}), tls=(cert, key))
    a = cluster.start(
        "a",
        forwarders={
            "otlphttp/verified": {"endpoint": fake.url, "tls": {"ca_file": str(cert)}},
            "otlphttp/skipping": {"endpoint": fake.url, "tls": {"insecure_skip_verify": True}},
            "otlphttp/untrusted": {"endpoint": fake.url, "retry_on_failure": FAST_RETRY},
        },
    )
    post_spans(a, 2)
    wait_until(lambda: forwarder(a, "otlphttp/verified").lag_bytes() == 0, timeout=60)
    wait_until(lambda: forwarder(a, "otlphttp/skipping").lag_bytes() == 0, timeout=60)
    # An unknown issuer is not the data's fault: retried (and visible as lag), never dropped.
    wait_until(lambda: metric(a, "spanfuse_forwarder_retries_total", exporter="otlphttp/untrusted") >= 1, timeout=60)
    assert forwarder(a, "otlphttp/untrusted").lag_bytes() > 0
    assert len(fake.requests) == 2

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
    service = "opentelemetry.proto.collector.trace.v1.TraceService"
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    sender = OtlpGrpcSender(f"127.0.0.1:{port}", tls=TlsOptions(ca_file=str(cert)), timeout=5)
    try:
        result = sender.send("traces", trace_request([make_span()]).SerializeToString())
    finally:
        sender.close()
        server.stop(0)
    assert result.outcome is Outcome.SENT


# ------------------------------------------------------------------------------------ unit parts
def test_grpc_sender_classifies_statuses_as_the_otlp_specification_says():

    seen: list[tuple[str, str | None]] = []

    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        names = [s.name for rs in _parse_traces(request).resource_spans for ss in rs.scope_spans for s in ss.spans]
        seen.append((names[0], dict(context.invocation_metadata()).get("authorization")))
        if names[0] == "busy":
            retry = RetryInfo(retry_delay=Duration(seconds=2)).SerializeToString()
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", retry),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "backpressure")
        if names[0] == "too-big":
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "message larger than max")
        if names[0] == "bad":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed")
        if names[0] == "down":
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        response = ExportTraceServiceResponse()
        response.partial_success.rejected_spans = 1
        response.partial_success.error_message = "one span dropped"
        return response.SerializeToString()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(export, request_deserializer=None, response_serializer=None)
    service = "opentelemetry.proto.collector.trace.v1.TraceService"
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sender = OtlpGrpcSender(f"127.0.0.1:{port}", plaintext=True, headers={"Authorization": "Basic x"}, timeout=5)
    try:

        def send(name: str) -> Any:
            return sender.send("traces", trace_request([make_span(name=name)]).SerializeToString())

        busy, big, bad, down, ok = (send(n) for n in ("busy", "too-big", "bad", "down", "ok"))
    finally:
        sender.close()
        server.stop(0)
    assert (busy.outcome, busy.reason, busy.retry_after) == (Outcome.RETRY, "grpc_resource_exhausted", 2.0)
    assert (big.outcome, big.payload_problem) == (Outcome.REJECTED, True)  # no RetryInfo: too large, not busy
    assert (bad.outcome, bad.reason, bad.payload_problem) == (Outcome.REJECTED, "grpc_invalid_argument", True)
    assert (down.outcome, down.reason) == (Outcome.RETRY, "grpc_unavailable")
    assert (ok.outcome, ok.rejected_items, ok.message) == (Outcome.SENT, 1, "one span dropped")
    assert all(auth == "Basic x" for _, auth in seen)  # header names are lower-cased for gRPC


def test_senders_package_keeps_grpc_out_of_the_client_side():
    # exporters/__init__ must not pull the forwarders in; the HTTP sender itself needs no grpcio.
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("grpc", "fastapi", "duckdb", "pyarrow", "pydantic", "yaml"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import exporters
assert "exporters.forward" not in sys.modules
import exporters.forward.otlp_http
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.stdout.strip() == "ok", result.stderr


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap_and_honours_retry_after():
    backoff = Backoff(0.1, 1.0, rand=lambda: 1.0)
    assert [round(backoff.next_delay(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    low = Backoff(0.1, 1.0, rand=lambda: 0.0)
    assert [round(low.next_delay(), 3) for _ in range(3)] == [0.05, 0.1, 0.2]
    assert backoff.next_delay(retry_after=3.0) == pytest.approx(3.3)
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_retry_after_takes_seconds_or_an_http_date():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
