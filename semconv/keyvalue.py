"""Reading an encoded OTLP ``KeyValue`` straight from its bytes.

Reading a span's attributes through protobuf objects costs two message wrappers and three
field lookups per attribute: the largest single part of mapping a span. The collector decodes
requests with spans left encoded (see :mod:`collector.wire` and :mod:`semconv.encoded_span`);
:func:`key_value_at` reads an attribute in the plain form SDKs write (each field once, in field
order, every value one member of the ``AnyValue`` oneof), and anything else (fields out of
order, repeated or unknown) goes to protobuf.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Final

_DOUBLE = struct.Struct("<d")
_UINT64: Final = (1 << 64) - 1
_INT64_SIGN: Final = 1 << 63
_MAX_DEPTH: Final = 32  # deeper values are left to protobuf (which bounds nesting itself)

# Tags (field number << 3 | wire type) of the plain encodings. Final: compiled as constants.
_KEY: Final = 0x0A  # KeyValue.key, length-delimited
_VALUE: Final = 0x12  # KeyValue.value (AnyValue), length-delimited
_ITEM: Final = 0x0A  # ArrayValue.values / KeyValueList.values, length-delimited
_STRING: Final = 0x0A  # AnyValue.string_value
_BOOL: Final = 0x10  # AnyValue.bool_value, varint
_INT: Final = 0x18  # AnyValue.int_value, varint
_FLOAT: Final = 0x21  # AnyValue.double_value, fixed 64 bits
_ARRAY: Final = 0x2A  # AnyValue.array_value, length-delimited
_MAP: Final = 0x32  # AnyValue.kvlist_value, length-delimited
_BYTES: Final = 0x3A  # AnyValue.bytes_value, length-delimited


class _Other:
    """Marks an encoding that is not the plain form (protobuf must decode it)."""


_OTHER: Final = _Other()


def key_value_at(data: bytes, pos: int, end: int) -> tuple[str, Any] | None:
    """(key, value) of the ``KeyValue`` encoded in ``data[pos:end]`` in its plain form; None for
    any other form. No copy of the encoding is made.

    The value is what :func:`semconv.values.any_value` gives for it. Raises IndexError or
    ValueError on bytes that may not be a ``KeyValue`` at all (cut short, invalid UTF-8): the
    caller's protobuf decoding says what is wrong, if anything.
    """
    read = _key_value(data, pos, end, 0)
    return None if isinstance(read, _Other) else read


def _key_value(data: bytes, pos: int, end: int, depth: int) -> tuple[str, Any] | _Other:
    if pos == end or data[pos] != _KEY:
        return _OTHER
    length, start = varint(data, pos + 1)
    stop = start + length
    if stop > end:
        return _OTHER
    key = data[start:stop].decode()
    if stop == end:  # no value: an empty AnyValue
        return key, None
    if data[stop] != _VALUE:
        return _OTHER
    length, start = varint(data, stop + 1)
    if start + length != end:
        return _OTHER
    value = _any_value(data, start, end, depth)
    return _OTHER if isinstance(value, _Other) else (key, value)


def _any_value(data: bytes, pos: int, end: int, depth: int) -> Any:
    """The value of the ``AnyValue`` encoded in ``data[pos:end]``, or :data:`_OTHER`."""
    if pos == end:
        return None
    tag = data[pos]
    if tag == _INT:
        number, after = varint(data, pos + 1)
        return (number - (1 << 64) if number >= _INT64_SIGN else number) if after == end else _OTHER
    if tag == _BOOL:
        number, after = varint(data, pos + 1)
        return number != 0 if after == end else _OTHER
    if tag == _FLOAT:
        return _DOUBLE.unpack_from(data, pos + 1)[0] if pos + 9 == end else _OTHER
    length, start = varint(data, pos + 1)  # the other members are length-delimited
    if start + length != end:
        return _OTHER
    if tag == _STRING:
        return data[start:end].decode()
    if tag == _BYTES:
        return base64.b64encode(data[start:end]).decode()
    if depth >= _MAX_DEPTH or (tag != _ARRAY and tag != _MAP):
        return _OTHER
    items: list[Any] = []
    pairs: dict[str, Any] = {}
    pos = start
    while pos < end:
        if data[pos] != _ITEM:
            return _OTHER
        length, start = varint(data, pos + 1)
        pos = start + length
        if pos > end:
            return _OTHER
        if tag == _ARRAY:
            item = _any_value(data, start, pos, depth + 1)
            if isinstance(item, _Other):
                return _OTHER
            items.append(item)
        else:
            pair = _key_value(data, start, pos, depth + 1)
            if isinstance(pair, _Other):
                return _OTHER
            pairs[pair[0]] = pair[1]
    return items if tag == _ARRAY else pairs


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` (cut to 64 bits, as protobuf reads it) and the position after it.

    Raises IndexError when it runs past the end, ValueError when it is longer than ten bytes.
    """
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = byte & 0x7F
    shift = 7
    pos += 1
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            # Only a varint of ten bytes can pass 64 bits; masking a small one costs a big-int operation.
            return (result & _UINT64 if shift >= 63 else result), pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than ten bytes")
