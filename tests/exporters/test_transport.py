"""Delivery: retries on the OTLP retryable statuses, honouring Retry-After; final answers are final."""

from __future__ import annotations

import gzip
import os
import time

import pytest

from exporters.compression import gzip_bytes
from exporters.transport import OtlpHttpTransport, Outcome, join_url, retry_after_seconds
from tests.conftest import free_port


def _transport(url: str, **kwargs) -> OtlpHttpTransport:
    return OtlpHttpTransport(url + "/api/public/otel/v1/traces", {"authorization": "Basic x"}, timeout=5, **kwargs)


def _no_abort(waits: list[float]):
    def wait(seconds: float) -> bool:
        waits.append(seconds)
        time.sleep(seconds)
        return False

    return wait


@pytest.mark.parametrize("size", [0, 1, 100_000, 3_000_000])
def test_gzip_bytes_is_one_gzip_member_any_reader_undoes(size):
    data = (os.urandom(size // 4) + b"gen_ai.usage.input_tokens" * (size // 25))[:size]
    packed = gzip_bytes(data)
    assert gzip.decompress(packed) == data
    assert packed[:2] == b"\x1f\x8b"
    if size >= 100_000:
        assert len(packed) < 0.6 * size  # compressed, not stored


def test_503_with_retry_after_is_retried_until_accepted(sink):
    sink.script = [(503, {"Retry-After": "0.2"}), (503, {"Retry-After": "0.2"})]
    waits: list[float] = []
    started = time.monotonic()
    outcome = _transport(sink.url).send(b"", _no_abort(waits))
    assert outcome is Outcome.SENT
    assert sink.attempts == 3
    assert waits == [0.2, 0.2]  # the server's delay, not the exponential backoff (1 s, 2 s)
    assert time.monotonic() - started < 2


def test_each_retryable_status_is_retried(sink):
    sink.script = [(429, {}), (502, {}), (504, {})]
    waits: list[float] = []
    transport = _transport(sink.url, backoff_base=0.01)
    assert transport.send(b"", _no_abort(waits)) is Outcome.SENT
    assert sink.attempts == 4 and transport.retries == 3
    # exponential backoff with +-20% jitter when the server gives no Retry-After
    for attempt, wait in enumerate(waits):
        assert 0.008 * 2**attempt <= wait <= 0.012 * 2**attempt


def test_400_is_not_retried(sink):
    sink.script = [(400, {})]
    waits: list[float] = []
    assert _transport(sink.url).send(b"", _no_abort(waits)) is Outcome.REJECTED
    assert sink.attempts == 1 and waits == []


def test_retries_are_bounded_by_attempts(sink):
    sink.script = [(503, {"Retry-After": "0"})] * 10
    transport = _transport(sink.url, max_attempts=3)
    assert transport.send(b"", _no_abort([])) is Outcome.GAVE_UP
    assert sink.attempts == 3


def test_connection_refused_is_retried_and_abort_stops_waiting():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    waits: list[float] = []

    def abort_on_second_wait(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) >= 2

    assert _transport(url).send(b"", abort_on_second_wait) is Outcome.GAVE_UP
    assert len(waits) == 2


def test_body_is_gzipped_by_default(sink):
    assert _transport(sink.url).send(b"", _no_abort([])) is Outcome.SENT
    assert sink.received[0].headers["content-encoding"] == "gzip"
    assert sink.received[0].headers["content-type"] == "application/x-protobuf"


def test_join_url_never_doubles_slashes():
    path = "/api/public/otel/v1/traces"
    assert join_url("http://h:4318/", path) == "http://h:4318/api/public/otel/v1/traces"
    assert join_url("http://h:4318", "api/public/otel/v1/traces") == "http://h:4318/api/public/otel/v1/traces"
    assert join_url("https://h/langfuse/", path) == "https://h/langfuse/api/public/otel/v1/traces"


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("-1") == 0.0
    assert retry_after_seconds("9999") == 60.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after_seconds(None) is None
