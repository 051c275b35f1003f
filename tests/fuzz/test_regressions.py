"""One plain example per bug the fuzz campaigns found (each was a 500 or a batch that could not be written)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import orjson
import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.server import Server
from semconv.mapping import map_traces_request
from semconv.values import to_json
from tests.conftest import wait_until
from tests.fuzz.test_fuzz_otlp import TRACES, Pipeline
from tests.otlp_helpers import basic_auth, kv, make_span, trace_request

PROTOBUF = "application/x-protobuf"
AUTH = {"authorization": basic_auth()}
COMPLETION_START = "langfuse.observation.completion_start_time"


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(tmp_path)


def _stored(pipeline: Pipeline, attributes: dict, resource: dict | None = None) -> dict:
    """Map, price and write one span through the Parquet consumer; its observation as mapped."""
    request = trace_request([make_span(name="s", attributes=attributes)])
    for key, value in (resource or {}).items():
        request.resource_spans[0].resource.attributes.append(kv(key, value))
    body = request.SerializeToString()
    assert pipeline.run("regressions", body, TRACES, PROTOBUF) == "stored"
    return map_traces_request(request).observations[0]


# ---------------------------------------------------------------- mapping: batches that failed to write


def test_json_string_nested_deeper_than_orjson_encodes_is_kept(pipeline: Pipeline) -> None:
    """``input.value`` holding 300-deep JSON made orjson.dumps raise: the whole batch failed."""
    deep = "[" * 300 + "]" * 300
    row = _stored(pipeline, {"input.value": deep, "openinference.span.kind": "LLM"})
    assert orjson.loads(row["input"])  # still JSON, the deep part kept as its text
    assert to_json([[[]]]) == "[[[]]]"


def test_token_counts_beyond_64_bits_are_dropped(pipeline: Pipeline) -> None:
    """``gen_ai.usage.input_tokens`` = 1e19 / "1e30" overflowed the int64 usage map."""
    row = _stored(
        pipeline,
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1e19, "gen_ai.usage.output_tokens": "1e30"},
    )
    assert not row["usage_details"] or all(v < 2**63 for v in row["usage_details"].values())


def test_non_string_values_of_text_columns_are_stringified(pipeline: Pipeline) -> None:
    """``gen_ai.tool.name`` = 7 on a tool span and ``service.name`` = 5 reached string columns as ints."""
    row = _stored(
        pipeline,
        {"gen_ai.tool.name": 7, "gen_ai.operation.name": "execute_tool", "langfuse.trace.tags": [1, "a"]},
        resource={"service.name": 5},
    )
    assert row["name"] == "7"
    assert row["service_name"] == "5"


@pytest.mark.parametrize(
    "attributes",
    [
        {"gen_ai.operation.name": "chat", "gen_ai.server.time_to_first_token": 1e300},
        {"langfuse.observation.type": "generation", COMPLETION_START: '"9999-12-31T23:59:59-14:00"'},
        {"langfuse.observation.type": "generation", COMPLETION_START: "0001-01-01T00:00:00+14:00"},
    ],
    ids=["ttft 1e300 s", "after year 9999 in UTC", "before year 1 in UTC"],
)  # fmt: skip
def test_completion_start_time_out_of_range_is_dropped(pipeline: Pipeline, attributes: dict) -> None:
    """A time outside years 1..9999 overflowed the timestamp column or was unreadable as a datetime."""
    assert _stored(pipeline, attributes)["completion_start_time"] is None


def test_out_of_range_completion_start_time_reads_back_over_rest(server: Server) -> None:
    span = make_span(
        name="late",
        attributes={
            "langfuse.observation.type": "generation",
            "langfuse.observation.completion_start_time": '"9999-12-31T23:59:59-14:00"',
        },
    )
    base = f"http://127.0.0.1:{server.http_port}"
    body = trace_request([span]).SerializeToString()
    assert httpx.post(f"{base}/v1/traces", content=body, headers={**AUTH, "content-type": PROTOBUF}).is_success
    rows = wait_until(lambda: httpx.get(f"{base}/api/public/observations", headers=AUTH).json()["data"])
    assert rows[0]["completionStartTime"] is None


def test_attribute_without_value_maps(pipeline: Pipeline) -> None:
    request = trace_request([make_span()])
    request.resource_spans[0].scope_spans[0].spans[0].attributes.append(KeyValue(key="empty", value=AnyValue()))
    assert pipeline.run("regressions", request.SerializeToString(), TRACES, PROTOBUF) == "stored"


_NOT_TEXT = [({"code": 7}, '{"code":7}'), (42, "42"), (["a", "b"], '["a","b"]'), (True, "true"), (2.5, "2.5")]


@pytest.mark.parametrize(("message", "shown"), _NOT_TEXT)
def test_exception_event_with_a_message_that_is_not_text_maps(pipeline: Pipeline, message: object, shown: str) -> None:
    """An error span's ``exception`` event whose ``exception.message`` was a map or a number made
    the compiled mapper raise (its status message is a str): the accepted request was set aside,
    not stored. Found by test_hostile_trace_requests_are_refused_or_stored."""
    span = make_span()
    span.status.code = 2  # error, without a message of its own: the exception's is shown
    span.events.add(name="exception", attributes=[kv("exception.message", message)])
    assert pipeline.run("regressions", trace_request([span]).SerializeToString(), TRACES, PROTOBUF) == "stored"
    assert map_traces_request(trace_request([span])).observations[0]["status_message"] == shown


# ---------------------------------------------------------------- REST: 500s


@pytest.mark.parametrize("path", ["/api/public/traces", "/api/public/observations", "/api/public/scores"])
def test_page_whose_offset_overflows_is_400(server: Server, path: str) -> None:
    """page=2**62 made DuckDB's OFFSET overflow int64: a 500."""
    response = httpx.get(f"http://127.0.0.1:{server.http_port}{path}", params={"page": 2**62}, headers=AUTH)
    assert response.status_code == 400
    assert "page" in response.json()["message"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_timestamp_leaving_the_calendar_in_utc_is_400(server: Server, value: str) -> None:
    """An offset that moves a time before year 1 (or after 9999) in UTC raised OverflowError: a 500."""
    base = f"http://127.0.0.1:{server.http_port}/api/public"
    response = httpx.get(f"{base}/traces", params={"fromTimestamp": value}, headers=AUTH)
    assert response.status_code == 400
    assert "fromTimestamp" in response.json()["message"]
    query = {
        "view": "observations",
        "metrics": [{"measure": "count", "aggregation": "count"}],
        "fromTimestamp": value,
        "toTimestamp": "9999-12-31T00:00:00Z",
    }
    metrics = httpx.get(f"{base}/v2/metrics", params={"query": orjson.dumps(query).decode()}, headers=AUTH)
    assert metrics.status_code == 400, metrics.text


def test_observations_cursor_leaving_the_calendar_is_400(server: Server) -> None:
    cursor = base64.b64encode(
        orjson.dumps({"lastStartTimeTo": "0001-01-01T00:00:00+14:00", "lastId": "a", "lastTraceId": "b"})
    ).decode()
    response = httpx.get(
        f"http://127.0.0.1:{server.http_port}/api/public/v2/observations", params={"cursor": cursor}, headers=AUTH
    )
    assert response.status_code == 400
    assert "cursor" in response.json()["message"]


# ---------------------------------------------------------------- REST: answers as declared


def test_openapi_declares_the_error_answers(server: Server) -> None:
    """The schema promised 422 for invalid input; the API answers 400 (and 401/404) ``{message, error}``."""
    document = httpx.get(f"http://127.0.0.1:{server.http_port}/openapi.json").json()
    traces = document["paths"]["/api/public/traces"]["get"]["responses"]
    assert "422" not in traces
    assert {"400", "401", "404"} <= set(traces)


def test_unparsable_body_and_unknown_route_answer_in_langfuse_shape(server: Server) -> None:
    base = f"http://127.0.0.1:{server.http_port}/api/public"
    bad_body = httpx.request(
        "DELETE", f"{base}/traces", content=b"\xff{", headers={**AUTH, "content-type": "application/json"}
    )
    assert bad_body.status_code == 400
    assert bad_body.json()["message"]
    missing = httpx.get(f"{base}/no-such-route", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found"
