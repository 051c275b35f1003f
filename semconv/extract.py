"""What a dialect reads from one span, and how several dialects' readings combine."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class SpanView:
    """A span as dialects see it: decoded attributes plus the raw protobuf message."""

    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    span: Any
    namespaces: frozenset[str] = frozenset()  # first dotted segment of every attribute key

    @classmethod
    def of(cls, attributes: dict[str, Any], resource: dict[str, Any], scope: Any, span: Any) -> SpanView:
        return cls(
            attributes,
            resource,
            scope.name,
            scope.version,
            span,
            frozenset(key.split(".", 1)[0] for key in attributes),
        )

    @property
    def start_us(self) -> int:
        return self.span.start_time_unix_nano // 1000


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


def merge(extracts: Iterable[Extract]) -> Extract:
    """Combine readings given highest precedence first.

    For each field the first non-None value wins; metadata dicts are merged key by key (higher
    precedence wins a key); tags are unioned; consumed keys are unioned. A reading that reports
    ``aggregated_usage`` claims the span's usage: lower readings cannot bill it as ``usage``.
    """
    result = Extract()
    usage_claimed = False  # a higher reading said the usage here is aggregate: lower ones may not bill it
    for extract in extracts:
        if extract.aggregated_usage is not None and result.usage is None:
            usage_claimed = True
        for name in _SCALARS:
            if getattr(result, name) is None:
                value = getattr(extract, name)
                if value is not None and not (usage_claimed and name in ("usage", "cost")):
                    setattr(result, name, value)
        for name in _MERGED_DICTS:
            value = getattr(extract, name)
            if value:
                current = getattr(result, name)
                setattr(result, name, {**value, **current} if current else dict(value))
        if extract.tags:
            result.tags = list(dict.fromkeys([*(result.tags or ()), *extract.tags]))
        result.consumed |= extract.consumed
    return result


@dataclass(frozen=True)
class Dialect:
    """One attribute dialect: a cheap recogniser and a reader."""

    name: str
    matches: Callable[[SpanView], bool]
    extract: Callable[[SpanView], Extract]
