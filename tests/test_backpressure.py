"""When consumers fall behind, receivers push back with retryable answers and memory stays flat."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import grpc
import httpx
import psutil
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.conftest import rss_growth_at_peak, wait_until
from tests.otlp_helpers import basic_auth, make_span, trace_request

HEADERS = {"content-type": "application/x-protobuf", "authorization": basic_auth()}


def _body(index: int, size: int = 64 * 1024) -> bytes:
    return trace_request([make_span(name=f"s{index}", attributes={"blob": "x" * size})]).SerializeToString()


def _holding_wal_writes(server) -> threading.Event:  # type: ignore[no-untyped-def]
    """Make every WAL write wait until the returned event is set (or 30 s pass)."""
    released = threading.Event()
    write = server.wal._write_durably

    def held(data: bytes) -> None:
        released.wait(timeout=30)
        write(data)

    server.wal._write_durably = held
    return released


def _admission(limit_mib: int) -> dict:
    protocols = {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}
    return {"otlp": {"protocols": protocols, "admission": {"request_limit_mib": limit_mib}}}


def test_full_backlog_answers_429_then_recovers_and_keeps_memory_flat(start_server):
    server = start_server(storage={"wal": {"max_backlog_mib": 1}})
    server.pipeline.pause()
    url = f"http://127.0.0.1:{server.http_port}/v1/traces"
    accepted = 0
    with httpx.Client() as client:
        for index in range(100):
            response = client.post(url, headers=HEADERS, content=_body(index))
            if response.status_code == 429:
                break
            assert response.status_code == 200
            accepted += 1
        assert response.status_code == 429, "the backlog bound was never reached"
        assert response.headers["retry-after"] == "1"
        assert 5 <= accepted <= 16  # ~1 MiB of 64 KiB requests

        # Sustained overload: every further request is refused and memory does not grow with it.
        gc.collect()
        rss_before = psutil.Process().memory_info().rss
        big = _body(-1, size=2 * 1024 * 1024)
        for _ in range(50):  # 100 MiB offered
            assert client.post(url, headers=HEADERS, content=big).status_code == 429
        gc.collect()
        growth = psutil.Process().memory_info().rss - rss_before
        assert growth < 32 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB under overload"

        # gRPC answers RESOURCE_EXHAUSTED with RetryInfo, which the OTLP exporters honour.
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=None,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
            try:
                export(_body(-2), metadata=(("authorization", basic_auth()),), timeout=10)
                raise AssertionError("expected RESOURCE_EXHAUSTED")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                retry = RetryInfo.FromString(dict(error.trailing_metadata())["google.rpc.retryinfo-bin"])
                assert retry.retry_delay.seconds == 1

        # Consumers catch up: ingest resumes and everything acknowledged is stored.
        server.pipeline.resume()
        wait_until(lambda: server.wal.backlog_bytes() == 0, timeout=30)
        assert client.post(url, headers=HEADERS, content=_body(999)).status_code == 200
    names = {
        r["name"]
        for r in wait_until(
            lambda: len(server.query.observations("default")) == accepted + 1 and server.query.observations("default")
        )
    }
    assert names == {f"s{i}" for i in range(accepted)} | {"s999"}
    metrics = httpx.get(f"http://127.0.0.1:{server.http_port}/metrics", headers={"authorization": basic_auth()}).text
    assert 'spanfuse_requests_total{outcome="backpressure",signal="traces",transport="http"} 51.0' in metrics


def test_many_concurrent_grpc_exports_wait_their_turn_instead_of_a_refusal_without_retry_info(start_server):
    # The gRPC server used to cap concurrent RPCs at 64: the rest got RESOURCE_EXHAUSTED
    # "Concurrent RPC limit exceeded!" without RetryInfo, which the OpenTelemetry Collector's
    # and Go SDK's exporters take as permanent and drop (a probe with 300 clients: 6,141 of
    # 7,545 exports). Now they queue for the receiver's threads like HTTP requests do; only
    # streams past 128 on one connection are refused, as UNAVAILABLE, which every exporter retries.
    server = start_server()
    released = _holding_wal_writes(server)  # every export waits on its WAL write until the test lets go
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        calls = [
            export.future(_body(index, size=64), metadata=(("authorization", basic_auth()),), timeout=60)
            for index in range(200)
        ]
        time.sleep(1.0)  # every export has arrived: the old cap's refusals were immediate
        assert {call.code() for call in calls if call.done()} <= {grpc.StatusCode.UNAVAILABLE}
        released.set()
        outcomes = Counter(call.code() for call in calls)  # code() waits for the call's end
    assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, outcomes
    assert outcomes[grpc.StatusCode.OK] >= 128, outcomes
    wait_until(lambda: len(server.query.observations("default")) == outcomes[grpc.StatusCode.OK])


def test_requests_past_the_in_flight_budget_are_refused_retryably(start_server):
    # Requests held in memory used to have no bound: 600 exporters of 0.8 MB took the collector
    # past 800 MiB. Now those past receivers.otlp.admission.request_limit_mib are refused at once,
    # on both transports, with the answers exporters retry.
    server = start_server(receivers=_admission(1))
    released = _holding_wal_writes(server)
    url = f"http://127.0.0.1:{server.http_port}/v1/traces"
    answers: dict[str, int] = {}
    held = [
        threading.Thread(
            target=lambda i=i: answers.update(
                {f"held{i}": httpx.post(url, headers=HEADERS, content=_body(i, 400_000), timeout=60).status_code}
            )
        )
        for i in range(2)
    ]
    for thread in held:
        thread.start()
    wait_until(lambda: server.ingestor.budget.held_bytes >= 800_000)
    with httpx.Client(timeout=30) as client:
        refused = client.post(url, headers=HEADERS, content=_body(2, 400_000))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert "requests in flight" in Status.FromString(refused.content).message

        def chunks() -> Iterator[bytes]:  # no Content-Length: held as it is read, refused part way
            body = _body(3, 400_000)
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        assert client.post(url, headers=HEADERS, content=chunks()).status_code == 429

        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            try:
                export(_body(4, 400_000), metadata=(("authorization", basic_auth()),), timeout=10)
                raise AssertionError("expected RESOURCE_EXHAUSTED")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "requests in flight" in (error.details() or "")
                assert "google.rpc.retryinfo-bin" in dict(error.trailing_metadata())

        # Langfuse's write routes share the budget.
        api = f"http://127.0.0.1:{server.http_port}/api/public"
        auth = {"authorization": basic_auth()}
        event = {"id": "e1", "timestamp": "2026-11-27T00:00:00Z", "type": "trace-create", "body": {"id": "t1"}}
        batch = {"batch": [event], "metadata": {"padding": "x" * 400_000}}
        for path, body in (("/ingestion", batch), ("/scores", [{"traceId": "t1", "name": "n", "value": 1}] * 8_000)):
            refused = client.post(api + path, headers=auth, json=body)
            assert refused.status_code == 429, (path, refused.text)
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"] == "RetryLater"

        released.set()
        for thread in held:
            thread.join(timeout=60)
        assert answers == {"held0": 200, "held1": 200}
        assert server.ingestor.budget.held_bytes == 0
        # The refused requests' connection serves the next one; a request over the limit alone is taken.
        assert client.post(url, headers=HEADERS, content=_body(5, 1_500_000)).status_code == 200
    names = {
        r["name"]
        for r in wait_until(
            lambda: len(server.query.observations("default")) == 3 and server.query.observations("default")
        )
    }
    assert names == {"s0", "s1", "s5"}


def test_memory_stays_bounded_with_many_exporters_sending_at_once(start_server):
    # 100 exporters send 1 MiB each while the WAL holds every write: without the budget each body
    # and its decoded request stayed in memory, 394 MiB at the peak; with 8 MiB of them at most,
    # 114 MiB (most of it the 100 client threads in this process).
    server = start_server(receivers=_admission(8))
    released = _holding_wal_writes(server)
    url = f"http://127.0.0.1:{server.http_port}/v1/traces"
    body = _body(0, 1 << 20)
    codes: Counter[int] = Counter()

    def send() -> None:
        codes[httpx.post(url, headers=HEADERS, content=body, timeout=60).status_code] += 1

    def everyone_at_once() -> None:
        senders = [threading.Thread(target=send) for _ in range(100)]
        for sender in senders:
            sender.start()
        # Every request is either answered or admitted (held until the WAL takes it).
        wait_until(lambda: sum(codes.values()) + server.ingestor.budget.held_bytes // len(body) >= 100, timeout=30)
        released.set()
        for sender in senders:
            sender.join(timeout=60)

    gc.collect()
    growth = rss_growth_at_peak(everyone_at_once)
    # Bodies are held as they arrive, so 100 of them streaming at once share the budget in pieces,
    # and a body refused half-way gives its piece back: how many are whole when the budget is full
    # depends on how their chunks interleave: fewer than 4 (this test's old bound) in 3 runs of 10,
    # as few as 2. At least one always is.
    assert codes[200] + codes[429] == 100 and 1 <= codes[200] <= 10, codes
    assert growth < 200 * 2**20, f"peak RSS rose {growth / 2**20:.0f} MiB"


def test_a_json_body_holds_what_it_takes_decoded(start_server):
    # An OTLP/JSON body takes ~8 times its size once decoded (Python objects): it holds that much
    # of the budget, so one 1.2 MB JSON request fills an 8 MiB budget where 1.2 MB of protobuf would not.
    server = start_server(receivers=_admission(8))
    released = _holding_wal_writes(server)
    url = f"http://127.0.0.1:{server.http_port}/v1/traces"
    document = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "ab" * 16,
                                "spanId": "cd" * 8,
                                "name": "s",
                                "attributes": [{"key": "blob", "value": {"stringValue": "x" * 1_200_000}}],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    answer: list[int] = []
    json_headers = {**HEADERS, "content-type": "application/json"}
    sender = threading.Thread(
        target=lambda: answer.append(httpx.post(url, headers=json_headers, json=document, timeout=60).status_code)
    )
    sender.start()
    wait_until(lambda: server.ingestor.budget.held_bytes > 9 * 1_200_000)
    refused = httpx.post(url, headers=HEADERS, content=_body(1, 100_000), timeout=30)
    assert refused.status_code == 429
    released.set()
    sender.join(timeout=60)
    assert answer == [200]
    assert httpx.post(url, headers=HEADERS, content=_body(2, 100_000), timeout=30).status_code == 200


def test_a_client_sending_slowly_holds_only_what_it_has_sent(start_server):
    # A body is held as it arrives, not as declared: a client that announces 4 MiB and trickles
    # (a slow link, or on purpose) does not take a 1 MiB budget from everyone else.
    server = start_server(receivers=_admission(1))
    body = _body(0, 4 * 2**20)
    with socket.create_connection(("127.0.0.1", server.http_port)) as slow:
        slow.sendall(
            f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            f"Authorization: {basic_auth()}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:100_000]
        )
        wait_until(lambda: server.ingestor.budget.held_bytes >= 100_000)
        assert server.ingestor.budget.held_bytes < 1_000_000
        url = f"http://127.0.0.1:{server.http_port}/v1/traces"
        assert httpx.post(url, headers=HEADERS, content=_body(1, 400_000), timeout=30).status_code == 200
        slow.sendall(body[100_000:])  # the rest: the slow request is then the only one, and taken
        assert b" 200 " in slow.recv(4096).split(b"\r\n", 1)[0]
    rows = wait_until(lambda: len(server.query.observations("default")) == 2 and server.query.observations("default"))
    assert {row["name"] for row in rows} == {"s0", "s1"}
