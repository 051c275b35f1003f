"""semconv.keyvalue and collector.wire: span attributes read from their encoding give exactly what protobuf gives."""

from __future__ import annotations

import contextlib
import math

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.wire import TraceRequest
from semconv.keyvalue import read_key_value
from semconv.mapping import map_traces_request
from tests.fuzz.test_fuzz_otlp import EXTREME_VALUES, dialect_sweep
from tests.test_native_mapper import _bench_requests


def key_value(raw: bytes) -> tuple[str, object] | None:
    """The one (key, value) ``raw`` encodes, or None when it is not in the plain form."""
    into: dict[str, object] = {}
    if not read_key_value(raw, 0, len(raw), into):
        return None
    ((key, value),) = into.items()
    return key, value


def _length_delimited(field: int, payload: bytes) -> bytes:
    size, prefix = len(payload), bytearray([field << 3 | 2])
    while size >= 0x80:
        prefix.append(size & 0x7F | 0x80)
        size >>= 7
    prefix.append(size)
    return bytes(prefix) + payload


def request_of(*spans: bytes) -> bytes:
    """An encoded trace request holding the encoded ``spans``."""
    request = TraceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    scope.scope.name = "tests"
    scope.spans.extend(spans)
    return request.SerializeToString()


def map_both_ways(payload: bytes) -> tuple[str, str]:
    """repr of the rows ``payload`` maps to as the pipeline decodes it (collector.wire.TraceRequest:
    spans read from their encoding) and through the real request type; "DecodeError" where
    decoding fails. Compared as repr, NaN equals NaN and True differs from 1."""

    def outcome(request_type: type) -> str:
        try:
            mapped = map_traces_request(request_type.FromString(payload))
        except DecodeError:
            return "DecodeError"
        return repr((mapped.observations, mapped.traces, mapped.warnings))

    return outcome(TraceRequest), outcome(ExportTraceServiceRequest)


def _both_ways(raw: list[bytes]) -> tuple[str, str]:
    """:func:`map_both_ways` of a span whose attributes are ``raw`` (encoded KeyValues, maybe damaged)."""
    span = Span(trace_id=b"t" * 16, span_id=b"s" * 8, name="s").SerializeToString()
    return map_both_ways(request_of(span + b"".join(_length_delimited(9, item) for item in raw)))


@pytest.mark.parametrize("value", EXTREME_VALUES, ids=range(len(EXTREME_VALUES)))
def test_every_extreme_value_reads_as_protobuf_reads_it(value):
    raw = KeyValue(key="k", value=value).SerializeToString()
    mine, theirs = _both_ways([raw])
    assert mine == theirs


def test_the_plain_encodings_are_read_without_protobuf():
    cases = {
        "text": (AnyValue(string_value="héllo"), "héllo"),
        "empty text": (AnyValue(string_value=""), ""),
        "negative": (AnyValue(int_value=-(2**63)), -(2**63)),
        "large": (AnyValue(int_value=2**63 - 1), 2**63 - 1),
        "half": (AnyValue(double_value=0.5), 0.5),
        "false": (AnyValue(bool_value=False), False),
        "nothing": (AnyValue(), None),
        "bytes": (AnyValue(bytes_value=b"\xff\x00"), "/wA="),
        "empty list": (AnyValue(array_value=ArrayValue()), []),
        "list": (
            AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(), AnyValue(int_value=-1)])),
            ["a", None, -1],
        ),
        "map": (
            AnyValue(
                kvlist_value=KeyValueList(
                    values=[
                        KeyValue(key="x", value=AnyValue(bool_value=True)),
                        KeyValue(key="y"),
                        KeyValue(key="x", value=AnyValue(array_value=ArrayValue(values=[AnyValue(double_value=2.0)]))),
                    ]
                )
            ),
            {"x": [2.0], "y": None},
        ),
    }
    for key, (value, expected) in cases.items():
        assert key_value(KeyValue(key=key, value=value).SerializeToString()) == (key, expected)
    assert key_value(KeyValue(key="no value").SerializeToString()) == ("no value", None)
    assert math.isnan(key_value(KeyValue(key="n", value=AnyValue(double_value=math.nan)).SerializeToString())[1])


