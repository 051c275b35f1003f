"""Property tests on the in-process decode → validate → map → price → Parquet path (no sockets).

Whatever bytes arrive, the receivers' own parsing (:meth:`OtlpHttpHandler._parse`, the same
``ParseFromString`` the gRPC receiver uses) either refuses them with a 400 and a message, or
:meth:`Ingestor.submit` validates them into a WAL payload that the Parquet pipeline's
:class:`BatchProcessor` maps, prices and writes without raising and without counting anything
set aside — and DuckDB reads back exactly one observation per accepted span (one log row per
accepted log record).
"""

from __future__ import annotations

import base64
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.admission import RequestBudget
from collector.batch import BatchProcessor
from collector.ingest import LOGS, TRACES, Ingestor, SignalSpec
from collector.receivers.http import JSON, PROTOBUF, HttpError, OtlpHttpHandler, _malformed
from collector.telemetry import Telemetry
from storage.wal import WalRecord
from tests.fuzz.campaign import count, fuzz_settings, long_campaign

ROOT = Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------------- the path under test


class CapturingWal:
    """Stands in for the WAL: keeps what :meth:`Ingestor.submit` appends, already "fsynced"."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def has_room(self) -> bool:
        return True

    def append(self, signal: int, project_id: str, payload: bytes) -> Future[int]:
        self.payloads.append(payload)
        done: Future[int] = Future()
        done.set_result(len(self.payloads))
        return done


class Pipeline:
    """The receivers' validation and the Parquet consumer's batch processing, in this process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.wal = CapturingWal()
        self.ingestor = Ingestor(self.wal, Telemetry(), RequestBudget(128 << 20))  # type: ignore[arg-type]
        self.processor = BatchProcessor(root)
        self.db = duckdb.connect()

    def run(self, campaign: str, body: bytes, spec: SignalSpec, encoding: str) -> str:
        """Push ``body`` through; assert the outcome is a clean refusal or exactly the accepted rows stored."""
        shutil.rmtree(self.root / "tables", ignore_errors=True)
        try:
            message = OtlpHttpHandler._parse(body, spec, encoding)
            try:  # as the receivers do: validating decodes the spans parsing left encoded
                submission = self.ingestor.submit(
                    spec, "default", message, body if encoding == PROTOBUF else None, "http"
                )
            except DecodeError as error:
                raise _malformed(spec, error) from None
        except HttpError as error:
            assert error.status == 400, error
            assert error.message.strip(), "a refusal must say why"
            count(campaign, "refused")
            return "refused"
        if submission.rejected:
            assert submission.response.partial_success.error_message, "partial_success must say why"
        if submission.future is None:
            count(campaign, "nothing_left")
            return "nothing_left"
        payload = self.wal.payloads[-1]
        record = WalRecord(0, 1, spec.signal, "default", time.time_ns(), payload)
        result = self.processor.process([record])
        assert result.set_aside == 0, "an accepted request must map (it was validated at ingest)"
        table = "observations" if spec is TRACES else "logs"
        assert result.rows_by_table.get(table, 0) == submission.accepted
        files = [str(p) for p in (self.root / "tables" / table).rglob("*.parquet")]
        assert files, "accepted items must be written"
        rows = self.db.execute(
            "SELECT * FROM read_parquet(?, union_by_name = true, hive_partitioning = true)", [files]
        ).fetchall()  # every column decoded, not just counted
        assert len(rows) == submission.accepted
        count(campaign, "partial" if submission.rejected else "stored")
        return "stored"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("fuzz-otlp"))


# ----------------------------------------------------------------------------- strategies

_KEY = re.compile(r'"((?:[a-z_]+\.)+[A-Za-z0-9_]*)"')


def dialect_keys() -> list[str]:
    """Every dotted attribute name (or prefix) the mapping modules spell out, plus suffixed forms."""
    found: set[str] = set()
    for path in [*ROOT.glob("semconv/*.py"), *ROOT.glob("semconv/dialects/*.py")]:
        found.update(_KEY.findall(path.read_text()))
    prefixed = {key + suffix for key in found if key.endswith(".") for suffix in _SUFFIXES}
    return sorted(found | prefixed | set(_EXTRA_KEYS))


