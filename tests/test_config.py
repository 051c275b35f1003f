"""Configuration: the shipped file, env substitution, and one-line errors for every bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import ConfigError, check_safe_to_listen, load_config, parse_config
from tests.conftest import ROOT

TESTDATA = Path(__file__).parent / "testdata" / "config"

BAD_FILES = {
    "anonymous_unknown.yaml": "auth.anonymous_project: no project with id 'nobody'",
    "bad_duration.yaml": "exporters.parquet.flush_interval: expected a duration such as 1s or 500ms, got 'soon'",
    "bad_endpoint.yaml": "receivers.otlp.protocols.http.endpoint: expected host:port, got 'localhost'",
    "bad_port.yaml": "receivers.otlp.protocols.http.endpoint: expected host:port, got '127.0.0.1:99999'",
    "bad_project_id.yaml": "projects[0].id: '../etc' is not a valid project id",
    "duplicate_project.yaml": "projects: duplicate project id 'default'",
    "empty_secret.yaml": "projects[0].secret_key: String should have at least 1 character",
    "env_unset.yaml": "projects[0].secret_key: environment variable SPANFUSE_TEST_UNSET_VARIABLE is not set",
    "forward_bad_compression.yaml": "exporters.otlp/b.compression: Input should be 'gzip' or 'none'",
    "forward_bad_grpc_endpoint.yaml": "exporters.otlp/b.endpoint: expected host:port or https://host:port",
    "forward_bad_http_endpoint.yaml": (
        "exporters.otlphttp/b.endpoint: expected an http:// or https:// URL, got 'collector:4318'"
    ),
    "forward_http_endpoint_space.yaml": (  # failed at every send, retried for ever, before
        "exporters.otlphttp/b.endpoint: expected an http:// or https:// URL, got 'https://collector .internal:4318'"
    ),
    "forward_grpc_endpoint_space.yaml": (
        "exporters.otlp/b.endpoint: expected host:port or https://host:port, got 'collector .internal:4318'"
    ),
    "forward_bad_name.yaml": "exporters.otlp/a b: the name after '/' may use up to 64 letters, digits",
    "forward_grpc_skip_verify.yaml": "exporters.otlp/b: tls.insecure_skip_verify is not supported by the gRPC client",
    "forward_langfuse_logs.yaml": (
        "service.pipelines.logs.exporters: langfuse/cloud cannot export logs; langfuse exporters support traces only"
    ),
    "forward_langfuse_no_secret.yaml": "exporters.langfuse/cloud.secret_key: required key is missing",
    "forward_missing_ca_file.yaml": "exporters.otlp/b.tls.ca_file: no such file '/nonexistent/ca.pem'",
    "forward_not_defined.yaml": "service.pipelines.traces.exporters: unknown exporter 'otlp/missing'",
    "forward_sending_queue.yaml": "exporters.otlphttp/b.sending_queue: not needed: the write-ahead log is every",
    "forward_typo_tls.yaml": "exporters.otlp/b.tls.ca: unknown key",
    "forward_unknown_project.yaml": "exporters.otlphttp/b.projects: no project with id 'nobody'",
    "forward_unknown_type.yaml": "exporters.kafka/out: unknown exporter type 'kafka'; use parquet, otlp, otlphttp",
    "missing_projects.yaml": "projects: required key is missing",
    "negative_retention.yaml": "exporters.parquet.retention_days: Input should be greater than or equal to 0",
    "no_protocols.yaml": "receivers.otlp.protocols: enable at least one of grpc, http",
    "not_yaml.yaml": "line 2: expected the node content",
    "scalar.yaml": "the configuration must be a mapping",
    "shared_public_key.yaml": "projects: public key of 'second' is used by another project",
    "typo_protocol.yaml": "receivers.otlp.protocols.htp: unknown key",
    "unknown_exporter.yaml": "service.pipelines.traces.exporters: unknown exporter 'kafka'",
    "unknown_receiver.yaml": "service.pipelines.traces.receivers: unknown receiver 'zipkin'",
    "wal_zero_segment.yaml": "storage.wal.segment_size_mib: Input should be greater than 0",
}


def test_every_bad_file_in_testdata_has_an_expected_message():
    present = {p.name for p in TESTDATA.glob("*.yaml")} - {"valid_minimal.yaml"}
    assert present == set(BAD_FILES)


@pytest.mark.parametrize(("name", "message"), sorted(BAD_FILES.items()))
def test_bad_config_is_one_line_naming_the_key(name, message):
    with pytest.raises(ConfigError) as raised:
        load_config(TESTDATA / name, environ={})
    text = str(raised.value)
    assert text.startswith(message)
    assert "\n" not in text


FORWARDING = """
  otlp/peer:
    endpoint: peer.internal:4317
    tls: {insecure: true}
    headers: {authorization: "Basic ${env:PEER_AUTH}"}
  otlp/secure:
    endpoint: https://peer.internal:4317
    tls: {insecure: true}
  otlphttp:
    endpoint: https://otel.example.com/base/
    logs_endpoint: https://logs.example.com/ingest
    compression: none
    timeout: 2s
    retry_on_failure: {initial_interval: 100ms, max_interval: 2s}
  langfuse/cloud:
    endpoint: https://cloud.langfuse.com/
    public_key: pk-lf-1
    secret_key: ${env:LF_SECRET:-sk-lf-1}
    projects: [default]
