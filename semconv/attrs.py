"""Small readers for attribute dicts: first-of aliases, JSON-in-strings, numbers, flattened lists."""

from __future__ import annotations

from typing import Any, Final

from orjson import JSONDecodeError, loads  # names, not orjson.x: one lookup fewer per call

from semconv.shapes import KeySet, key_memo
from semconv.values import to_json

MAX_FLATTENED_ITEMS: Final = 10_000  # bounds what a hostile "x.999999999.y" key can allocate


def is_blank(value: Any) -> bool:
    """None or the empty string: an attribute that states nothing.

    Not ``value == ""``: comparing a value of unknown type is a generic (costly) call in the
    compiled build, and this runs for most attributes read.
    """
    return value is None or (isinstance(value, str) and not value)


def first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The value of the first key present with a non-empty value, else None."""
    for key in keys:
        value = attrs.get(key)
        if not is_blank(value):
            return value
    return None


def parse_json(value: Any) -> Any:
    """``value`` decoded if it is a string holding a JSON object or array; otherwise unchanged."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "["):
            try:
                return loads(text)
            except JSONDecodeError:
                return value
    return value


# What a JSON text can start with: JSON whitespace or the first character of a value.
_JSON_FIRST: Final = frozenset('{["-0123456789tfn \t\n\r')
_WORD_FIRST: Final = frozenset("tfn")
_WORDS: Final[tuple[str, ...]] = ("true", "false", "null")


def parse_json_any(value: Any) -> Any:
    """``value`` decoded if it is a string holding any JSON value (numbers, strings…)."""
    if isinstance(value, str):
        head = value[:1]
        if head not in _JSON_FIRST:  # plain text: skip the parse attempt and its costly exception
            return value
        if head in _WORD_FIRST and not value.startswith(_WORDS):  # "the answer…", not true/false/null
            return value
        try:
            return loads(value)
        except JSONDecodeError:
            return value
    return value


# Counts above this are nonsense (and a sum of a few of them would overflow the 64-bit columns).
MAX_COUNT: Final = 2**53


def as_int(value: Any) -> int | None:
    """A non-negative count (at most :data:`MAX_COUNT`) from an int, float or numeric string; None otherwise."""
    if type(value) is int:  # the usual case first (bool is a subclass of int, not int itself)
        return value if 0 <= value <= MAX_COUNT else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_COUNT else None
    if isinstance(value, float):
        return int(value) if 0 <= value <= MAX_COUNT else None  # NaN compares false
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return as_int(number)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if number == number and abs(number) != float("inf") else None


def as_str(value: Any) -> str | None:
    """A string for an id-like value (numbers are stringified, containers JSON-encoded)."""
    if isinstance(value, str):
        return value or None
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return to_json(value)


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


@key_memo
def _prefix_plan(keys: tuple[str, ...], prefix: str) -> tuple[tuple[str, str], ...]:
    """(key without the prefix, key) of every key under ``prefix`` — the keys decide, so planned
    once per key set and prefix."""
    size = len(prefix)
    return tuple((key[size:], key) for key in keys if key.startswith(prefix) and len(key) > size)


def with_prefix(attrs: dict[str, Any], prefix: str, *, keys: KeySet | None = None) -> dict[str, Any]:
    """The attributes under ``prefix`` (which ends with a dot), with the prefix removed.

    ``keys``: ``attrs``' :class:`KeySet` when the caller has it (``SpanView.keys``), which saves
    working it out again.
    """
    return {short: attrs[key] for short, key in _prefix_plan.of(attrs if keys is None else keys, prefix)}


def unflatten(flat: dict[str, Any]) -> Any:
    """Rebuild nested data from dotted keys; numeric segments become list indices.

    ``{"0.role": "user", "0.content": "hi"}`` -> ``[{"role": "user", "content": "hi"}]``.
    """
    root: dict[str, Any] = {}
    for key, value in flat.items():
        _place(root, tuple(key.split(".")), value)
    return _lists(root)


def _place(root: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Put ``value`` at ``path`` under ``root``, making (or replacing scalars with) dicts on the way."""
    node = root
    for part in path[:-1]:
        child = node.get(part)
        if type(child) is not dict:
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def _lists(node: dict[str, Any]) -> Any:
    # A plain loop, not all(<generator>): this runs for every node of every flattened message.
    numeric = bool(node)
    for key in node:
        if not key.isdigit():
            numeric = False
            break
    if numeric:
        indices = sorted(map(int, node))
        if indices[-1] < MAX_FLATTENED_ITEMS:
            return [_lists(v) if type(v) is dict else v for v in (node[str(i)] for i in indices)]
    return {k: _lists(v) if type(v) is dict else v for k, v in node.items()}


# An item of a flattened list: the key of a scalar item, or a nested one: whether any of its
# path segments is a list index, and the (path segments, key) of each of its keys.
_Nested = tuple[bool, tuple[tuple[tuple[str, ...], str], ...]]
_Item = str | _Nested
_IndexPlan = tuple[tuple[_Item, ...], frozenset[str]]


@key_memo
def _index_plan(keys: tuple[str, ...], prefix: str) -> _IndexPlan:
    """Where the items of the list under ``prefix`` are, in order, and every key that belongs to
    it — the keys decide, so planned once per key set and prefix (the split paths included)."""
    size = len(prefix)
    groups: dict[int, Any] = {}
    used: list[str] = []
    for key in keys:
        if not key.startswith(prefix):
            continue
        head, dot, rest = key[size:].partition(".")
        if not head.isdigit() or (index := int(head)) >= MAX_FLATTENED_ITEMS:
            continue
        used.append(key)
        if not dot:
            groups[index] = key  # the item itself is a scalar
            continue
        item = groups.get(index)
        if type(item) is not dict:
            item = groups[index] = {}
        item[rest] = key
    items: list[_Item] = []
    for index in sorted(groups):
        group = groups[index]
        if type(group) is str:
            items.append(group)
            continue
        paths = tuple((tuple(rest.split(".")), key) for rest, key in group.items())
        items.append((any(part.isdigit() for parts, _ in paths for part in parts), paths))
    return tuple(items), frozenset(used)


def _nested(item: _Nested, attrs: dict[str, Any]) -> Any:
    """One nested item of a flattened list, as :func:`unflatten` builds it, from planned paths."""
    has_lists, paths = item
    root: dict[str, Any] = {}
    for path, key in paths:
        _place(root, path, attrs[key])
    return _lists(root) if has_lists else root


def indexed(attrs: dict[str, Any], prefix: str, *, keys: KeySet | None = None) -> tuple[list[Any], set[str]]:
    """Items of a flattened, zero-based list such as ``gen_ai.prompt.0.role`` (prefix ``gen_ai.prompt.``),
    and the attribute keys they came from.

    Indices beyond :data:`MAX_FLATTENED_ITEMS` are ignored, gaps are closed, order is kept.
    ``keys``: as for :func:`with_prefix`.
    """
    plan, used = _index_plan.of(attrs if keys is None else keys, prefix)
    items = [attrs[item] if isinstance(item, str) else _nested(item, attrs) for item in plan]
    return items, set(used)
