"""Reading an encoded OTLP ``Span`` straight from its bytes.

Through protobuf, every field the mapper reads is a lookup on a message wrapper, and every
attribute a wrapper (or a bytes object) of its own. The collector decodes trace requests with
their spans left encoded (see :mod:`collector.wire`); :func:`read_span` reads the form SDKs
write — each field at most once, attributes in their plain form (:mod:`semconv.keyvalue`) —
into a :class:`SpanData`: the fields the mapper reads, attributes already a dict.

Anything else goes to protobuf (:func:`span_data` decodes the span with ``Span.FromString`` and
takes its fields with :func:`from_message`): a span with events or links, a field repeated or
unknown, an enum value the mapper has no name for, an attribute in another form, or damage.
Protobuf then gives the same span it always did, or the ``DecodeError``.

With the compiled mapper, spans are read by the same reader written in C (``_encoded_span.c``,
about a fifth of a worker's instructions before); :func:`_read_span` is its specification.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from semconv.keyvalue import read_key_value, varint
from semconv.values import attributes as decode_attributes

# Field numbers of opentelemetry.proto.trace.v1.Span and Span.Status.
_TRACE_ID: Final = 1
_SPAN_ID: Final = 2
_TRACE_STATE: Final = 3
_PARENT_SPAN_ID: Final = 4
_NAME: Final = 5
_KIND: Final = 6
_START: Final = 7
_END: Final = 8
_ATTRIBUTES: Final = 9
_DROPPED_ATTRIBUTES: Final = 10
_DROPPED_EVENTS: Final = 12
_DROPPED_LINKS: Final = 14
_STATUS: Final = 15
_FLAGS: Final = 16
_STATUS_MESSAGE: Final = 2
_STATUS_CODE: Final = 3
# Wire types.
_VARINT: Final = 0
_FIXED64: Final = 1
_LENGTH: Final = 2
_FIXED32: Final = 5

_MAX_KIND: Final = 5  # SPAN_KIND_CONSUMER
_MAX_STATUS_CODE: Final = 2  # STATUS_CODE_ERROR


class SpanStatus:
    """``Span.status`` as the mapper reads it."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message


NO_STATUS: Final = SpanStatus(0, "")  # never changed: shared by every span without a status


