"""The generic OTLP -> row mapping every span gets, before any GenAI dialect."""

from __future__ import annotations

import base64
import json
import sys

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

import semconv.mapping
import semconv.registry as registry
from collector import native
from semconv.extract import Dialect, Extract, merge
from semconv.mapping import map_logs_request, map_traces_request
from tests.otlp_helpers import kv, logs_request, make_span, trace_request

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
ROOT = bytes.fromhex("b7ad6b7169203331")
CHILD = bytes.fromhex("00f067aa0ba902b7")


def _map(*spans: Span, resource: dict | None = None):
    request = trace_request(list(spans))
    if resource is not None:
        del request.resource_spans[0].resource.attributes[:]
        request.resource_spans[0].resource.attributes.extend(kv(k, v) for k, v in resource.items())
    return map_traces_request(request)


def test_root_and_child_ids_times_and_trace_fact():
    root = make_span(TRACE, ROOT, name="root", start_ns=1_764_000_000_123_456_789, duration_ns=2_000_000)
    child = make_span(TRACE, CHILD, parent=ROOT, name="child", start_ns=1_764_000_000_124_000_000)
    out = _map(root, child)
    first, second = out.observations
    assert (first["id"], first["trace_id"], first["parent_observation_id"]) == (
        "b7ad6b7169203331",
        "0af7651916cd43dd8448eb211c80319c",
        None,
    )
    assert second["parent_observation_id"] == "b7ad6b7169203331"
    assert first["start_time"] == 1_764_000_000_123_456  # microseconds
    assert first["end_time"] == 1_764_000_000_125_456
    assert first["type"] == "SPAN" and first["span_kind"] == "CLIENT"
    assert [{k: v for k, v in t.items() if v is not None} for t in out.traces] == [
        {
            "id": "0af7651916cd43dd8448eb211c80319c",
            "observation_id": "b7ad6b7169203331",
            "timestamp": 1_764_000_000_123_456,
            "name": "root",
            "environment": "default",
        }
    ]


def test_error_status_sets_level_and_message():
    assert _map(make_span(error="rate limited")).observations[0]["level"] == "ERROR"
    assert _map(make_span(error="rate limited")).observations[0]["status_message"] == "rate limited"
    assert _map(make_span()).observations[0]["level"] == "DEFAULT"


def test_error_without_message_takes_the_exception_event():
    span = make_span(error="")
    span.status.code = 2
    event = span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano)
    event.attributes.extend([kv("exception.type", "ValueError"), kv("exception.message", "bad value")])
    row = _map(span).observations[0]
    assert (row["level"], row["status_message"]) == ("ERROR", "bad value")
    assert json.loads(row["events"])[0]["attributes"]["exception.type"] == "ValueError"


def test_every_attribute_value_type_survives_as_json():
    span = make_span(attributes={"s": "text", "i": -7, "d": 1.5, "b": False, "raw": b"\x00\xff"})
    span.attributes.append(
        KeyValue(
            key="list",
            value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="two")])),
        )
    )
    span.attributes.append(KeyValue(key="map", value=AnyValue(kvlist_value=KeyValueList(values=[kv("nested", True)]))))
    span.attributes.append(KeyValue(key="empty", value=AnyValue()))
    attrs = json.loads(_map(span).observations[0]["attributes"])
    assert attrs == {
        "s": "text",
        "i": -7,
        "d": 1.5,
        "b": False,
        "raw": base64.b64encode(b"\x00\xff").decode(),
        "list": [1, "two"],
        "map": {"nested": True},
        "empty": None,
    }


@pytest.mark.parametrize(
    ("resource", "environment"),
    [
        ({"deployment.environment.name": "prod", "deployment.environment": "old"}, "prod"),
        ({"deployment.environment": "staging"}, "staging"),
        ({}, "default"),
    ],
)
def test_environment_comes_from_the_resource(resource, environment):
    row = _map(make_span(), resource={"service.name": "svc", **resource}).observations[0]
    assert row["environment"] == environment
    assert row["service_name"] == "svc"
    assert json.loads(row["resource_attributes"])["service.name"] == "svc"


def test_unfinished_span_has_no_end_time():
    span = make_span()
    span.end_time_unix_nano = 0
    assert _map(span).observations[0]["end_time"] is None


def test_links_keep_their_ids():
    span = make_span()
    span.links.add(trace_id=TRACE, span_id=ROOT).attributes.append(kv("why", "follows"))
    assert json.loads(_map(span).observations[0]["links"]) == [
        {"trace_id": TRACE.hex(), "span_id": ROOT.hex(), "attributes": {"why": "follows"}}
    ]


def test_a_failing_dialect_never_drops_the_span(monkeypatch):
    def explode(view):
        raise KeyError("boom")

    monkeypatch.setattr(registry, "DIALECTS", (Dialect("broken", lambda view: True, explode),))
    out = _map(make_span(name="survivor"))
    assert [o["name"] for o in out.observations] == ["survivor"]
    assert out.warnings == 1


