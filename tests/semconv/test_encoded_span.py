"""semconv.encoded_span and collector.wire: spans read from their encoding map exactly as protobuf's do."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from semconv import encoded_span
from semconv.encoded_span import SpanData, from_message, read_span
from tests.fuzz.test_fuzz_otlp import EXTREME_VALUES as _EXTREMES
from tests.semconv.test_keyvalue import _length_delimited, _nested, _values, map_both_ways, request_of
from tests.test_native_mapper import needs_build


def test_a_plain_span_is_read_without_protobuf():
    span = Span(
        trace_id=bytes(range(16)),
        span_id=b"\x01" * 8,
        parent_span_id=b"\x02" * 8,
        name="chat gpt-4o ✓",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=2**64 - 1,
        end_time_unix_nano=1,
        attributes=[KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o"))],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        trace_state="k=v",
        flags=0x101,
        dropped_attributes_count=3,
    )
    read = read_span(span.SerializeToString())
    assert isinstance(read, SpanData)
    assert (read.trace_id, read.span_id, read.parent_span_id) == (span.trace_id, span.span_id, span.parent_span_id)
    assert (read.name, read.kind, read.start_time_unix_nano, read.end_time_unix_nano) == (
        "chat gpt-4o ✓",
        3,
        2**64 - 1,
        1,
    )
    assert read.attributes == {"gen_ai.request.model": "gpt-4o"}
    assert (read.status.code, read.status.message) == (2, "boom")
    assert (read.events, read.links) == ((), ())
    message = from_message(span)  # a span protobuf decoded: the same fields
    for name in ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano", "end_time_unix_nano"):
        assert getattr(message, name) == getattr(read, name), name
    assert (message.attributes, message.status.code, message.status.message) == (read.attributes, 2, "boom")
    empty = read_span(b"")
    assert empty is not None and (empty.name, empty.kind, empty.status.code, empty.attributes) == ("", 0, 0, {})


_NAME = _length_delimited(5, b"n")
# Spans the readers leave to protobuf (None), each the smallest of its kind.
_UNUSUAL = {
    "events": Span(name="n", events=[Span.Event(name="e")]).SerializeToString(),
    "links": Span(name="n", links=[Span.Link(trace_id=b"t" * 16)]).SerializeToString(),
    "a field twice": _NAME + _NAME,
    "an unknown field": _NAME + b"\xa0\x01\x01",  # field 20, varint
    "start time as a varint": _NAME + b"\x38\x05",
    "a kind without a name": Span(kind=9).SerializeToString(),
    "a status code without a name": Span(status=Status(code=7)).SerializeToString(),
    "a status field twice": _length_delimited(15, b"\x18\x01\x18\x02"),
    "an unknown status field": _length_delimited(15, b"\x20\x01"),
    "an attribute in another form": _length_delimited(9, b"\x12\x00" + b"\x0a\x01k"),
    "a group": _NAME + b"\x1b\x1c",
    "invalid UTF-8 in the name": _length_delimited(5, b"\xff"),
    "invalid UTF-8 in the trace state": _length_delimited(3, b"\xc3\x28"),
    "cut short": Span(name="name").SerializeToString()[:-1],
    "an eleven-byte varint": b"\x30" + b"\xff" * 10 + b"\x01",
}


def test_other_forms_are_left_to_protobuf():
    for label, encoded in _UNUSUAL.items():
        assert read_span(encoded) is None, label
        mine, theirs = map_both_ways(request_of(encoded))
        assert mine == theirs, label
    assert map_both_ways(request_of(_length_delimited(5, b"\xff")))[0] == "DecodeError"


_ids = st.binary(max_size=20)
_times = st.integers(0, 2**64 - 1)
_statuses = st.one_of(
    st.none(),
    st.builds(lambda code, message: Status(code=code, message=message), st.integers(0, 3), st.text(max_size=6)),
)


@st.composite
def _spans(draw: st.DrawFn) -> bytes:
    span = Span(
        trace_id=draw(_ids),
        span_id=draw(_ids),
        parent_span_id=draw(st.one_of(st.just(b""), _ids)),
        name=draw(st.text(max_size=8)),
        kind=draw(st.integers(0, 6)),
        start_time_unix_nano=draw(_times),
        end_time_unix_nano=draw(st.one_of(st.just(0), _times)),
        trace_state=draw(st.text(max_size=4)),
        flags=draw(st.integers(0, 2**32 - 1)),
        dropped_attributes_count=draw(st.integers(0, 5)),
        attributes=[
            KeyValue(key=k, value=v)
            for k, v in draw(
                st.lists(st.tuples(st.sampled_from(["user.id", "session.id", "gen_ai.request.model", "x"]), _values))
            )
        ],
    )
    status = draw(_statuses)
    if status is not None:
        span.status.CopyFrom(status)
    if draw(st.integers(0, 9)) == 0:
        span.events.add(name="exception").attributes.add(key="exception.message", value=AnyValue(string_value="m"))
    if draw(st.integers(0, 9)) == 0:
        link = span.links.add(trace_id=draw(_ids), span_id=draw(_ids), trace_state=draw(st.text(max_size=3)), flags=1)
        link.attributes.add(key="k", value=draw(_values))
    return span.SerializeToString()


@settings(max_examples=300, deadline=None)
@given(st.lists(_spans(), min_size=1, max_size=3))
def test_any_spans_map_as_protobuf_maps_them(spans):
    mine, theirs = map_both_ways(request_of(*spans))
    assert mine == theirs


@settings(max_examples=200, deadline=None)
@given(_spans(), st.integers(0, 2**16), st.binary(min_size=1, max_size=3))
def test_damaged_spans_fail_or_map_as_protobuf_does(span, where, noise):
    # Damage inside a span whose length still adds up: the request decodes, the span may not.
    at = where % (len(span) + 1)
    mine, theirs = map_both_ways(request_of(span[:at] + noise + span[at + len(noise) :]))
    assert mine == theirs


# With the compiled mapper, read_span is the C reader (_encoded_span.c); _read_span, the Python
# reader, is its specification. ``make test`` requires the build (SPANFUSE_REQUIRE_NATIVE=1).
needs_c_reader = needs_build


def _fields(span: SpanData | None) -> str:
    """Everything a reading gives, as repr (NaN equals NaN, True differs from 1)."""
    if span is None:
        return "None"
    names = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano", "end_time_unix_nano")
    status = (span.status.code, span.status.message)
    return repr((*(getattr(span, name) for name in names), span.attributes, status, span.events, span.links))


def _both_readers(data: bytes) -> tuple[str, str]:
    """What read_span (the C reader) and the Python reader give for ``data``."""
    assert encoded_span._C_READ_SPAN is not None, "make test builds the C reader: it should have been loaded"
    try:
        python: Any = encoded_span._read_span(data)
    except (IndexError, ValueError):
        python = None
    return _fields(read_span(data)), _fields(python)


@needs_c_reader
@settings(max_examples=400, deadline=None)
@given(_spans(), st.integers(0, 2**16), st.binary(max_size=3))
def test_the_c_reader_reads_any_span_as_the_python_reader_does(span, where, noise):
    at = where % (len(span) + 1)
    mine, spec = _both_readers(span[:at] + noise + span[at + len(noise) :])
    assert mine == spec


@needs_c_reader
def test_the_c_reader_agrees_on_every_unusual_form():
    cases = [
        *_UNUSUAL.values(),
        _length_delimited(15, b"\x12\x01x\x18\x03"),
        _length_delimited(15, b"\x12\x02\xc3\x28"),
        _length_delimited(9, b"\x0a\x02\xff\xfe"),  # a key of invalid UTF-8
        _length_delimited(9, b"\x0a\x01k\x12\x04\x0a\x02\xc3\x28"),  # a value of invalid UTF-8
        _length_delimited(9, b"\x0a\x01k\x12\x0c\x18" + b"\xff" * 10 + b"\x01"),  # an eleven-byte int
        _length_delimited(9, b"\x0a\x01k\x12\x09\x21" + b"\x00" * 8),  # a double cut short
        _length_delimited(9, b"\x0a\x01k\x12\x02\x3a\x00"),  # empty bytes: read in Python
        _length_delimited(9, b"\x0a\x01k\x12\x02\x42\x00"),  # an unknown member
        b"\x39" + b"\x01" * 7,  # a start time cut short
        b"\x85\x01" + b"\x01" * 3,  # flags cut short
        KeyValue(key="k", value=AnyValue(int_value=-(2**63))).SerializeToString(),  # an attribute as a span
    ]
    deep = [_nested(depth) for depth in (31, 32, 33, 40)]
    deep.append(AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(bytes_value=b"b")])))
    for value in [*_EXTREMES, *deep]:
        cases.append(_length_delimited(9, KeyValue(key="k", value=value).SerializeToString()))
    for data in cases:
        for cut in range(len(data) + 1):
            mine, spec = _both_readers(data[:cut])
            assert mine == spec, data[:cut]


@needs_c_reader
def test_the_c_readers_key_table_stays_right_past_its_bounds():
    # 5,000 distinct keys (the table holds 2,048 before it starts over), some longer than it keeps.
    keys = [f"attribute.{index}" * (1 + index % 40) for index in range(5000)]
    for start in range(0, len(keys), 50):
        chunk = keys[start : start + 50]
        span = Span(name="s", attributes=[KeyValue(key=k, value=AnyValue(string_value=k[::-1])) for k in chunk])
        data = span.SerializeToString()
        mine, spec = _both_readers(data)
        assert mine == spec
        read = read_span(data)
        assert read is not None and list(read.attributes) == chunk


def _problem_of(data: bytes) -> int:
    """What the collector's C check says of one encoded span (0: nothing wrong)."""
    assert encoded_span.C_SPAN_PROBLEMS is not None, "make test builds the C reader: it should have been loaded"
    found = encoded_span.C_SPAN_PROBLEMS([data])
    assert len(found) <= 1 and all(index == 0 for index, _ in found)
    return found[0][1] if found else 0


