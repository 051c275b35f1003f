"""OTLP/JSON has two parsers (``collector.otlp_json``): the quick one for the forms exporters
write, and protobuf's ``json_format`` for everything else. Whatever the body, they must agree:
the same message, or both a refusal."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import otlp_json
from tests.fuzz.campaign import count, fuzz_settings
from tests.fuzz.test_fuzz_otlp import json_trace_bodies, log_requests, trace_requests
from tests.otlp_helpers import make_span, trace_request


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def _disturb(node: Any, rnd: random.Random) -> Any:
    """The same document with some of what only json_format takes: snake_case keys, a key
    given twice, nulls, a second member of a oneof, integers as floats or odd strings, enum
    names, unpadded base64, bracketed keys."""
    if isinstance(node, list):
        return [_disturb(item, rnd) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        value = _disturb(value, rnd)
        roll = rnd.random()
        if roll < 0.04:
            out[_snake(key)] = value
        elif roll < 0.06:
            out[key] = value
            out[_snake(key)] = value if _snake(key) != key else None
        elif roll < 0.08:
            out[key] = None
        elif roll < 0.10 and isinstance(value, str) and value.isascii() and value.isdigit() and int(value) < 2**63:
            out[key] = rnd.choice([float(value), f"+{value}", f"{value}.0", f"1_{value}", int(value)])
        elif roll < 0.12 and isinstance(value, str) and value.endswith("="):
            out[key] = value.rstrip("=")
        else:
            out[key] = value
    if "stringValue" in out and rnd.random() < 0.01:
        out["intValue"] = "1"
    if "kind" in out and rnd.random() < 0.1:
        out["kind"] = rnd.choice(["SPAN_KIND_SERVER", "SPAN_KIND_NOPE", 7, -1, 2.0])
    if rnd.random() < 0.02:
        out["[ext.field]"] = 1
    return out


def _outcome(parse: Any) -> Any:
    try:
        return parse().SerializeToString(deterministic=True)
    except otlp_json.JsonDecodeError:
        return "refused"


def _agree(body: bytes, message_type: type, campaign: str) -> Any:
    """What both parsers make of ``body``: its message's encoding, or "refused"."""
    quick = _outcome(lambda: otlp_json.parse(body, message_type))
    reference = _outcome(lambda: otlp_json.parse_document(orjson.loads(body), message_type))
    assert quick == reference
    count(campaign, "refused" if quick == "refused" else "parsed")
    return quick


@fuzz_settings(150)
@given(body=json_trace_bodies())
def test_hostile_json_traces_parse_alike(body: bytes) -> None:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # refused before either parser
    _agree(body, ExportTraceServiceRequest, "otlp_json:hostile_traces")


@pytest.mark.parametrize("signal", ["traces", "logs"])
@fuzz_settings(60)
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_well_formed_and_disturbed_json_parse_alike(signal: str, data: st.DataObject, seed: int) -> None:
    message_type = ExportTraceServiceRequest if signal == "traces" else ExportLogsServiceRequest
    encoded = data.draw(trace_requests() if signal == "traces" else log_requests())
    try:
        message = message_type.FromString(encoded)
    except Exception:
        return  # the strategies also draw damaged encodings
    document = otlp_json.to_document(message)
    parsed = _agree(orjson.dumps(document), message_type, f"otlp_json:{signal}")
    if parsed != "refused":  # (json_format refuses AnyValues nested more than 64 deep)
        # The request comes back whole (compared as JSON: a NaN is not equal to itself).
        assert json_format.MessageToDict(message_type.FromString(parsed)) == json_format.MessageToDict(message)
    _agree(orjson.dumps(_disturb(document, random.Random(seed))), message_type, f"otlp_json:disturbed_{signal}")


def _genai_request() -> ExportTraceServiceRequest:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.stop_sequences": ["\n\n", "END"],
        "llm.is_streaming": False,
        "langfuse.observation.metadata": {"tenant": "acme", "tries": 2},
        "gen_ai.prompt": '[{"role": "user", "content": "héllo"}]',
    }
    parent = make_span(name="agent", attributes={"langfuse.trace.name": "run"})
    children = [make_span(trace_id=parent.trace_id, parent=parent.span_id, attributes=attributes) for _ in range(3)]
    spans = [parent, *children]
    spans[1].events.add(name="gen_ai.content.prompt", time_unix_nano=spans[1].start_time_unix_nano)
    spans[2].links.add(trace_id=parent.trace_id, span_id=parent.span_id)
    spans[3].status.code = 2
    return trace_request(spans)


@pytest.mark.parametrize("seed", range(40))
def test_an_exporters_request_parses_alike_and_whole(seed: int) -> None:
    # As OpenTelemetry JS's exporter writes it: hex ids, 64-bit integers as strings, enums as numbers.
    request = _genai_request()
    document = otlp_json.to_document(request, integer_enums=True)
    parsed = _agree(orjson.dumps(document), ExportTraceServiceRequest, "otlp_json:exporter")
    assert ExportTraceServiceRequest.FromString(parsed) == request
    _agree(orjson.dumps(_disturb(document, random.Random(seed))), ExportTraceServiceRequest, "otlp_json:disturbed")
