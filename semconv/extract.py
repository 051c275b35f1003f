"""What a dialect reads from one span, and how several dialects' readings combine."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from semconv.shapes import key_memo


@dataclass(frozen=True, slots=True)
class SpanView:
    """A span as dialects see it: decoded attributes plus the raw protobuf message."""

    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    span: Any
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
        return cls(attributes, resource, scope.name, scope.version, span, namespaces_of(attributes), resource_facts)

    @property
    def start_us(self) -> int:
        return self.span.start_time_unix_nano // 1000


@key_memo
def namespaces_of(keys: tuple[str, ...]) -> frozenset[str]:
    """The first dotted segment of every attribute key."""
    return frozenset({key.partition(".")[0] for key in keys})


@dataclass(slots=True)
class Extract:
    """Fields a dialect found; None means "this dialect does not say"."""

    # observation
    type: str | None = None
    name: str | None = None
    model: str | None = None
    provider: str | None = None
    model_parameters: dict[str, Any] | None = None
    input: Any = None
    output: Any = None
    usage: dict[str, int] | None = None
    aggregated_usage: dict[str, int] | None = None  # repeats the children's usage: shown, never priced
    cost: dict[str, float] | None = None  # cost the client computed (USD per bucket, "total")
    completion_start_time: int | None = None  # µs since the epoch
    level: str | None = None
    status_message: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    metadata: dict[str, Any] | None = None
    # trace facts
    trace_name: str | None = None
    trace_input: Any = None
    trace_output: Any = None
    trace_metadata: dict[str, Any] | None = None
    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] | None = None
    public: bool | None = None
    environment: str | None = None
    release: str | None = None
    version: str | None = None
    root: bool | None = None  # a logical root (app root / forced root) even with a parent
    # attribute keys this reading used; they are left out of the stored raw attributes
    consumed: set[str] = field(default_factory=set)


_MERGED_DICTS = ("metadata", "trace_metadata")
_SCALARS = tuple(f.name for f in fields(Extract) if f.name not in (*_MERGED_DICTS, "tags", "consumed"))
_scalars_of = attrgetter(*_SCALARS)
_BILLED = frozenset({"usage", "cost"})


def merge(extracts: Iterable[Extract]) -> Extract:
    """Combine readings given highest precedence first.

    For each field the first non-None value wins; metadata dicts are merged key by key (higher
    precedence wins a key); tags are unioned; consumed keys are unioned. A reading that reports
    ``aggregated_usage`` claims the span's usage: lower readings cannot bill it as ``usage``.
    """
    values: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    trace_metadata: dict[str, Any] = {}
    tags: list[str] = []
    consumed: set[str] = set()
    usage_claimed = False  # a higher reading said the usage here is aggregate: lower ones may not bill it
    for extract in extracts:
        if extract.aggregated_usage is not None and "usage" not in values:
            usage_claimed = True
        for name, value in zip(_SCALARS, _scalars_of(extract), strict=True):
            if value is not None and name not in values and not (usage_claimed and name in _BILLED):
                values[name] = value
        if extract.metadata:
            metadata = {**extract.metadata, **metadata}
        if extract.trace_metadata:
            trace_metadata = {**extract.trace_metadata, **trace_metadata}
        if extract.tags:
            tags.extend(extract.tags)
        consumed |= extract.consumed
    result = Extract(**values, consumed=consumed)
    result.metadata = metadata or None
    result.trace_metadata = trace_metadata or None
    result.tags = list(dict.fromkeys(tags)) if tags else None
    return result


@dataclass(frozen=True)
class Dialect:
    """One attribute dialect: a cheap recogniser and a reader."""

    name: str
    matches: Callable[[SpanView], bool]
    extract: Callable[[SpanView], Extract]