@needs_c_reader
@settings(max_examples=400, deadline=None)
@given(_spans(), st.integers(0, 2**16), st.binary(max_size=3), st.sampled_from([b"", b"\0" * 16, b"t" * 15]))
def test_the_c_check_passes_what_the_c_reader_reads_and_nothing_protobuf_refuses(span, where, noise, trace_id):
    # Checked as the collector checks a request: it must pass every span a worker reads in C (or
    # the check would cost more than protobuf's), never one protobuf refuses, and judge ids as
    # the collector's own rules do. Spans with events or links it checks too (workers read those
    # through protobuf).
    from collector.ingest import _span_problem

    at = where % (len(span) + 1)
    data = span[:at] + noise + span[at + len(noise) :]
    if where % 3 == 0:
        data += _length_delimited(1, trace_id)  # a second trace id: another form; the first may be bad
    problem = _problem_of(data)
    if read_span(data) is not None:
        assert problem >= 0
    if problem >= 0:
        assert (encoded_span.ID_PROBLEMS[problem] or None) == _span_problem(Span.FromString(data))


def _utf8_cases() -> list[bytes]:
    """Every one- and two-byte sequence, and every lead byte of a longer one before the second
    byte's edges and continuation bytes' edges."""
    cases = [bytes([a, b]) for a in range(256) for b in range(256)]
    edges = (0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF)
    for lead in range(0xC0, 0x100):
        for second in edges:
            for rest in ((0x80,), (0xBF,), (0x7F,), (0xC0,), (0x80, 0x80), (0xBF, 0xBF), (0x80, 0x7F), (0x80, 0xC0)):
                cases.append(bytes([lead, second, *rest]))
                cases.append(b"abcdefgh" + bytes([lead, second, *rest]) + b"ijklmnop")
    return cases