def _nested(depth: int) -> AnyValue:
    value = AnyValue(string_value="bottom")
    for _ in range(depth):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    return value


def test_other_encodings_are_left_to_protobuf():
    text = AnyValue(string_value="v").SerializeToString()
    key = KeyValue(key="k").SerializeToString()
    value = b"\x12" + bytes([len(text)]) + text
    unusual = {
        "value before key": value + key,
        "key twice": key + KeyValue(key="j").SerializeToString() + value,
        "value twice (merged)": key + value + b"\x12\x02\x18\x05",
        "unknown field": key + value + b"\x18\x01",
        "two oneof members": key + b"\x12\x05\x0a\x01x\x18\x07",
        "list item not an AnyValue": key + b"\x12\x04\x2a\x02\x12\x00",
        "map entry value before key": key + b"\x12\x08\x32\x06\x0a\x04\x12\x00\x0a\x00",
        "an eleven-byte varint": key + b"\x12\x0c\x18" + b"\xff" * 10 + b"\x01",
        "deeper than 32 lists": KeyValue(key="deep", value=_nested(40)).SerializeToString(),
    }
    for name, raw in unusual.items():
        with contextlib.suppress(IndexError, ValueError):  # the span reader hands these to protobuf too
            assert key_value(raw) is None, name
        mine, theirs = _both_ways([raw])
        assert mine == theirs, name


def test_damaged_encodings_fail_as_protobuf_fails():
    good = KeyValue(key="key", value=AnyValue(string_value="value")).SerializeToString()
    for cut in range(1, len(good)):
        mine, theirs = _both_ways([good[:cut]])
        assert mine == theirs, cut
    for bad in (b"\x0a\x02\xff\xfe", b"\x0a\x01k\x12\x04\x0a\x02\xc3\x28", b"\x0a\x05k"):
        assert _both_ways([bad]) == ("DecodeError", "DecodeError")


_values = st.recursive(
    st.one_of(
        st.builds(lambda s: AnyValue(string_value=s), st.text(max_size=8)),
        st.builds(lambda n: AnyValue(int_value=n), st.integers(-(2**63), 2**63 - 1)),
        st.builds(lambda x: AnyValue(double_value=x), st.floats()),
        st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
        st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=4)),
        st.just(AnyValue()),
    ),
    lambda inner: st.one_of(
        st.builds(lambda items: AnyValue(array_value=ArrayValue(values=items)), st.lists(inner, max_size=3)),
        st.builds(
            lambda items: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in items])),
            st.lists(st.tuples(st.text(max_size=4), inner), max_size=3),
        ),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=6), _values), max_size=6), st.lists(st.binary(max_size=12), max_size=2))
def test_any_key_values_and_any_bytes_read_as_protobuf_reads_them(pairs, noise):
    raw = [KeyValue(key=key, value=value).SerializeToString() for key, value in pairs] + noise
    mine, theirs = _both_ways(raw)
    assert mine == theirs


def test_requests_map_to_the_same_rows_either_way():
    requests = [*_bench_requests(), *(r.SerializeToString() for _, r in dialect_sweep(16, lambda k, v: v < 3))]
    for payload in requests:
        mine, theirs = map_both_ways(payload)
        assert mine == theirs != "DecodeError"


def test_the_pipeline_refuses_what_the_real_request_refuses():
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="s", trace_id=b"t" * 16)
    payload = request.SerializeToString()
    for cut in range(1, len(payload)):
        try:
            ExportTraceServiceRequest.FromString(payload[:cut])
        except DecodeError:
            with pytest.raises(DecodeError):
                map_traces_request(TraceRequest.FromString(payload[:cut]))
