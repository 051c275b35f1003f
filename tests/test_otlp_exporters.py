"""The official OpenTelemetry exporters deliver spans and logs that land intact on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.trace import Status, StatusCode

from tests.conftest import wait_until
from tests.otlp_helpers import basic_auth, span_exporter, tracer_provider


def _send_two_span_trace(kind: str, server, path: str = "/v1/traces") -> tuple[str, str, str]:
    provider = tracer_provider(span_exporter(kind, server, path=path), service=f"svc-{kind}")
    tracer = provider.get_tracer("tests.exporters", "1.2.3")
    with tracer.start_as_current_span("root operation") as root:
        root.set_attribute("gen_ai.request.model", "gpt-4o")
        root.set_attribute("answer", 42)
        root.set_attribute("ratio", 0.5)
        root.set_attribute("flag", True)
        root.set_attribute("tags", ["a", "b"])
        with tracer.start_as_current_span("child operation") as child:
            child.add_event("thinking", {"step": 1})
            child.set_status(Status(StatusCode.ERROR, "it broke"))
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    return trace_id, format(root.get_span_context().span_id, "016x"), format(child.get_span_context().span_id, "016x")


@pytest.mark.parametrize("kind", ["grpc", "http", "json"])
def test_official_exporter_spans_are_stored_intact(server, kind):
    trace_id, root_id, child_id = _send_two_span_trace(kind, server)

    rows = wait_until(
        lambda: (
            len(server.query.observations("default", trace_id)) == 2 and server.query.observations("default", trace_id)
        )
    )
    by_id = {row["id"]: row for row in rows}
    root, child = by_id[root_id], by_id[child_id]
    assert root["trace_id"] == child["trace_id"] == trace_id
    assert root["parent_observation_id"] is None
    assert child["parent_observation_id"] == root_id
    assert root["name"] == "root operation"
    assert root["service_name"] == f"svc-{kind}"
    assert root["scope_name"] == "tests.exporters"
    assert root["scope_version"] == "1.2.3"
    assert root["environment"] == "test"
    assert root["span_kind"] == "INTERNAL"
    assert root["start_time"] <= child["start_time"] <= child["end_time"] <= root["end_time"]
    # The model key is mapped (and so not repeated in the raw attributes); the rest is kept as sent.
    assert (root["model"], root["type"]) == ("gpt-4o", "GENERATION")
    assert json.loads(root["attributes"]) == {
        "answer": 42,
        "ratio": 0.5,
        "flag": True,
        "tags": ["a", "b"],
    }
    assert child["level"] == "ERROR"
    assert child["status_message"] == "it broke"
    assert root["level"] == "DEFAULT"
    events = json.loads(child["events"])
    assert events[0]["name"] == "thinking" and events[0]["attributes"] == {"step": 1}

    # On disk: a Hive partition of the project and the span's UTC date, readable by any Parquet reader.
    files = list(Path(server.data_dir).glob("tables/observations/project_id=default/date=*/part-*.parquet"))
    assert files
    on_disk = pq.read_table(files).to_pylist()
    assert {row["id"] for row in on_disk} >= {root_id, child_id}
    date = root["start_time"].date().isoformat()
    assert any(f.parent.name == f"date={date}" for f in files)

    # The root span contributed the trace's name.
    traces = server.query.query("default", "SELECT * FROM {traces} WHERE id = ?", (trace_id,))
    assert [t["name"] for t in traces] == ["root operation"]


@pytest.mark.parametrize("kind", ["http", "json"])
def test_langfuse_otel_path_with_doubled_slash_is_accepted(server, kind):
    trace_id, _, _ = _send_two_span_trace(kind, server, path="//api/public/otel/v1/traces")
    wait_until(lambda: len(server.query.observations("default", trace_id)) == 2)


def test_logs_over_grpc_and_http_are_stored(server):
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs

    headers = {"authorization": basic_auth()}
    exporters = [
        GrpcLogs(endpoint=f"http://127.0.0.1:{server.grpc_port}", insecure=True, headers=headers),
        HttpLogs(endpoint=f"http://127.0.0.1:{server.http_port}/v1/logs", headers=headers),
    ]
    for index, exporter in enumerate(exporters):
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = provider.get_logger("tests.logs")
        logger.emit(body={"content": f"hello {index}"}, attributes={"event.name": "gen_ai.user.message"})
        provider.shutdown()

    rows = wait_until(
        lambda: (
            len(server.query.query("default", "SELECT * FROM {logs}")) == 2
            and server.query.query("default", "SELECT * FROM {logs} ORDER BY body")
        )
    )
    assert [json.loads(r["body"]) for r in rows] == [{"content": "hello 0"}, {"content": "hello 1"}]
    assert {r["event_name"] for r in rows} == {"gen_ai.user.message"}


def test_resent_spans_read_once(server):
    exporter = span_exporter("http", server)
    provider = tracer_provider(exporter)
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("once") as span:
        pass
    provider.force_flush()
    # A client retry delivers the very same span again.
    finished = [s for s in [span]]
    exporter.export(finished)
    provider.shutdown()
    trace_id = format(span.get_span_context().trace_id, "032x")
    wait_until(lambda: server.telemetry.rows_written.labels("observations")._value.get() >= 2)
    assert len(server.query.observations("default", trace_id)) == 1
