"""OTLP ``AnyValue`` / ``KeyValue`` decoding into plain Python values, and JSON text."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any, Final

from orjson import OPT_NON_STR_KEYS, JSONEncodeError, dumps  # names, not orjson.x: one lookup fewer per call


def any_value(value: Any) -> Any:
    """Decode an OTLP ``AnyValue`` into str, bool, int, float, list, dict, or None.

    Bytes become base64 text so every value can be written as JSON.
    """
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def attributes(key_values: Iterable[Any]) -> dict[str, Any]:
    """Decode repeated ``KeyValue`` into a dict (a repeated key keeps its last value)."""
    out: dict[str, Any] = {}
    for kv in key_values:
        value = kv.value
        # This runs once per attribute of every span. Most values are non-empty strings: a
        # non-empty string_value can only mean the string case of the oneof, so one field read
        # settles it without the (costlier) WhichOneof lookup.
        text = value.string_value
        if text:
            out[kv.key] = text
            continue
        kind = value.WhichOneof("value")
        if kind == "int_value":
            out[kv.key] = value.int_value
        elif kind == "string_value":
            out[kv.key] = text
        else:
            out[kv.key] = any_value(value)
    return out


# orjson refuses to encode values nested deeper than 255 levels; a JSON string attribute can
# decode to 1024 (orjson's decoding limit). Deeper parts are kept as JSON text (see _clip).
MAX_JSON_DEPTH: Final = 200
_OPTIONS: Final = OPT_NON_STR_KEYS


def to_json(value: Any) -> str | None:
    """JSON text of ``value``; None stays None. Non-finite floats become null.

    Never raises: parts nested deeper than :data:`MAX_JSON_DEPTH` become strings holding their
    JSON text and values JSON has no type for their ``str()``, so a pathological value is kept,
    not fatal.
    """
    if value is None:
        return None
    try:
        # Without options first: what spans carry (str keys, JSON types) needs none, and a call
        # with keyword arguments costs orjson a third more. Anything else raises and comes below.
        return dumps(value).decode()
    except JSONEncodeError:
        pass
    try:
        return dumps(value, default=str, option=_OPTIONS).decode()
    except JSONEncodeError:
        return dumps(_clip(value, MAX_JSON_DEPTH), default=str, option=_OPTIONS).decode()


def _clip(value: Any, depth: int) -> Any:
    """``value`` with its containers below ``depth`` levels replaced by their JSON text, and
    integers beyond 64 bits (which orjson refuses) by their digits."""
    if not isinstance(value, list | dict):
        return _in_range(value)
    if depth <= 0:
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (RecursionError, ValueError, TypeError):
            return "<nested too deep>"
    if isinstance(value, list):
        return [_clip(item, depth - 1) for item in value]
    return {_in_range(key): _clip(item, depth - 1) for key, item in value.items()}


def _in_range(value: Any) -> Any:
    """An integer beyond 64 bits as its digits; any other value as it is."""
    return str(value) if isinstance(value, int) and not -(2**63) <= value < 2**64 else value