def test_a_span_whose_reading_breaks_is_kept_unread(monkeypatch):
    # A reading that breaks merging (outside the per-dialect guard): the span is stored with its
    # generic fields and every attribute, its trace still gets a row, and the others are unaffected.
    def bad_reading(view):
        return Extract(name="from the broken reading", tags=42)  # tags must be iterable

    broken = Dialect("broken", lambda view: view.span.name == "bad", bad_reading)
    monkeypatch.setattr(registry, "DIALECTS", (broken,))
    bad = make_span(name="bad", attributes={"gen_ai.request.model": "gpt-4o", "user.id": "u1"})
    good = make_span(name="good", span_id=b"\x02" * 8, parent=bad.span_id, attributes={"user.id": "u2"})
    out = _map(bad, good)
    rows = {o["name"]: o for o in out.observations}
    assert sorted(rows) == ["bad", "good"]
    assert json.loads(rows["bad"]["attributes"]) == {"gen_ai.request.model": "gpt-4o", "user.id": "u1"}
    assert rows["bad"]["model"] is None  # nothing was read from it
    assert "user.id" not in json.loads(rows["good"]["attributes"] or "{}")  # the good span was read
    assert [(t["name"], t["user_id"]) for t in out.traces] == [("bad", None), (None, "u2")]
    assert out.warnings == 1


@pytest.mark.skipif(native.active_build() is not None, reason="calls inside the compiled mapper cannot be patched")
def test_a_log_record_whose_content_breaks_is_kept(monkeypatch):
    def explode(*args):
        raise TypeError("boom")

    monkeypatch.setattr(semconv.mapping.genai, "log_content", explode)
    body = AnyValue(kvlist_value=KeyValueList(values=[kv("content", "hi")]))
    rows = map_logs_request(
        logs_request([LogRecord(time_unix_nano=5_000, body=body, event_name="gen_ai.user.message")]), 9
    )
    assert [(r["event_name"], r["input_messages"], json.loads(r["body"])) for r in rows] == [
        ("gen_ai.user.message", None, {"content": "hi"})
    ]


def test_log_records_map_with_event_names_bodies_and_stable_ids():
    body = AnyValue(kvlist_value=KeyValueList(values=[kv("content", "hi")]))
    records = [
        LogRecord(time_unix_nano=5_000, trace_id=TRACE, span_id=ROOT, body=body, event_name="gen_ai.user.message"),
        LogRecord(
            observed_time_unix_nano=7_000,
            attributes=[kv("event.name", "gen_ai.choice")],
            body=AnyValue(string_value="plain"),
        ),
        LogRecord(severity_number=9, severity_text="INFO"),
    ]
    rows = map_logs_request(logs_request(records), received_ns=9_000)
    assert [r["event_name"] for r in rows] == ["gen_ai.user.message", "gen_ai.choice", None]
    assert [r["timestamp"] for r in rows] == [5, 7, 9]  # time, else observed time, else received
    assert (rows[0]["trace_id"], rows[0]["span_id"]) == (TRACE.hex(), ROOT.hex())
    assert rows[1]["trace_id"] is None
    assert json.loads(rows[0]["body"]) == {"content": "hi"}
    assert json.loads(rows[1]["body"]) == "plain"
    assert (rows[2]["severity_number"], rows[2]["severity_text"], rows[2]["body"]) == (9, "INFO", None)
    again = map_logs_request(logs_request(records), received_ns=1)
    assert [r["id"] for r in again] == [r["id"] for r in rows]  # a resend is the same row
    assert len({r["id"] for r in rows}) == 3


def _extract_fields() -> list[str]:
    """Extract's fields, read from its source (a compiled class has no signature to inspect)."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[1] / "semconv" / "extract.py").read_text())
    [cls] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Extract"]
    [init] = [node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"]
    return [arg.arg for arg in init.args.kwonlyargs]


COMBINED = {"metadata", "trace_metadata", "tags", "consumed"}


@pytest.mark.parametrize("field", _extract_fields())
def test_merge_takes_every_field_of_extract(field):
    # merge names each field of Extract one by one: a field it forgot would vanish from every span.
    def value(which: str):
        if field in ("metadata", "trace_metadata", "model_parameters", "usage", "aggregated_usage", "cost"):
            return {"k": 1 if which == "high" else 2, which: 3}
        if field == "prompt_version":
            return 1 if which == "high" else 2
        if field == "tags":
            return [which]
        if field == "consumed":
            return {which}
        return which

    high, low = Extract(**{field: value("high")}), Extract(**{field: value("low")})
    merged = merge([high, low])
    if field in ("metadata", "trace_metadata"):
        assert getattr(merged, field) == {"k": 1, "high": 3, "low": 3}
    elif field == "tags":
        assert merged.tags == ["high", "low"]
    elif field == "consumed":
        assert merged.consumed == {"high", "low"}
    elif field == "aggregated_usage":  # claims the span's usage: kept, and nothing below bills it
        assert merged.aggregated_usage == value("high")
    else:
        assert getattr(merged, field) == value("high")
    if field not in COMBINED:  # a reading that does not say leaves the field to the next one
        assert getattr(merge([Extract(), low]), field) == value("low")


def test_rows_start_from_str_keyed_templates_of_exactly_their_keys():
    """Rows are built as ``{**template, ...}`` so they keep CPython's str-only dict layout (smaller,
    and faster for the writer's lookups by column name); a key added to a row but not to its
    template, or left in the template only, would silently lose that."""
    out = _map(make_span(TRACE, ROOT, name="root"))
    [observation], [trace] = out.observations, out.traces
    assert list(observation) == list(semconv.mapping._OBSERVATION_ROW)
    assert list(trace) == list(semconv.mapping.TRACE_ROW)
    for row in (observation, trace):
        str_keyed = {}
        for key, value in row.items():  # inserting str keys one by one gives the str-only layout
            str_keyed[key] = value
        assert sys.getsizeof(row) == sys.getsizeof(str_keyed)
