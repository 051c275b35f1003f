"""What a dialect reads from one span, and how several dialects' readings combine."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from semconv.encoded_span import SpanData
from semconv.shapes import KeySet, key_memo, key_set


class SpanView:
    """A span as dialects see it: decoded attributes plus the span's other fields.

    A plain class (native in the compiled build, see :class:`Extract`): one is made per span.
    """

    def __init__(
        self,
        attributes: dict[str, Any],
        resource: dict[str, Any],
        scope_name: str,
        scope_version: str,
        span: SpanData,
        keys: KeySet,
        namespaces: frozenset[str] = frozenset(),
        resource_facts: dict[str, Any] | None = None,
    ) -> None:
        self.attributes = attributes
        self.resource = resource
        self.scope_name = scope_name
        self.scope_version = scope_version
        self.span = span
        self.keys = keys  # of ``attributes``: memos given it skip rebuilding and hashing the key tuple
        self.namespaces = namespaces  # first dotted segment of every attribute key
        self.resource_facts = resource_facts  # environment/release/version from the resource

    @classmethod
    def of(
        cls,
        attributes: dict[str, Any],
        resource: dict[str, Any],
        scope_name: str,
        scope_version: str,
        span: SpanData,
        resource_facts: dict[str, Any] | None = None,
    ) -> SpanView:
        keys = key_set(attributes)
        # SpanView(), not cls(): the compiled build calls a named native class directly.
        return SpanView(
            attributes, resource, scope_name, scope_version, span, keys, namespaces_of.of(keys), resource_facts
        )

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


class Extract:
    """Fields a dialect found; None means "this dialect does not say". Never changed once made.

    A plain class with keyword-only fields rather than a named tuple: every dialect that reads
    a span makes one, and the compiled build makes a plain class native, whose constructor is
    a direct C call. A named tuple's is a Python-level ``__new__`` that matches the keywords
    against all its parameters: about 12k instructions per reading.
    """

    def __init__(
        self,
        *,
        # observation
        type: Text = None,
        name: Text = None,
        model: Text = None,
        provider: Text = None,
        model_parameters: dict[str, Any] | None = None,
        input: Any = None,
        output: Any = None,
        usage: dict[str, int] | None = None,
        aggregated_usage: dict[str, int] | None = None,  # repeats the children's usage: shown, never priced
        cost: dict[str, float] | None = None,  # cost the client computed (USD per bucket, "total")
        completion_start_time: Any = None,  # µs since the epoch (coerced by map_span)
        level: Text = None,
        status_message: Text = None,
        prompt_name: Text = None,
        prompt_version: int | None = None,
        # trace facts
        trace_name: Text = None,
        trace_input: Any = None,
        trace_output: Any = None,
        user_id: Text = None,
        session_id: Text = None,
        public: Any = None,  # a bool (coerced by map_span)
        environment: Text = None,
        release: Text = None,
        version: Text = None,
        root: Any = None,  # truthy: a logical root (app root / forced root) even with a parent
        # combined across readings rather than first-wins (see merge)
        metadata: dict[str, Any] | None = None,  # of the observation
        trace_metadata: dict[str, Any] | None = None,
        tags: Any = None,  # of the trace: a list of str (coerced by map_span)
        consumed: AbstractSet[str] = frozenset(),  # keys this reading used: left out of the raw attributes
    ) -> None:
        self.type = type
        self.name = name
        self.model = model
        self.provider = provider
        self.model_parameters = model_parameters
        self.input = input
        self.output = output
        self.usage = usage
        self.aggregated_usage = aggregated_usage
        self.cost = cost
        self.completion_start_time = completion_start_time
        self.level = level
        self.status_message = status_message
        self.prompt_name = prompt_name
        self.prompt_version = prompt_version
        self.trace_name = trace_name
        self.trace_input = trace_input
        self.trace_output = trace_output
        self.user_id = user_id
        self.session_id = session_id
        self.public = public
        self.environment = environment
        self.release = release
        self.version = version
        self.root = root
        self.metadata = metadata
        self.trace_metadata = trace_metadata
        self.tags = tags
        self.consumed = consumed


def merge(readings: list[Extract]) -> Extract:
    """Combine readings given highest precedence first.

    For each field the first non-None value wins; metadata dicts are merged key by key (higher
    precedence wins a key); tags are unioned; consumed keys are unioned. A reading that reports
    ``aggregated_usage`` claims the span's usage: lower readings cannot bill it as ``usage``.
    """
    claim = _usage_claim(readings)
    merged = Extract()
    metadata: dict[str, Any] = {}
    trace_metadata: dict[str, Any] = {}
    tags: list[str] = []
    consumed: set[str] = set()
    for index, r in enumerate(readings):
        # First-wins fields, one by one: in the compiled build each is a native attribute read.
        if merged.type is None:
            merged.type = r.type
        if merged.name is None:
            merged.name = r.name
        if merged.model is None:
            merged.model = r.model
        if merged.provider is None:
            merged.provider = r.provider
        if merged.model_parameters is None:
            merged.model_parameters = r.model_parameters
        if merged.input is None:
            merged.input = r.input
        if merged.output is None:
            merged.output = r.output
        if merged.usage is None and (claim is None or index < claim):  # see _usage_claim
            merged.usage = r.usage
        if merged.aggregated_usage is None:
            merged.aggregated_usage = r.aggregated_usage
        if merged.cost is None and (claim is None or index < claim):  # the cost above a claim stands
            merged.cost = r.cost
        if merged.completion_start_time is None:
            merged.completion_start_time = r.completion_start_time
        if merged.level is None:
            merged.level = r.level
        if merged.status_message is None:
            merged.status_message = r.status_message
        if merged.prompt_name is None:
            merged.prompt_name = r.prompt_name
        if merged.prompt_version is None:
            merged.prompt_version = r.prompt_version
        if merged.trace_name is None:
            merged.trace_name = r.trace_name
        if merged.trace_input is None:
            merged.trace_input = r.trace_input
        if merged.trace_output is None:
            merged.trace_output = r.trace_output
        if merged.user_id is None:
            merged.user_id = r.user_id
        if merged.session_id is None:
            merged.session_id = r.session_id
        if merged.public is None:
            merged.public = r.public
        if merged.environment is None:
            merged.environment = r.environment
        if merged.release is None:
            merged.release = r.release
        if merged.version is None:
            merged.version = r.version
        if merged.root is None:
            merged.root = r.root
        # Combined fields.
        if r.metadata:
            metadata = {**r.metadata, **metadata}
        if r.trace_metadata:
            trace_metadata = {**r.trace_metadata, **trace_metadata}
        if r.tags:
            tags.extend(r.tags)
        consumed.update(r.consumed)  # a set method: |= with a set of unknown kind is a generic call
    merged.metadata = metadata or None
    merged.trace_metadata = trace_metadata or None
    # Unique, in order: a dict comprehension compiles to direct calls, dict.fromkeys to a generic one.
    merged.tags = list({tag: None for tag in tags}) if tags else None
    merged.consumed = consumed
    return merged


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
