"""OTLP/JSON objects as the keyword arguments of protobuf message constructors.

protobuf's ``json_format`` sets every field through Python reflection: ~310-470 µs a span of the
ingest benchmark's requests (bench/otlp_json.py). The forms exporters write are instead turned,
here, into the keyword arguments of the message's constructor, which protobuf's C code fills in
one call. Anything that this does not cover exactly as ``json_format`` would — a null, a number
as a float or an integer as an unusual string, a field given twice (camelCase and snake_case),
two members of a oneof, unpadded or URL-safe base64, an enum number the enum does not name, a
map, nesting deeper than :data:`MAX_DEPTH`, a key in brackets — raises :class:`Unusual`, and the
caller (:mod:`collector.otlp_json`) hands the whole document to ``json_format`` instead.

Here, in ``semconv``, rather than beside the receiver: this walk is most of the collector's CPU
for an OTLP/JSON request, and ``semconv`` is what the collector compiles (:mod:`collector.native`).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor  # type: ignore[import-untyped]  # (no stubs installed)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


class Unusual(Exception):
    """The document has a form :func:`fields` leaves to ``json_format``."""


# Kinds of field. Final: constants in the compiled build.
_MESSAGE: Final = 0
_STRING: Final = 1
_BYTES: Final = 2
_HEX_ID: Final = 3
_INTEGER: Final = 4
_FLOAT: Final = 5
_BOOL: Final = 6
_ENUM: Final = 7
_OTHER: Final = -1  # maps and groups: json_format's

MAX_DEPTH: Final = 32  # well within json_format's 64
# Base64 of one byte in OTLP/JSON's id fields: the id stays "present but of the wrong length", so
# validation rejects the item that carried it instead of failing the whole request.
UNUSABLE_ID_BYTES: Final = b"\xff"
_HEX_ID_FIELDS: Final = frozenset({"trace_id", "span_id", "parent_span_id"})  # hex in OTLP/JSON, not base64
_I32: Final = (-(2**31), 2**31 - 1)
_U32: Final = (0, 2**32 - 1)
_I64: Final = (-(2**63), 2**63 - 1)
_U64: Final = (0, 2**64 - 1)
_INTEGER_RANGES: Final[dict[int, tuple[int, int]]] = {
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
_DIGITS: Final = re.compile(r"-?[0-9]+")

# A message's fields by JSON key (camelCase and proto name): (name, kind, argument, repeated, oneof).
Field = tuple[str, int, Any, bool, str | None]
_TABLES: Final[dict[str, dict[str, Field]]] = {}


def table(descriptor: Any) -> dict[str, Field]:
    """The fields of a message type, each message field's entry holding its own type's table
    (registered before it is filled, so recursive types such as AnyValue refer to themselves)."""
    found = _TABLES.get(descriptor.full_name)
    if found is not None:
        return found
    fields_by_key: dict[str, Field] = {}
    _TABLES[descriptor.full_name] = fields_by_key
    for field in descriptor.fields:
        kind, argument = _kind(field)
        oneof = field.containing_oneof.name if field.containing_oneof is not None else None
        entry: Field = (field.name, kind, argument, bool(field.is_repeated), oneof)
        fields_by_key[field.json_name] = entry
        fields_by_key[field.name] = entry
    return fields_by_key


def _kind(field: Any) -> tuple[int, Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            return _OTHER, None
        return _MESSAGE, table(field.message_type)
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
    return _OTHER, None


def fields(node: dict[str, Any], message_table: dict[str, Field], depth: int = 0) -> dict[str, Any]:
    """The constructor arguments of the message ``node`` (an OTLP/JSON object) describes, by the
    message's :func:`table`; raises :class:`Unusual` for a form left to ``json_format``."""
    if depth > MAX_DEPTH:
        raise Unusual
    out: dict[str, Any] = {}
    oneofs: set[str] | None = None
    alone = len(node) == 1  # (most AnyValues): no second member of a oneof to look for
    for key, value in node.items():
        field = message_table.get(key)
        if field is None:
            if key.startswith("["):
                raise Unusual  # extension syntax
            continue  # unknown fields are ignored, as OTLP asks
        name, kind, argument, repeated, oneof = field
        if value is None or name in out:
            raise Unusual
        if oneof is not None and not alone:
            if oneofs is None:
                oneofs = set()
            elif oneof in oneofs:
                raise Unusual
            oneofs.add(oneof)
        if kind == _STRING and not repeated and type(value) is str:  # the commonest: inlined
            out[name] = value
        elif kind == _MESSAGE:  # the next commonest
            if repeated and type(value) is list:
                if argument is _KEY_VALUES and depth + 2 <= MAX_DEPTH:
                    out[name] = _key_values(value, depth + 1)
                else:
                    out[name] = [_message(item, argument, depth + 1) for item in value]
            elif not repeated and type(value) is dict:
                out[name] = fields(value, argument, depth + 1)
            else:
                raise Unusual
        elif kind == _OTHER:
            raise Unusual
        elif repeated:
            if type(value) is not list:
                raise Unusual
            out[name] = [_value(kind, argument, item) for item in value]
        else:
            out[name] = _value(kind, argument, value)
    return out


def _message(item: Any, message_table: dict[str, Field], depth: int) -> dict[str, Any]:
    if type(item) is not dict:
        raise Unusual
    return fields(item, message_table, depth)


_KEY_VALUES: Final = table(KeyValue.DESCRIPTOR)
_ANY_VALUE_SCALARS: Final = {key: field for key, field in table(AnyValue.DESCRIPTOR).items() if field[1] != _MESSAGE}


def _key_values(items: list[Any], depth: int) -> list[dict[str, Any]]:
    """A list of ``KeyValue`` (attributes: most of a request). The commonest shape, a key and a
    scalar value, is read in one step (:func:`_scalar_key_value`); every other item goes through
    :func:`fields`, which reads that shape alike, more slowly."""
    out: list[dict[str, Any]] = []
    for item in items:
        quick = _scalar_key_value(item) if type(item) is dict and len(item) == 2 else None
        out.append(quick if quick is not None else _message(item, _KEY_VALUES, depth))
    return out


def _scalar_key_value(item: dict[str, Any]) -> dict[str, Any] | None:
    """``{"key": "k", "value": {"stringValue": "v"}}`` (or another scalar member) as arguments;
    None for any other shape."""
    key = item.get("key")
    value = item.get("value")
    if type(key) is not str or type(value) is not dict or len(value) != 1:
        return None
    for member, scalar in value.items():  # its one member (compiled, a loop is the cheap way to it)
        field = _ANY_VALUE_SCALARS.get(member)
        if field is not None:
            return {"key": key, "value": {field[0]: _value(field[1], field[2], scalar)}}
    return None


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
            return UNUSABLE_ID_BYTES
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
    raise Unusual
