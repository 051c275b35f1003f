"""OTLP/JSON <-> protobuf.

OTLP/JSON is the proto3 JSON mapping with two differences: trace and span ids are hex
strings (not base64), and enums must be integers (names are tolerated). Field names are
lowerCamelCase (snake_case is tolerated by the parser) and 64-bit integers may be strings or
numbers. Unknown fields are ignored, as the OTLP specification asks of receivers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format

from semconv.otlp_json_fields import UNUSABLE_ID_BYTES, Unusual, fields, table

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
# An id that is not hex: its item is rejected by validation, not the whole request (see UNUSABLE_ID_BYTES).
_UNUSABLE_ID = base64.b64encode(UNUSABLE_ID_BYTES).decode()


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
    try:  # the forms exporters write, quickly (see semconv.otlp_json_fields); json_format for the rest
        return message_type(**fields(document, table(message_type.DESCRIPTOR)))
    except (Unusual, ValueError, TypeError):  # (the constructor's own refusals too: json_format words them)
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


def render(message: Any) -> bytes:
    """Encode a message (an answer, or a request) as OTLP/JSON."""
    return orjson.dumps(to_document(message))
