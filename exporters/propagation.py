"""``propagate_attributes``: trace-level facts (user, session, tags, …) for every span inside.

The values live in the OpenTelemetry context (and, with ``as_baggage=True``, in W3C baggage so
they cross service boundaries). ``LangfuseSpanProcessor.on_start`` picks them up for every span
started inside the block, third-party spans included. The key names and baggage spelling match
the Langfuse SDK (``langfuse_user_id``, ``langfuse_metadata_<key>``, …), so a service using the
Langfuse SDK and one using Spanfuse's processor understand each other's baggage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from exporters import attributes as attr

logger = logging.getLogger(__name__)

_CONTEXT_KEY = otel_context.create_key("spanfuse.propagated_attributes")
# Read baggage straight from the context dict on the hot path (``baggage.get_all`` builds a proxy
# on every call); fall back to the public API if the private key ever disappears.
_BAGGAGE_KEY: str | None = getattr(otel_baggage, "_BAGGAGE_KEY", None)

BAGGAGE_PREFIX = "langfuse_"
TRACE_ID_BAGGAGE_KEY = "langfuse_trace_id"
# In the mapping handed to the processor, the trace a parent service claims (baggage
# ``langfuse_trace_id``). It is not an attribute: the processor pops it.
TRACE_CLAIM = TRACE_ID_BAGGAGE_KEY
MAX_VALUE_LENGTH = 200  # Langfuse rejects longer ids and names

_BAGGAGE_TO_ATTRIBUTE = {
    "user_id": attr.TRACE_USER_ID,
    "session_id": attr.TRACE_SESSION_ID,
    "trace_name": attr.TRACE_NAME,
    "version": attr.VERSION,
    "tags": attr.TRACE_TAGS,
}
_ATTRIBUTE_TO_BAGGAGE = {v: k for k, v in _BAGGAGE_TO_ATTRIBUTE.items()}


def encode_metadata_value(value: Any) -> str:
    """A metadata value as an attribute: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):  # circular structures
        return str(value)


def _checked(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_VALUE_LENGTH:
        logger.warning("propagate_attributes: %s is longer than %d characters; not propagated", name, MAX_VALUE_LENGTH)
        return None
    return text


@contextmanager
def propagate_attributes(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    trace_name: str | None = None,
    version: str | None = None,
    as_baggage: bool = False,
) -> Iterator[None]:
    """Stamp trace attributes on every span started inside the ``with`` block.

    Nested blocks merge with outer ones: inner values win, tags are unioned and metadata keys are
    merged. The span current when the block starts gets the values too. With ``as_baggage=True``
    the values also travel as W3C baggage (``langfuse_*`` entries) to downstream services; do not
    use it for secrets, since baggage is sent in HTTP headers.

    >>> with propagate_attributes(user_id="u-1", session_id="s-1", tags=["beta"]):
    ...     run_agent()
    """
    outer: Mapping[str, AttributeValue] = otel_context.get_value(_CONTEXT_KEY) or {}  # type: ignore[assignment]
    values: dict[str, AttributeValue] = dict(outer)
    for name, key, raw in (
        ("user_id", attr.TRACE_USER_ID, user_id),
        ("session_id", attr.TRACE_SESSION_ID, session_id),
        ("trace_name", attr.TRACE_NAME, trace_name),
        ("version", attr.VERSION, version),
    ):
        text = _checked(name, raw)
        if text is not None:
            values[key] = text
    if tags:
        merged = list(outer.get(attr.TRACE_TAGS, ()))  # type: ignore[arg-type]
        merged.extend(t for t in (_checked("tag", tag) for tag in tags) if t is not None and t not in merged)
        values[attr.TRACE_TAGS] = tuple(merged)
    for key, value in (metadata or {}).items():
        if value is not None:
            values[f"{attr.TRACE_METADATA}.{key}"] = encode_metadata_value(value)

    ctx = otel_context.set_value(_CONTEXT_KEY, MappingProxyType(values))
    current = trace.get_current_span()
    if as_baggage:
        ctx = _with_baggage(ctx, values, current)
    if current.is_recording():
        current.set_attributes(values)
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def _with_baggage(ctx: Context, values: Mapping[str, AttributeValue], current: trace.Span) -> Context:
    metadata_prefix = attr.TRACE_METADATA + "."
    for key, value in values.items():
        if key.startswith(metadata_prefix):
            name = f"{BAGGAGE_PREFIX}metadata_{key[len(metadata_prefix) :]}"
        else:
            name = BAGGAGE_PREFIX + _ATTRIBUTE_TO_BAGGAGE[key]
        text = ",".join(value) if isinstance(value, tuple) else str(value)  # type: ignore[arg-type]
        ctx = otel_baggage.set_baggage(name, text, context=ctx)
    span_context = current.get_span_context()
    if span_context.is_valid:
        # Tells downstream processors that this trace already has an app root upstream.
        ctx = otel_baggage.set_baggage(TRACE_ID_BAGGAGE_KEY, format(span_context.trace_id, "032x"), context=ctx)
    return ctx


def propagated_from_context(ctx: Context) -> Mapping[str, AttributeValue] | None:
    """The attributes to stamp on a span started in ``ctx``, or None (the common, fast case)."""
    values: Mapping[str, AttributeValue] | None = ctx.get(_CONTEXT_KEY)  # type: ignore[assignment]
    bag = ctx.get(_BAGGAGE_KEY) if _BAGGAGE_KEY is not None else otel_baggage.get_all(ctx)
    if not bag:
        return values
    from_baggage = _from_baggage(bag)  # type: ignore[arg-type]
    if not from_baggage:
        return values
    if values:
        from_baggage.update(values)  # this process's own values win over what came in
    return from_baggage


def _from_baggage(bag: Mapping[str, object]) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {}
    for name, value in bag.items():
        if not name.startswith(BAGGAGE_PREFIX):
            continue
        text = str(value)
        if name == TRACE_ID_BAGGAGE_KEY:
            found[TRACE_CLAIM] = text
            continue
        suffix = name[len(BAGGAGE_PREFIX) :]
        if suffix.startswith("metadata_"):
            found[f"{attr.TRACE_METADATA}.{suffix[len('metadata_') :]}"] = text
        elif suffix == "tags":
            found[attr.TRACE_TAGS] = tuple(t for t in text.split(",") if t)
        elif suffix in _BAGGAGE_TO_ATTRIBUTE:
            found[_BAGGAGE_TO_ATTRIBUTE[suffix]] = text
    return found