_SUFFIXES = ("0", "0.content", "0.message.content", "0.message.role", "total", "input", "output", "name", "x")
_EXTRA_KEYS = (
    "langfuse.observation.type",
    "langfuse.observation.input",
    "langfuse.observation.output",
    "langfuse.observation.usage_details",
    "langfuse.observation.cost_details",
    "langfuse.observation.model.name",
    "langfuse.observation.model.parameters",
    "langfuse.observation.completion_start_time",
    "langfuse.observation.level",
    "langfuse.observation.status_message",
    "langfuse.observation.metadata.key",
    "langfuse.observation.prompt.name",
    "langfuse.observation.prompt.version",
    "langfuse.trace.name",
    "langfuse.trace.input",
    "langfuse.trace.output",
    "langfuse.trace.metadata",
    "langfuse.trace.public",
    "input.value",
    "input.mime_type",
    "output.value",
    "output.mime_type",
    "llm.input_messages.0.message.content",
    "llm.input_messages.0.message.role",
    "llm.input_messages.0.message.tool_calls.0.tool_call.function.arguments",
    "llm.input_messages.999999999.message.content",
    "llm.output_messages.0.message.content",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.total",
    "llm.token_count.prompt_details.cache_read",
    "llm.cost.total",
    "gen_ai.prompt.99999999999999999999.content",
    "x.999999999.y",
    "",
    ".",
    "..",
    "ключ",
    "🔥.emoji",
)
DIALECT_KEYS = dialect_keys()

INVALID_UTF8_MARKER = "\x1bINVALIDUTF8\x1b"  # replaced on the wire by invalid UTF-8 of the same length
_INVALID_UTF8 = b"\xc3\x28" + b"\xa0\xa1" + b"\xed\xa0\x80" + b"\xf8\x88\x80\x80\x80" + b"\xff"
assert len(_INVALID_UTF8) == len(INVALID_UTF8_MARKER.encode())

# Strings that look like what a dialect parses (JSON, numbers, times) but are wrong or extreme.
TRICKY_STRINGS = [
    "",
    "{",
    "[1,",
    '{"input": "x"}',
    '{"input": -5, "output": 1e400}',
    '{"input": 1e30, "output": "7", "total": -1}',
    '{"input": 18446744073709551616}',
    '{"input": 9223372036854775807, "output": 9223372036854775807}',
    '[{"role": 5, "content": {"a": []}}]',
    '[{"role": "user", "content": [{"type": "text", "text": 1}]}]',
    '{"messages": null}',
    "NaN",
    "-1",
    "1e309",
    "1e30",
    "99999999999999999999",
    "-0",
    "1.5",
    "true",
    '"quoted"',
    '"2024-01-01T00:00:00Z"',
    '"99999-01-01T00:00:00Z"',
    "0000-00-00",
    "not a date",
    "[" * 300 + "]" * 300,
    '{"a":' * 300 + "1" + "}" * 300,
    "[" * 2000,
    "\x00",
    "\ud7ff\ue000\U0010ffff",
    INVALID_UTF8_MARKER,
]

texts = st.one_of(st.text(max_size=40), st.sampled_from(TRICKY_STRINGS))
attribute_keys = st.one_of(
    st.sampled_from(DIALECT_KEYS),
    st.sampled_from(DIALECT_KEYS).flatmap(lambda k: st.builds(lambda s: k + s, st.text(max_size=12))),
    st.text(max_size=20),
    st.just(INVALID_UTF8_MARKER),
)


def _string(text: str) -> AnyValue:
    return AnyValue(string_value=text)


scalar_values = st.one_of(
    texts.map(_string),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: AnyValue(int_value=n)),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**31]).map(lambda n: AnyValue(int_value=n)),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: AnyValue(double_value=x)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.binary(max_size=24).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),  # no value set at all
)


def _array(values: list[AnyValue]) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=values))


def _kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in pairs]))


def nested(depth: int, kind: str) -> AnyValue:
    """An AnyValue ``depth`` arrays (or kvlists) deep around one string (the protobuf runtime
    itself refuses to build messages nested more than 100 deep: :func:`deep_wire_request` goes further)."""
    value = _string("bottom")
    for _ in range(depth):
        value = _array([value]) if kind == "array" else _kvlist([("k", value)])
    return value


