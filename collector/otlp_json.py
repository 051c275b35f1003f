"""OTLP/JSON <-> protobuf.

OTLP/JSON is the proto3 JSON mapping with two differences: trace and span ids are hex
strings (not base64), and enums must be integers (names are tolerated). Field names are
lowerCamelCase (snake_case is tolerated by the parser) and 64-bit integers may be strings or
numbers. Unknown fields are ignored, as the OTLP specification asks of receivers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

# Keys holding ids, as lowerCamelCase or snake_case; containers walked to reach them.
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_CONTAINERS = frozenset(
    {
        "resourceSpans",
        "scopeSpans",
        "spans",
        "links",
        "resourceLogs",
        "scopeLogs",
        "logRecords",
        "resource_spans",
        "scope_spans",
        "resource_logs",
        "scope_logs",
        "log_records",
    }
)
# Base64 of one byte: the id stays "present but of the wrong length", so validation rejects
# the item that carried it instead of failing the whole request.
_UNUSABLE_ID_BYTES = b"\xff"
_UNUSABLE_ID = base64.b64encode(_UNUSABLE_ID_BYTES).decode()


class JsonDecodeError(ValueError):
    """The body is not a valid OTLP/JSON request."""


def _hex_id_to_base64(value: Any) -> Any:
    if not isinstance(value, str) or value == "":
        return value
    try:
        return base64.b64encode(binascii.unhexlify(value)).decode()
    except (binascii.Error, ValueError):
        return _UNUSABLE_ID


def _base64_id_to_hex(value: Any) -> Any:
    return base64.b64decode(value).hex() if isinstance(value, str) else value


def _convert_ids(node: Any, convert: Callable[[Any], Any] = _hex_id_to_base64, depth: int = 0) -> None:
    """Rewrite, in place, every id of an OTLP document's spans, links and log records with ``convert``."""
    if depth > 8:
        return
    if isinstance(node, list):
        for item in node:
            _convert_ids(item, convert, depth + 1)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS:
                node[key] = convert(value)
            elif key in _CONTAINERS:
                _convert_ids(value, convert, depth + 1)


def to_document(message: Any, integer_enums: bool = False) -> dict[str, Any]:
    """``message`` as an OTLP/JSON document: the proto3 JSON mapping with hex ids (and enums as
    numbers with ``integer_enums``, as OpenTelemetry's exporters write them)."""
    mapped = json_format.MessageToDict(message, use_integers_for_enums=integer_enums)
    _convert_ids(mapped, _base64_id_to_hex)
    return mapped


def parse(body: bytes, message_type: type) -> Any:
    """Parse an OTLP/JSON body into a new ``message_type`` protobuf message."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise JsonDecodeError(f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise JsonDecodeError("malformed OTLP/JSON: the body must be a JSON object")
    try:
        return message_type(**_fields(document, _table(message_type.DESCRIPTOR), 0))
    except (_Unusual, ValueError, TypeError):  # (the constructor's own refusals too: json_format words them)
        return parse_document(document, message_type)


def parse_document(document: dict[str, Any], message_type: type) -> Any:
    """A decoded OTLP/JSON document as a ``message_type`` message, through protobuf's ``json_format``
    (every rule of the proto3 JSON mapping; ~4x slower than :func:`parse`'s way, which takes the
    forms exporters send and leaves anything else to this). Changes ``document``'s ids in place."""
    _convert_ids(document)
    message = message_type()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True, max_recursion_depth=64)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise JsonDecodeError(f"malformed OTLP/JSON: {exc}") from None
    return message


# --------------------------------------------------------------------------- the common forms
# json_format sets every field through Python reflection: ~310-470 µs a span of the benchmark's
# requests, 0.16-0.24 s for a request of 512 spans (bench/otlp_json.py). The forms exporters write are
# instead turned into the keyword arguments of the message's constructor, which protobuf's C
# code fills in one call (~80-97 µs a span). Anything that form does not cover exactly as
# json_format would — a null, a number as a float or an integer as an unusual string, a field
# given twice (camelCase and snake_case), two members of a oneof, unpadded or URL-safe base64,
# an enum number the enum does not name, a map, nesting deeper than _MAX_DEPTH, a key in
# brackets — raises _Unusual, and the whole document goes through json_format instead.
class _Unusual(Exception):
    pass


_MESSAGE, _STRING, _BYTES, _HEX_ID, _INTEGER, _FLOAT, _BOOL, _ENUM = range(8)
_MAX_DEPTH = 32  # well within json_format's 64
_HEX_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})  # hex in OTLP/JSON, not base64
_I32, _U32, _I64, _U64 = (-(2**31), 2**31 - 1), (0, 2**32 - 1), (-(2**63), 2**63 - 1), (0, 2**64 - 1)
_INTEGER_RANGES = {
    FieldDescriptor.TYPE_INT32: _I32,
    FieldDescriptor.TYPE_SINT32: _I32,
    FieldDescriptor.TYPE_SFIXED32: _I32,
    FieldDescriptor.TYPE_UINT32: _U32,
    FieldDescriptor.TYPE_FIXED32: _U32,
    FieldDescriptor.TYPE_INT64: _I64,
    FieldDescriptor.TYPE_SINT64: _I64,
    FieldDescriptor.TYPE_SFIXED64: _I64,
    FieldDescriptor.TYPE_UINT64: _U64,
    FieldDescriptor.TYPE_FIXED64: _U64,
}
_DIGITS = re.compile(r"-?[0-9]+")

