"""Reading an encoded OTLP ``KeyValue`` straight from its bytes.

Reading a span's attributes through protobuf objects costs two message wrappers and three
field lookups per attribute: the largest single part of mapping a span. The collector decodes
requests with spans left encoded (see :mod:`collector.wire` and :mod:`semconv.encoded_span`);
:func:`read_key_value` reads an attribute in the plain form SDKs write (each field once, in field
order, every value one member of the ``AnyValue`` oneof), and anything else (fields out of
order, repeated or unknown) goes to protobuf.
"""

from __future__ import annotations

import base64
import struct
import sys
from typing import Any, Final

from semconv.shapes import remember

_DOUBLE = struct.Struct("<d")
_UINT64: Final = (1 << 64) - 1
_INT64_SIGN: Final = 1 << 63
_MAX_SHORT: Final = (1 << 62) - 1  # the largest int the compiled build holds unboxed
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


def read_key_value(data: bytes, pos: int, end: int, into: dict[str, Any]) -> bool:
    """Put the key and value of the ``KeyValue`` encoded in ``data[pos:end]`` into ``into``
    (a key already there takes the new value); False, leaving ``into`` in any state, when the
    encoding is not the plain form. No copy of the encoding is made.

    The value is what :func:`semconv.values.any_value` gives for it. Raises IndexError or
    ValueError on bytes that may not be a ``KeyValue`` at all (cut short, invalid UTF-8): the
    caller's protobuf decoding says what is wrong, if anything.
    """
    return _key_value(data, pos, end, 0, into)


# Attribute keys repeat from span to span: each distinct key is decoded once and every span
# gets the same interned str (whose hash is kept, and which dict lookups by a literal key match
# by identity). Long keys are not kept.
_KEY_TEXT: Final[dict[bytes, str]] = {}
_MAX_KEYS: Final = 4096
_MAX_KEY_BYTES: Final = 256


def _key_text(raw: bytes) -> str:
    text = _KEY_TEXT.get(raw)
    if text is None:
        text = raw.decode()
        if len(raw) <= _MAX_KEY_BYTES:
            text = remember(_KEY_TEXT, raw, sys.intern(text), _MAX_KEYS)
    return text


def _key_value(data: bytes, pos: int, end: int, depth: int, into: dict[str, Any]) -> bool:
    if pos == end or data[pos] != _KEY:
        return False
    length, start = varint(data, pos + 1)
    stop = start + length
    if stop > end:
        return False
    key = _key_text(data[start:stop])
    if stop == end:  # no value: an empty AnyValue
        into[key] = None
        return True
    if data[stop] != _VALUE:
        return False
    length, start = varint(data, stop + 1)
    if start + length != end:
        return False
    value = _any_value(data, start, end, depth)
    if isinstance(value, _Other):
        return False
    into[key] = value
    return True


def _any_value(data: bytes, pos: int, end: int, depth: int) -> Any:
    """The value of the ``AnyValue`` encoded in ``data[pos:end]``, or :data:`_OTHER`."""
    if pos == end:
        return None
    tag = data[pos]
    if tag == _INT:
        number, after = varint(data, pos + 1)
        if after != end:
            return _OTHER
        # A small number settles it by a short-int comparison (against 2**63 it takes the big-int path).
        return number - (1 << 64) if number > _MAX_SHORT and number >= _INT64_SIGN else number
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
        elif not _key_value(data, start, pos, depth + 1, pairs):
            return _OTHER
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