any_values = st.one_of(
    st.recursive(
        scalar_values,
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(_array),
            st.lists(st.tuples(attribute_keys, children), max_size=4).map(_kvlist),
        ),
        max_leaves=12,
    ),
    st.builds(nested, st.integers(10, 25), st.sampled_from(["array", "kvlist"])),  # deeper: see wire tests
    st.builds(lambda n, c: _string(c * n), st.integers(10_000, 200_000), st.sampled_from(["x", "é", "\x00", "{"])),
)

# Hypothesis favours zero bytes, and an all-zero id is invalid: valid ids end in a one.
_good16 = st.binary(min_size=15, max_size=15).map(lambda b: b + b"\x01")
_good8 = st.binary(min_size=7, max_size=7).map(lambda b: b + b"\x01")
ids16 = st.one_of(_good16, _good16, _good16, _good16, st.sampled_from([b"", bytes(16), b"\x01" * 8, b"\x01" * 17]))
ids8 = st.one_of(_good8, _good8, _good8, _good8, st.sampled_from([b"", bytes(8), b"\x01" * 4, b"\x01" * 16]))
timestamps = st.one_of(
    st.sampled_from([0, 1, 999, 2**63 - 1, 2**63, 2**64 - 1, 1_764_000_000_000_000_000]),
    st.integers(0, 2**64 - 1),
)
attribute_lists = st.lists(st.tuples(attribute_keys, any_values), max_size=24)


def _key_values(pairs: list[tuple[str, AnyValue]]) -> list[KeyValue]:
    return [KeyValue(key=k, value=v) for k, v in pairs]


@st.composite
def spans(draw: st.DrawFn) -> Span:
    start = draw(timestamps)
    end = draw(st.one_of(timestamps, st.just(start), st.integers(0, max(start, 1) - 1) if start else st.just(0)))
    span = Span(
        trace_id=draw(ids16),
        span_id=draw(ids8),
        parent_span_id=draw(st.one_of(st.just(b""), ids8)),
        name=draw(texts),
        kind=draw(st.integers(0, 9)),
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=_key_values(draw(attribute_lists)),
        status=Status(code=draw(st.integers(0, 5)), message=draw(texts)),
    )
    for _ in range(draw(st.integers(0, 2))):
        event = span.events.add(name=draw(st.sampled_from(["exception", "gen_ai.content.prompt", "x", ""])))
        event.time_unix_nano = draw(timestamps)
        event.attributes.extend(_key_values(draw(st.lists(st.tuples(attribute_keys, any_values), max_size=4))))
    for _ in range(draw(st.integers(0, 2))):
        span.links.add(trace_id=draw(ids16), span_id=draw(ids8))
    return span


