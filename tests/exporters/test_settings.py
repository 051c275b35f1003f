"""Constructor arguments, their LANGFUSE_* fallbacks, and the errors for bad values."""

from __future__ import annotations

import base64

import pytest

from exporters.settings import resolve

NONE = dict(
    public_key=None,
    secret_key=None,
    base_url=None,
    timeout=None,
    flush_at=None,
    flush_interval=None,
    max_queue_size=2048,
    additional_headers=None,
    environment=None,
    release=None,
    sample_rate=None,
    compression=None,
)
KEYS = {"LANGFUSE_PUBLIC_KEY": "pk-env", "LANGFUSE_SECRET_KEY": "sk-env"}


def settings(environ: dict[str, str] | None = None, **kwargs):
    return resolve(**{**NONE, **kwargs}, environ={**KEYS, **(environ or {})})


def test_everything_falls_back_to_langfuse_variables():
    s = settings(
        {
            "LANGFUSE_BASE_URL": "https://lf.example.com/",
            "LANGFUSE_TRACING_ENVIRONMENT": "staging",
            "LANGFUSE_RELEASE": "v1.2",
            "LANGFUSE_FLUSH_AT": "64",
            "LANGFUSE_FLUSH_INTERVAL": "0.5",
            "LANGFUSE_TIMEOUT": "12",
            "LANGFUSE_SAMPLE_RATE": "0.25",
        }
    )
    assert s.public_key == "pk-env"
    assert s.headers["authorization"] == "Basic " + base64.b64encode(b"pk-env:sk-env").decode()
    assert s.endpoint == "https://lf.example.com/api/public/otel/v1/traces"
    assert (s.environment, s.release) == ("staging", "v1.2")
    assert (s.flush_at, s.flush_interval, s.timeout, s.sample_rate) == (64, 0.5, 12.0, 0.25)
    assert s.compression == "gzip"


def test_arguments_win_over_variables():
    s = settings({"LANGFUSE_BASE_URL": "http://env:1", "LANGFUSE_FLUSH_AT": "64"}, base_url="http://arg:2", flush_at=8)
    assert s.endpoint == "http://arg:2/api/public/otel/v1/traces" and s.flush_at == 8


def test_langfuse_host_is_the_older_spelling_of_base_url():
    assert settings({"LANGFUSE_HOST": "http://h:3000"}).endpoint == "http://h:3000/api/public/otel/v1/traces"
    both = settings({"LANGFUSE_HOST": "http://old:1", "LANGFUSE_BASE_URL": "http://new:2"})
    assert both.endpoint.startswith("http://new:2/")


def test_default_base_url_is_a_local_spanfuse():
    assert settings().endpoint == "http://127.0.0.1:4318/api/public/otel/v1/traces"


def test_export_path_variable_is_joined_without_double_slash():
    s = settings({"LANGFUSE_BASE_URL": "http://h/", "LANGFUSE_OTEL_TRACES_EXPORT_PATH": "/custom/v1/traces"})
    assert s.endpoint == "http://h/custom/v1/traces"


def test_release_falls_back_to_ci_commit():
    assert settings({"GITHUB_SHA": "abc123"}).release == "abc123"


def test_headers_identify_the_client_and_additional_headers_are_added():
    s = settings(additional_headers={"X-Team": "ml"})
    assert s.headers["x-langfuse-public-key"] == "pk-env"
    assert s.headers["x-langfuse-sdk-name"] == "spanfuse"
    assert s.headers["x-langfuse-sdk-version"]
    assert s.headers["x-team"] == "ml"


@pytest.mark.parametrize(
    ("environ", "kwargs", "message"),
    [
        ({"LANGFUSE_PUBLIC_KEY": ""}, {}, "LANGFUSE_PUBLIC_KEY"),
        ({"LANGFUSE_SECRET_KEY": ""}, {}, "LANGFUSE_SECRET_KEY"),
        ({}, {"base_url": "localhost:4318"}, "http(s) URL"),
        ({"LANGFUSE_FLUSH_AT": "many"}, {}, "flush_at (LANGFUSE_FLUSH_AT) must be a number"),
        ({}, {"flush_at": 0}, "flush_at (argument) must be at least 1"),
        ({"LANGFUSE_FLUSH_INTERVAL": "-1"}, {}, "flush_interval (LANGFUSE_FLUSH_INTERVAL)"),
        ({"LANGFUSE_TIMEOUT": "0"}, {}, "timeout (LANGFUSE_TIMEOUT)"),
        ({"LANGFUSE_SAMPLE_RATE": "1.5"}, {}, "between 0 and 1"),
        ({"LANGFUSE_SAMPLE_RATE": "nan"}, {}, "sample_rate"),
        ({}, {"compression": "br"}, "'gzip' or 'none'"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "deflate"}, {}, "OTEL_EXPORTER_OTLP_COMPRESSION"),
        ({}, {"max_queue_size": 0}, "max_queue_size"),
    ],
)
def test_bad_values_are_clear_errors(environ, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings(environ, **kwargs)


def test_processor_reads_the_process_environment(monkeypatch, sink):
    from exporters import LangfuseSpanProcessor

    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-os")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-os")
    monkeypatch.setenv("LANGFUSE_BASE_URL", sink.url + "/")
    processor = LangfuseSpanProcessor()
    try:
        assert processor.public_key == "pk-os"
        assert processor.endpoint == sink.url + "/api/public/otel/v1/traces"
    finally:
        processor.shutdown()


def test_processor_without_keys_raises(monkeypatch):
    from exporters import LangfuseSpanProcessor

    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    with pytest.raises(ValueError, match="public key"):
        LangfuseSpanProcessor()