"""


def test_forwarding_exporters_are_parsed_by_type_and_name():
    text = (TESTDATA / "valid_minimal.yaml").read_text()
    text = text.replace("    path: ./somewhere\n", "    path: ./somewhere\n" + FORWARDING.lstrip("\n"))
    text = text.replace("exporters: [parquet]", "exporters: [parquet, otlp/peer, otlphttp, langfuse/cloud]")
    config = parse_config(text, environ={"PEER_AUTH": "abc"})
    forwarders = config.exporters.forwarders
    assert list(forwarders) == ["otlp/peer", "otlp/secure", "otlphttp", "langfuse/cloud"]
    peer, secure, http, langfuse = forwarders.values()
    assert (peer.type, peer.target, peer.plaintext, peer.headers) == (
        "otlp",
        "peer.internal:4317",
        True,
        {"authorization": "Basic abc"},
    )
    assert (peer.compression, peer.timeout, peer.projects) == ("gzip", 10.0, None)
    assert (secure.target, secure.plaintext) == ("peer.internal:4317", False)  # https:// always means TLS
    assert http.url_for("traces") == "https://otel.example.com/base/v1/traces"
    assert http.url_for("logs") == "https://logs.example.com/ingest"
    assert (http.compression, http.timeout, http.retry_on_failure.initial_interval) == ("none", 2.0, 0.1)
    assert langfuse.url_for("traces") == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    assert (langfuse.secret_key, langfuse.projects, langfuse.signals) == ("sk-lf-1", ["default"], ("traces",))


def test_minimal_config_gets_defaults():
    config = load_config(TESTDATA / "valid_minimal.yaml", environ={})
    assert config.receivers.otlp.protocols.grpc is None
    assert config.receivers.otlp.protocols.http.endpoint == "127.0.0.1:4318"
    assert config.receivers.otlp.protocols.http.max_request_body_size == 16 * 1024 * 1024
    assert config.exporters.parquet.flush_interval == 1.0
    assert config.exporters.parquet.retention_days == 0
    assert config.auth.anonymous_project is None
    assert config.storage.wal.max_backlog_mib == 1024


def test_shipped_config_defaults_without_environment():
    config = load_config(ROOT / "otel-config.yaml", environ={})
    protocols = config.receivers.otlp.protocols
    assert protocols.grpc.endpoint == "127.0.0.1:4317"
    assert protocols.http.endpoint == "127.0.0.1:4318"
    assert str(config.data_dir) == "data"
    [project] = config.projects
    assert (project.id, project.public_key, project.secret_key) == ("default", "pk-lf-local", "sk-lf-local")
    assert config.auth.anonymous_project == "default"
    check_safe_to_listen(config)  # loopback with development keys is fine


def test_shipped_config_takes_its_documented_environment_variables():
    environ = {
        "SPANFUSE_GRPC_ENDPOINT": "127.0.0.1:5317",
        "SPANFUSE_HTTP_ENDPOINT": "127.0.0.1:5318",
        "SPANFUSE_DATA_DIR": "/var/lib/spanfuse",
        "SPANFUSE_PUBLIC_KEY": "pk-lf-prod",
        "SPANFUSE_SECRET_KEY": "sk-lf-prod",
    }
    config = load_config(ROOT / "otel-config.yaml", environ=environ)
    protocols = config.receivers.otlp.protocols
    assert (protocols.grpc.endpoint, protocols.http.endpoint) == ("127.0.0.1:5317", "127.0.0.1:5318")
    assert str(config.data_dir) == "/var/lib/spanfuse"
    assert (config.projects[0].public_key, config.projects[0].secret_key) == ("pk-lf-prod", "sk-lf-prod")


def test_env_substitution_inside_longer_strings_and_durations():
    text = (
        (TESTDATA / "valid_minimal.yaml")
        .read_text()
        .replace("path: ./somewhere", "path: /data/${env:TEAM}/spans\n    flush_interval: ${env:FLUSH:-250ms}")
    )
    config = parse_config(text, environ={"TEAM": "ml"})
    assert str(config.data_dir) == "/data/ml/spans"
    assert config.exporters.parquet.flush_interval == 0.25


@pytest.mark.parametrize(
    ("endpoint", "keys", "anonymous", "problem"),
    [
        ("0.0.0.0:4318", ("pk-lf-local", "sk-lf-local"), False, "uses the development keys"),
        ("0.0.0.0:4318", ("pk-real", "sk-real"), True, "accepts requests without credentials"),
        ("[::]:4318", ("pk-lf-local", "sk-real"), False, "uses the development keys"),
        ("192.168.1.10:4318", ("pk-real", "sk-lf-local"), False, "uses the development keys"),
    ],
)
def test_refuses_to_listen_beyond_loopback_insecurely(endpoint, keys, anonymous, problem):
    text = (TESTDATA / "valid_minimal.yaml").read_text()
    text = text.replace("      http:\n", f"      http:\n        endpoint: '{endpoint}'\n")
    text = text.replace("public_key: pk-1, secret_key: sk-1", f"public_key: {keys[0]}, secret_key: {keys[1]}")
    if anonymous:
        text += "auth:\n  anonymous_project: default\n"
    config = parse_config(text, environ={})
    with pytest.raises(ConfigError, match=problem) as raised:
        check_safe_to_listen(config)
    assert str(raised.value).startswith("receivers.otlp.protocols.http.endpoint:")


def test_real_keys_may_listen_beyond_loopback():
    text = (TESTDATA / "valid_minimal.yaml").read_text()
    text = text.replace("      http:\n", "      http:\n        endpoint: '0.0.0.0:4318'\n")
    check_safe_to_listen(parse_config(text, environ={}))


def test_cli_reports_a_bad_config_in_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "collector", "serve", "--config", str(TESTDATA / "typo_protocol.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "spanfuse: config error: receivers.otlp.protocols.htp: unknown key"
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_reports_a_missing_config_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "collector", "serve", "--config", str(tmp_path / "absent.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("spanfuse: config error: cannot read")
    assert len(result.stderr.strip().splitlines()) == 1