@st.composite
def trace_requests(draw: st.DrawFn) -> bytes:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(_key_values(draw(st.lists(st.tuples(attribute_keys, any_values)))))
        for _ in range(draw(st.integers(1, 2))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.CopyFrom(
                InstrumentationScope(name=draw(st.sampled_from(["", "langfuse-sdk", "openinference", "ai", "x"])))
            )
            scope_spans.spans.extend(draw(st.lists(spans(), min_size=1, max_size=3)))
    return _wire(request, draw(rarely))


@st.composite
def log_requests(draw: st.DrawFn) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(_key_values(draw(st.lists(st.tuples(attribute_keys, any_values)))))
    scope_logs = resource_logs.scope_logs.add()
    for _ in range(draw(st.integers(1, 4))):
        record = LogRecord(
            time_unix_nano=draw(timestamps),
            observed_time_unix_nano=draw(timestamps),
            severity_number=draw(st.integers(0, 30)),
            severity_text=draw(texts),
            trace_id=draw(ids16),
            span_id=draw(ids8),
            attributes=_key_values(draw(attribute_lists)),
            event_name=draw(
                st.one_of(
                    texts,
                    st.sampled_from(
                        ["gen_ai.user.message", "gen_ai.choice", "gen_ai.system.message", "gen_ai.tool.message"]
                    ),
                )
            ),
        )
        if draw(st.booleans()):
            record.body.CopyFrom(draw(any_values))
        scope_logs.log_records.append(record)
    return _wire(request, draw(rarely))


def _wire(request: Any, corrupt: bool) -> bytes:
    """The request's protobuf encoding; with ``corrupt`` every marker string becomes invalid UTF-8."""
    encoded = request.SerializeToString()
    return encoded.replace(INVALID_UTF8_MARKER.encode(), _INVALID_UTF8) if corrupt else encoded


rarely = st.integers(0, 7).map(lambda n: n == 0)  # one input in eight carries invalid UTF-8


# OTLP/JSON: the right skeleton with values of every JSON type in every position.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_anything = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children)),
    max_leaves=8,
)
json_numbers = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.integers(0, 2**70).map(str),
    st.sampled_from(["1e3", "abc", "-1", "", "18446744073709551615", "18446744073709551616", "NaN", "Infinity"]),
    json_anything,
)
_bad_hex_ids = st.one_of(st.sampled_from(["", "not-hex", "0" * 32, "0" * 16, "abc", "é" * 16]), json_anything)
hex_trace_ids = st.one_of(*[_good16.map(bytes.hex)] * 4, _good8.map(bytes.hex), _bad_hex_ids)
hex_span_ids = st.one_of(*[_good8.map(bytes.hex)] * 4, _good16.map(bytes.hex), _bad_hex_ids)
json_any_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        texts.map(lambda s: {"stringValue": s}),
        texts.map(lambda s: {"stringValue": s}),
        st.integers(-(2**63), 2**63 - 1).map(lambda n: {"intValue": n}),
        json_numbers.map(lambda n: {"intValue": n}),
        st.one_of(st.floats(), st.sampled_from(["NaN", "Infinity", "-Infinity", "x"])).map(
            lambda x: {"doubleValue": x}
        ),
        json_anything.map(lambda b: {"boolValue": b}),
        st.one_of(st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()), texts).map(
            lambda b: {"bytesValue": b}
        ),
        st.just({}),
        json_anything,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda vs: {"arrayValue": {"values": vs}}),
        st.lists(st.fixed_dictionaries({"key": attribute_keys, "value": children}), max_size=3).map(
            lambda vs: {"kvlistValue": {"values": vs}}
        ),
    ),
    max_leaves=8,
)
_json_attribute_list = st.lists(st.fixed_dictionaries({"key": attribute_keys, "value": json_any_values}), max_size=8)
# Well-typed values (the protobuf strategy's, in the JSON mapping) so that many requests get past parsing.
_well_typed = any_values.map(json_format.MessageToDict)
_well_typed_list = st.lists(st.fixed_dictionaries({"key": attribute_keys, "value": _well_typed}), max_size=12)
json_attributes = st.one_of(_well_typed_list, _well_typed_list, _well_typed_list, _json_attribute_list, json_anything)
json_spans = st.fixed_dictionaries(
    {"traceId": hex_trace_ids, "spanId": hex_span_ids},
    optional={
        "parentSpanId": hex_span_ids,
        "name": st.one_of(texts, texts, texts, json_anything),
        "kind": st.one_of(st.integers(-3, 9), st.sampled_from(["SPAN_KIND_CLIENT", "nope"])),
        "startTimeUnixNano": json_numbers,
        "endTimeUnixNano": json_numbers,
        "attributes": json_attributes,
        "status": st.one_of(st.fixed_dictionaries({"code": json_numbers, "message": texts}), json_anything),
        "events": st.lists(
            st.fixed_dictionaries({"name": texts, "timeUnixNano": json_numbers, "attributes": json_attributes}),
            max_size=2,
        ),
    },
)


@st.composite
def json_trace_bodies(draw: st.DrawFn) -> bytes:
    spans_ = draw(st.one_of(*[st.lists(json_spans, min_size=1, max_size=4)] * 4, json_anything))
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": draw(json_attributes)},
                "scopeSpans": [{"scope": {"name": draw(texts)}, "spans": spans_}],
            }
        ]
    }
    text = orjson.dumps(document)
    if not draw(rarely):
        return text
    # A lone surrogate escape (valid JSON text, not valid Unicode) wherever a marker string went.
    return text.replace(INVALID_UTF8_MARKER.encode().replace(b"\x1b", b"\\u001b"), b"\\ud800\\udfff\\ud800xyz")


# ----------------------------------------------------------------------------- properties

_SPECS = {"traces": TRACES, "logs": LOGS}