class SpanData:
    """The fields of a ``Span`` the mapper reads, under protobuf's names; ``attributes`` is a dict.

    ``events`` and ``links`` are protobuf's (a span read from its encoding has none).
    """

    def __init__(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes,
        name: str,
        kind: int,
        start_time_unix_nano: int,
        end_time_unix_nano: int,
        attributes: dict[str, Any],
        status: SpanStatus,
        events: Any = (),
        links: Any = (),
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.name = name
        self.kind = kind
        self.start_time_unix_nano = start_time_unix_nano
        self.end_time_unix_nano = end_time_unix_nano
        self.attributes = attributes
        self.status = status
        self.events = events
        self.links = links


def from_message(span: Any) -> SpanData:
    """The fields of a protobuf ``Span`` (one :func:`read_span` leaves to protobuf)."""
    status = span.status
    return SpanData(
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.name,
        span.kind,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        decode_attributes(span.attributes),
        SpanStatus(status.code, status.message) if status.code or status.message else NO_STATUS,
        span.events,
        span.links,
    )


def span_data(item: Any) -> SpanData:
    """The :class:`SpanData` of one item of ``ScopeSpans.spans``: an encoded span
    (:data:`collector.wire.TraceRequest`), read from its bytes or else through protobuf, or a
    protobuf ``Span``. A damaged encoding raises protobuf's ``DecodeError``, as decoding it would.
    """
    if type(item) is bytes:
        return read_span(item) or from_message(Span.FromString(item))
    return from_message(item)


def _c_function(name: str) -> Any:
    """A function of the C reader ``_encoded_span``, when ``spanfuse build-mapper`` built it and
    the build is loaded (see collector/native.py); else None."""
    try:
        from semconv import _encoded_span
    except ImportError:
        return None
    return getattr(_encoded_span, name)


_C_READ_SPAN: Final[Callable[[bytes, Callable[[bytes, int, int, dict[str, Any]], bool]], Any] | None] = _c_function(
    "read_span"
)
# The collector's check of encoded spans: (index, problem) of each span with unusable ids (problem
# indexes ID_PROBLEMS) or that it cannot vouch for (-1: protobuf must decode it). It checks what
# read_span reads, UTF-8 included, and events and links, and makes nothing.
C_SPAN_PROBLEMS: Final[Callable[[Iterable[bytes]], list[tuple[int, int]]] | None] = _c_function("span_problems")
ID_PROBLEMS: Final = ("", "invalid trace id", "invalid span id", "invalid parent span id")


def read_span(data: bytes) -> SpanData | None:
    """The span encoded in ``data`` in the form SDKs write; None for any other form or damage."""
    if _C_READ_SPAN is not None:
        fields = _C_READ_SPAN(data, read_key_value)
        if fields is None:
            return None
        code = fields[8]
        return SpanData(
            fields[0],
            fields[1],
            fields[2],
            fields[3],
            fields[4],
            fields[5],
            fields[6],
            fields[7],
            NO_STATUS if code < 0 else SpanStatus(code, fields[9]),
        )
    try:
        return _read_span(data)
    except (IndexError, ValueError):  # cut short, invalid UTF-8, an overlong varint: protobuf says
        return None


def _read_span(data: bytes) -> SpanData | None:
    end = len(data)
    pos = 0
    seen = 0  # bit per singular field: a field met twice goes to protobuf
    trace_id = span_id = parent_span_id = b""
    name = ""
    kind = start = stop_time = 0
    status = NO_STATUS
    attributes: dict[str, Any] = {}
    while pos < end:
        tag, pos = varint(data, pos)
        field = tag >> 3
        wire = tag & 7
        if field != _ATTRIBUTES:
            if field > _FLAGS or seen & (1 << field):
                return None
            seen |= 1 << field
        if wire == _LENGTH:
            length, start_at = varint(data, pos)
            pos = start_at + length
            if pos > end:
                return None
            if field == _ATTRIBUTES:
                if not read_key_value(data, start_at, pos, attributes):
                    return None
            elif field == _TRACE_ID:
                trace_id = data[start_at:pos]
            elif field == _SPAN_ID:
                span_id = data[start_at:pos]
            elif field == _PARENT_SPAN_ID:
                parent_span_id = data[start_at:pos]
            elif field == _NAME:
                name = data[start_at:pos].decode()
            elif field == _TRACE_STATE:
                data[start_at:pos].decode()  # not mapped, but protobuf refuses invalid UTF-8 in it
            elif field == _STATUS:
                read = _read_status(data, start_at, pos)
                if read is None:
                    return None
                status = read
            else:
                return None  # events, links, or a field of another wire type
        elif wire == _VARINT:
            value, pos = varint(data, pos)
            if field == _KIND and value <= _MAX_KIND:
                kind = value
            elif field not in (_DROPPED_ATTRIBUTES, _DROPPED_EVENTS, _DROPPED_LINKS):
                return None
        elif wire == _FIXED64 and field in (_START, _END):
            if pos + 8 > end:
                return None
            value = _fixed64(data, pos)
            pos += 8
            if field == _START:
                start = value
            else:
                stop_time = value
        elif wire == _FIXED32 and field == _FLAGS:
            pos += 4
            if pos > end:
                return None
        else:
            return None
    return SpanData(trace_id, span_id, parent_span_id, name, kind, start, stop_time, attributes, status)


def _fixed64(data: bytes, pos: int) -> int:
    """The little-endian unsigned 64-bit integer at ``pos`` (``pos + 8 <= len(data)``).

    Byte by byte in two halves that stay small ints: ``int.from_bytes`` with its keyword
    argument is a generic method call, several times the cost, twice per span.
    """
    low = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16 | data[pos + 3] << 24
    high = data[pos + 4] | data[pos + 5] << 8 | data[pos + 6] << 16 | data[pos + 7] << 24
    return high << 32 | low


def _read_status(data: bytes, pos: int, end: int) -> SpanStatus | None:
    code = 0
    message = ""
    seen = 0
    while pos < end:
        tag, pos = varint(data, pos)
        if tag == (_STATUS_MESSAGE << 3 | _LENGTH) and not seen & 1:
            seen |= 1
            length, start_at = varint(data, pos)
            pos = start_at + length
            if pos > end:
                return None
            message = data[start_at:pos].decode()
        elif tag == (_STATUS_CODE << 3 | _VARINT) and not seen & 2:
            seen |= 2
            code, pos = varint(data, pos)
            if code > _MAX_STATUS_CODE:
                return None
        else:
            return None
    return SpanStatus(code, message)