@needs_c_reader
def test_the_c_check_takes_utf8_as_python_does():
    span = Span(trace_id=b"t" * 16, span_id=b"s" * 8).SerializeToString()
    cases = _utf8_cases()
    found = dict(encoded_span.C_SPAN_PROBLEMS([span + _length_delimited(5, raw) for raw in cases]))
    for index, raw in enumerate(cases):
        try:
            raw.decode()
        except UnicodeDecodeError:
            assert found.get(index) == -1, raw
        else:
            assert index not in found, raw


@needs_c_reader
def test_the_c_check_names_each_id_problem():
    good = {"trace_id": b"t" * 16, "span_id": b"s" * 8}
    cases = [
        (Span(**good), 0),
        (Span(**good, parent_span_id=b"p" * 8), 0),
        (Span(span_id=b"s" * 8), 1),
        (Span(trace_id=bytes(16), span_id=b"s" * 8), 1),
        (Span(trace_id=b"t" * 17, span_id=b"s" * 8), 1),
        (Span(trace_id=b"t" * 16, span_id=bytes(8)), 2),
        (Span(trace_id=b"t" * 16, span_id=b"s" * 7), 2),
        (Span(**good, parent_span_id=b"p" * 9), 3),
        (Span(**good, events=[Span.Event(name="e")], links=[Span.Link(trace_id=b"t" * 16, flags=1)]), 0),
        (Span(trace_id=b"t" * 16, events=[Span.Event(name="e", dropped_attributes_count=1)]), 2),
        (Span(**good, links=[Span.Link(dropped_attributes_count=2)]), 0),
        (Span(**good).SerializeToString() + _length_delimited(11, b"\x2a\x00"), -1),  # an unknown event field
        (Span(**good).SerializeToString() + _length_delimited(11, b"\x12\x01\xff"), -1),  # a name of bad UTF-8
        (Span(**good).SerializeToString() + _length_delimited(13, b"\x35\x01"), -1),  # flags cut short
        (Span(**good, kind=7), -1),  # read by protobuf
    ]
    spans = [span if isinstance(span, bytes) else span.SerializeToString() for span, _ in cases]
    assert encoded_span.C_SPAN_PROBLEMS(spans) == [(i, code) for i, (_, code) in enumerate(cases) if code]
    with pytest.raises(TypeError):
        encoded_span.C_SPAN_PROBLEMS([spans[0], "not bytes"])