@pytest.mark.parametrize("signal", ["traces", "logs"])
@pytest.mark.parametrize("encoding", [PROTOBUF, JSON], ids=["protobuf", "json"])
@fuzz_settings(100)
@given(body=st.binary(max_size=4096))
def test_random_bytes_are_refused_or_stored(pipeline: Pipeline, signal: str, encoding: str, body: bytes) -> None:
    pipeline.run(f"otlp:random_bytes:{signal}:{encoding.split('/')[-1]}", body, _SPECS[signal], encoding)


@fuzz_settings(80)
@given(body=trace_requests(), cut=st.integers(0, 64))
def test_truncated_trace_requests_are_refused_or_stored(pipeline: Pipeline, body: bytes, cut: int) -> None:
    pipeline.run("otlp:truncated_traces", body[: max(len(body) - cut, 0)], TRACES, PROTOBUF)


@fuzz_settings(80)
@given(body=trace_requests())
def test_hostile_trace_requests_are_refused_or_stored(pipeline: Pipeline, body: bytes) -> None:
    pipeline.run("otlp:structured_traces", body, TRACES, PROTOBUF)


@fuzz_settings(100)
@given(body=log_requests())
def test_hostile_log_requests_are_refused_or_stored(pipeline: Pipeline, body: bytes) -> None:
    pipeline.run("otlp:structured_logs", body, LOGS, PROTOBUF)


@fuzz_settings(150)
@given(body=json_trace_bodies())
def test_hostile_otlp_json_is_refused_or_stored(pipeline: Pipeline, body: bytes) -> None:
    pipeline.run("otlp:structured_json", body, TRACES, JSON)


# ----------------------------------------------------------------------------- fixed extremes


def test_one_hundred_thousand_attributes_map_and_store(pipeline: Pipeline) -> None:
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="wide", start_time_unix_nano=1)
    span.attributes.extend(KeyValue(key=f"k.{i}", value=AnyValue(int_value=i)) for i in range(100_000))
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    assert pipeline.run("otlp:fixed", request.SerializeToString(), TRACES, PROTOBUF) == "stored"


def test_ten_megabyte_attribute_value_maps_and_stores(pipeline: Pipeline) -> None:
    big = "y" * (10 * 1024 * 1024)
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="big", start_time_unix_nano=1)
    span.attributes.extend([KeyValue(key="input.value", value=_string(big)), KeyValue(key="x", value=_string(big))])
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    assert pipeline.run("otlp:fixed", request.SerializeToString(), TRACES, PROTOBUF) == "stored"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def deep_wire_request(depth: int, kind: str) -> bytes:
    """An ExportTraceServiceRequest whose one span has an attribute ``depth`` arrays/kvlists deep,
    encoded by hand (past the nesting the protobuf runtime lets Python build)."""
    value = _field(1, b"bottom")  # AnyValue.string_value
    for _ in range(depth):
        if kind == "array":  # AnyValue.array_value(5) -> ArrayValue.values(1)
            value = _field(5, _field(1, value))
        else:  # AnyValue.kvlist_value(6) -> KeyValueList.values(1) -> KeyValue{key(1), value(2)}
            value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="deep", start_time_unix_nano=1).SerializeToString()
    span += _field(9, _field(1, b"deep") + _field(2, value))  # Span.attributes
    return _field(1, _field(2, _field(2, span)))  # request.resource_spans -> scope_spans -> spans


def _deep_json(depth: int) -> bytes:
    """OTLP/JSON with one attribute ``depth`` arrays deep (built as text: orjson will not encode it)."""
    value = b'{"arrayValue":{"values":[' * depth + b'{"stringValue":"bottom"}' + b"]}}" * depth
    span = b'{"traceId":"%s","spanId":"%s","name":"deep","attributes":[{"key":"d","value":%s}]}' % (
        b"01" * 16,
        b"02" * 8,
        value,
    )
    return b'{"resourceSpans":[{"scopeSpans":[{"spans":[%s]}]}]}' % span


@pytest.mark.parametrize("depth", [10, 40, 50, 100, 1000, 20_000])
@pytest.mark.parametrize("kind", ["array", "kvlist"])
def test_deeply_nested_any_value_is_refused_or_stored(pipeline: Pipeline, depth: int, kind: str) -> None:
    outcome = pipeline.run("otlp:deep_nesting", deep_wire_request(depth, kind), TRACES, PROTOBUF)
    if depth == 10:
        assert outcome == "stored"
    elif depth >= 50:
        assert outcome == "refused"  # the protobuf runtime's nesting limit (100 messages)


