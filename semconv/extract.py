"""What a dialect reads from one span, and how several dialects' readings combine."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, NamedTuple

from semconv.shapes import KeySet, key_memo, key_set


class SpanView(NamedTuple):
    """A span as dialects see it: decoded attributes plus the raw protobuf message.

    A named tuple: one is made for every span, and a frozen dataclass pays an
    ``object.__setattr__`` call per field to be made.
    """

    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    span: Any
    keys: KeySet  # of ``attributes``: memos given it skip rebuilding and hashing the key tuple
    namespaces: frozenset[str] = frozenset()  # first dotted segment of every attribute key
    resource_facts: dict[str, Any] | None = None  # environment/release/version from the resource

    @classmethod
    def of(
        cls,
        attributes: dict[str, Any],
        resource: dict[str, Any],
        scope: Any,
        span: Any,
        resource_facts: dict[str, Any] | None = None,
    ) -> SpanView:
        keys = key_set(attributes)
        return cls(attributes, resource, scope.name, scope.version, span, keys, namespaces_of(keys), resource_facts)

    @property
    def start_us(self) -> int:
        return self.span.start_time_unix_nano // 1000


@key_memo
def namespaces_of(keys: tuple[str, ...]) -> frozenset[str]:
    """The first dotted segment of every attribute key."""
    return frozenset({key.partition(".")[0] for key in keys})


# A text field as a dialect read it: a str when the client sent one, but it may be any value a
# client sent (a number for a name); map_span coerces it when it builds the row, so nothing
# checks it before (a compiled build would otherwise reject the odd value instead of keeping it).
Text = Any


class Extract(NamedTuple):
    """Fields a dialect found; None means "this dialect does not say".

    A named tuple rather than a dataclass: readings are never changed once made, and
    :func:`merge` walks every field of every reading of every span, which is a C-speed
    iteration over a tuple but an attribute lookup per field on an object.
    """

    # observation
    type: Text = None
    name: Text = None
    model: Text = None
    provider: Text = None
    model_parameters: dict[str, Any] | None = None
    input: Any = None
    output: Any = None
    usage: dict[str, int] | None = None
    aggregated_usage: dict[str, int] | None = None  # repeats the children's usage: shown, never priced
    cost: dict[str, float] | None = None  # cost the client computed (USD per bucket, "total")
    completion_start_time: Any = None  # µs since the epoch (coerced by map_span)
    level: Text = None
    status_message: Text = None
    prompt_name: Text = None
    prompt_version: int | None = None
    # trace facts
    trace_name: Text = None
    trace_input: Any = None
    trace_output: Any = None
    user_id: Text = None
    session_id: Text = None
    public: Any = None  # a bool (coerced by map_span)
    environment: Text = None
    release: Text = None
    version: Text = None
    root: Any = None  # truthy: a logical root (app root / forced root) even with a parent
    # Combined across readings rather than first-wins (see merge); kept last, after the
    # first-wins fields, so that merge can take those as one slice.
    metadata: dict[str, Any] | None = None  # of the observation
    trace_metadata: dict[str, Any] | None = None
    tags: Any = None  # of the trace: a list of str (coerced by map_span)
    # attribute keys this reading used; they are left out of the stored raw attributes
    consumed: AbstractSet[str] = frozenset()


_FIRST_WINS = Extract._fields.index("metadata")  # the fields before it are first-wins
_USAGE, _COST = Extract._fields.index("usage"), Extract._fields.index("cost")


def merge(extracts: Iterable[Extract]) -> Extract:
    """Combine readings given highest precedence first.

    For each field the first non-None value wins; metadata dicts are merged key by key (higher
    precedence wins a key); tags are unioned; consumed keys are unioned. A reading that reports
    ``aggregated_usage`` claims the span's usage: lower readings cannot bill it as ``usage``.
    """
    readings = list(extracts)
    if not readings:
        return Extract()
    # Fold the first-wins fields from the lowest-precedence reading upwards: a higher reading's
    # value replaces a lower one's unless it is None. (zip stops at the first-wins fields; it is
    # not given strict=False, whose keyword parsing costs more than the rest of the zip call.)
    values = list(readings[-1][:_FIRST_WINS])
    for reading in readings[-2::-1]:  # (not reversed(): mypyc 2.4 fails to compile that here)
        values = [mine if mine is not None else lower for mine, lower in zip(reading, values)]  # noqa: B905
    claim = _usage_claim(readings)
    if claim is not None:  # no reading above the claim bills usage (see _usage_claim); their cost stands
        values[_USAGE] = None
        values[_COST] = next((r.cost for r in readings[:claim] if r.cost is not None), None)
    metadata: dict[str, Any] = {}
    trace_metadata: dict[str, Any] = {}
    tags: list[str] = []
    consumed: set[str] = set()
    for reading in readings:
        if reading.metadata:
            metadata = {**reading.metadata, **metadata}
        if reading.trace_metadata:
            trace_metadata = {**reading.trace_metadata, **trace_metadata}
        if reading.tags:
            tags.extend(reading.tags)
        consumed |= reading.consumed
    values += (metadata or None, trace_metadata or None, list(dict.fromkeys(tags)) if tags else None, consumed)
    return Extract._make(values)


def _usage_claim(readings: list[Extract]) -> int | None:
    """The index of the reading that claims the span's usage as aggregate, if one does.

    A reading with ``aggregated_usage`` and no higher reading with ``usage`` says the span's
    counts repeat its children's: neither it nor any lower reading may bill usage or cost.
    """
    for index, reading in enumerate(readings):
        if reading.aggregated_usage is not None:
            return index
        if reading.usage is not None:
            return None
    return None


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: the registry keys a memo by its dialects
class Dialect:
    """One attribute dialect: a cheap recogniser and a reader.

    ``by_keys``, when given, is the part of ``matches`` that reads nothing but the scope name and
    the attribute keys (``namespaces``, ``key in attributes``): True or False when those settle
    it, None when the rest of the span must be looked at. Spans of one kind share their keys, so
    the registry remembers it per key set (see :mod:`semconv.shapes`) and asks ``matches`` only
    when it said None.
    """

    name: str
    matches: Callable[[SpanView], bool]
    extract: Callable[[SpanView], Extract]
    by_keys: Callable[[SpanView], bool | None] | None = None
