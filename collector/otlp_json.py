"""OTLP/JSON <-> protobuf.

OTLP/JSON is the proto3 JSON mapping with two differences: trace and span ids are hex
strings (not base64), and enums must be integers (names are tolerated). Field names are
lowerCamelCase (snake_case is tolerated by the parser) and 64-bit integers may be strings or
numbers. Unknown fields are ignored, as the OTLP specification asks of receivers.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from google.protobuf import json_format

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
_UNUSABLE_ID = base64.b64encode(b"\xff").decode()


class JsonDecodeError(ValueError):
    """The body is not a valid OTLP/JSON request."""


def _hex_id_to_base64(value: Any) -> Any:
    if not isinstance(value, str) or value == "":
        return value
    try:
        return base64.b64encode(binascii.unhexlify(value)).decode()
    except (binascii.Error, ValueError):
        return _UNUSABLE_ID


def _convert_ids(node: Any, depth: int = 0) -> None:
    if depth > 8:
        return
    if isinstance(node, list):
        for item in node:
            _convert_ids(item, depth + 1)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS:
                node[key] = _hex_id_to_base64(value)
            elif key in _CONTAINERS:
                _convert_ids(value, depth + 1)


def parse(body: bytes, message_type: type) -> Any:
    """Parse an OTLP/JSON body into a new ``message_type`` protobuf message."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise JsonDecodeError(f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise JsonDecodeError("malformed OTLP/JSON: the body must be a JSON object")
    _convert_ids(document)
    message = message_type()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True, max_recursion_depth=64)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise JsonDecodeError(f"malformed OTLP/JSON: {exc}") from None
    return message


def render(message: Any) -> bytes:
    """Encode a response message as OTLP/JSON."""
    return json_format.MessageToJson(message, indent=None).encode()