@pytest.mark.parametrize("depth", [10, 25, 50, 100, 1000, 20_000])
def test_deeply_nested_otlp_json_is_refused_or_stored(pipeline: Pipeline, depth: int) -> None:
    outcome = pipeline.run("otlp:deep_nesting", _deep_json(depth), TRACES, JSON)
    assert outcome == ("stored" if depth <= 25 else "refused")


# ----------------------------------------------------------------------------- exhaustive sweep

EXTREME_VALUES = [
    *(_string(text) for text in TRICKY_STRINGS if text != INVALID_UTF8_MARKER),
    *(AnyValue(int_value=n) for n in (-1, 0, 2**31, 2**53 + 1, 2**63 - 1, -(2**63))),
    *(AnyValue(double_value=x) for x in (-1.0, 0.5, 1e15, 1e19, 1e300, float("nan"), float("inf"), -float("inf"))),
    AnyValue(bool_value=True),
    AnyValue(bytes_value=b"\xff\x00"),
    _array([_string("a"), AnyValue(int_value=-3), _kvlist([("k", AnyValue(double_value=float("nan")))])]),
    _kvlist([("input", AnyValue(int_value=2**63 - 1)), ("output", _string("x")), ("", AnyValue())]),
    AnyValue(),
]
# What makes each dialect recognise a span: its own marker attributes (and scopes, below).
DIALECT_CONTEXTS = [
    {},
    {"gen_ai.operation.name": _string("chat"), "gen_ai.system": _string("openai")},
    {"openinference.span.kind": _string("LLM")},
    {"langfuse.observation.type": _string("generation")},
    {"ai.operationId": _string("ai.generateText.doGenerate"), "traceloop.span.kind": _string("workflow")},
    {"mlflow.spanType": _string("CHAT_MODEL"), "logfire.span_type": _string("span")},
]


_SCOPES = ("langfuse-sdk", "ai", "openinference.instrumentation.openai")


def dialect_sweep(
    per_request: int, keep: Callable[[int, int], bool]
) -> Iterator[tuple[list[str], ExportTraceServiceRequest]]:
    """Requests of ``per_request`` keys each: every key the dialects read, with every extreme
    value (on spans, root and child, and once on their resource), under each dialect context
    ``keep(key_number, variant)`` allows."""
    for first in range(0, len(DIALECT_KEYS), per_request):
        keys = DIALECT_KEYS[first : first + per_request]
        request = ExportTraceServiceRequest()
        for key_index, key in enumerate(keys):
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.append(KeyValue(key=key, value=EXTREME_VALUES[key_index]))
            for variant, context_attrs in enumerate(DIALECT_CONTEXTS):
                if not keep(first + key_index, variant):
                    continue
                scope_spans = resource_spans.scope_spans.add()
                scope_spans.scope.name = _SCOPES[(key_index + variant) % len(_SCOPES)]
                for index, value in enumerate(EXTREME_VALUES):
                    span = scope_spans.spans.add(
                        trace_id=bytes([variant + 1, key_index + 1]) * 8,
                        span_id=bytes([index + 1, variant + 1, key_index + 1]) + b"\x01" * 5,
                        parent_span_id=b"\x09" * 8 if index % 2 else b"",
                        name="sweep",
                        start_time_unix_nano=1_764_000_000_000_000_000,
                        end_time_unix_nano=1_764_000_001_000_000_000,
                    )
                    span.attributes.extend(KeyValue(key=k, value=v) for k, v in context_attrs.items())
                    span.attributes.append(KeyValue(key=key, value=value))
        yield keys, request


def test_every_dialect_key_with_every_extreme_value(pipeline: Pipeline) -> None:
    """Deterministic sweep: each key the dialects read, with each extreme value, under each dialect
    (on the span and on its resource), a few keys per request."""
    per_request = 12

    def keep(key_number: int, variant: int) -> bool:
        # The default run: no dialect context and one of the others, in turn.
        return long_campaign() or variant in (
            0,
            (key_number // per_request + key_number % per_request) % len(DIALECT_CONTEXTS),
        )

    for keys, request in dialect_sweep(per_request, keep):
        assert pipeline.run("otlp:dialect_sweep", request.SerializeToString(), TRACES, PROTOBUF) == "stored", keys