# A message's fields by JSON key (camelCase and proto name): (name, kind, argument, repeated, oneof).
_Field = tuple[str, int, Any, bool, str | None]
_TABLES: dict[str, dict[str, _Field]] = {}


def _table(descriptor: Any) -> dict[str, _Field]:
    """The fields of a message type, each message field's entry holding its own type's table
    (registered before it is filled, so recursive types such as AnyValue refer to themselves)."""
    table = _TABLES.get(descriptor.full_name)
    if table is not None:
        return table
    table = _TABLES[descriptor.full_name] = {}
    for field in descriptor.fields:
        kind, argument = _kind(field)
        oneof = field.containing_oneof.name if field.containing_oneof is not None else None
        entry = (field.name, kind, argument, field.is_repeated, oneof)
        table[field.json_name] = table[field.name] = entry
    return table


def _kind(field: Any) -> tuple[int, Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            return -1, None  # maps: json_format's
        return _MESSAGE, _table(field.message_type)
    if kind == FieldDescriptor.TYPE_STRING:
        return _STRING, None
    if kind == FieldDescriptor.TYPE_BYTES:
        return (_HEX_ID if field.name in _HEX_ID_FIELDS else _BYTES), None
    if kind in _INTEGER_RANGES:
        return _INTEGER, _INTEGER_RANGES[kind]
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _FLOAT, None
    if kind == FieldDescriptor.TYPE_BOOL:
        return _BOOL, None
    if kind == FieldDescriptor.TYPE_ENUM:
        return _ENUM, ({v.name: v.number for v in field.enum_type.values}, {v.number for v in field.enum_type.values})
    return -1, None


def _fields(node: dict[str, Any], table: dict[str, _Field], depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise _Unusual
    out: dict[str, Any] = {}
    oneofs: set[str] | None = None
    alone = len(node) == 1  # (most AnyValues): no second member of a oneof to look for
    for key, value in node.items():
        field = table.get(key)
        if field is None:
            if key.startswith("["):
                raise _Unusual  # extension syntax
            continue  # unknown fields are ignored, as OTLP asks
        name, kind, argument, repeated, oneof = field
        if value is None or name in out:
            raise _Unusual
        if oneof is not None and not alone:
            if oneofs is None:
                oneofs = set()
            elif oneof in oneofs:
                raise _Unusual
            oneofs.add(oneof)
        if kind == _STRING and not repeated and type(value) is str:  # the commonest: inlined
            out[name] = value
        elif kind == _MESSAGE:  # the next commonest
            if repeated and type(value) is list:
                if argument is _KEY_VALUES and depth + 2 <= _MAX_DEPTH:
                    out[name] = _key_values(value, depth + 1)
                else:
                    out[name] = [
                        _fields(item, argument, depth + 1) if type(item) is dict else _unusual() for item in value
                    ]
            elif not repeated and type(value) is dict:
                out[name] = _fields(value, argument, depth + 1)
            else:
                raise _Unusual
        elif repeated:
            if type(value) is not list:
                raise _Unusual
            out[name] = [_value(kind, argument, item) for item in value]
        else:
            out[name] = _value(kind, argument, value)
    return out


def _unusual() -> Any:
    raise _Unusual


_KEY_VALUES = _table(KeyValue.DESCRIPTOR)


_ANY_VALUE_SCALARS = {key: field for key, field in _table(AnyValue.DESCRIPTOR).items() if field[1] != _MESSAGE}


def _key_values(items: list[Any], depth: int) -> list[dict[str, Any]]:
    """A list of ``KeyValue`` (attributes: most of a request). The commonest shape, a key and a
    scalar value (``{"key": "k", "value": {"stringValue": "v"}}``), is read in one step here;
    every other item goes through :func:`_fields`, which reads that shape alike, more slowly."""
    out = []
    for item in items:
        if type(item) is dict and len(item) == 2:
            key = item.get("key")
            value = item.get("value")
            if type(key) is str and type(value) is dict and len(value) == 1:
                ((member, scalar),) = value.items()
                field = _ANY_VALUE_SCALARS.get(member)
                if field is not None:
                    name, kind, argument = field[0], field[1], field[2]
                    out.append({"key": key, "value": {name: _value(kind, argument, scalar)}})
                    continue
        out.append(_fields(item, _KEY_VALUES, depth) if type(item) is dict else _unusual())
    return out


def _value(kind: int, argument: Any, value: Any) -> Any:
    exact = type(value)
    if kind == _STRING and exact is str:
        return value
    if kind == _INTEGER:
        if exact is str and _DIGITS.fullmatch(value):
            value, exact = int(value), int
        if exact is int and argument[0] <= value <= argument[1]:
            return value
    elif kind == _HEX_ID and exact is str:
        try:
            return binascii.unhexlify(value)
        except (binascii.Error, ValueError):
            return _UNUSABLE_ID_BYTES
    elif kind == _FLOAT and (exact is float or exact is int):
        return float(value)
    elif kind == _BOOL and exact is bool:
        return value
    elif kind == _ENUM:
        names, numbers = argument
        if exact is int and value in numbers:
            return value
        if exact is str and value in names:
            return names[value]
    elif kind == _BYTES and exact is str:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise _Unusual


def render(message: Any) -> bytes:
    """Encode a message (an answer, or a request) as OTLP/JSON."""
    return orjson.dumps(to_document(message))
