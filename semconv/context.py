"""Trace context every dialect shares: session, user, tags, environment, release, version.

Each field is read through an alias table, first match wins. The order follows Langfuse's
server (so its SDK and docs behave the same here) extended with the dialects it misses.
"""

from __future__ import annotations

import re
from typing import Any, Final

from semconv.attrs import as_str, is_blank, parse_json, parse_json_any
from semconv.extract import Extract, SpanView
from semconv.shapes import Plan, key_memo, ranked_present, remember

SESSION_KEYS = (
    "langfuse.session.id",
    "session.id",
    "gen_ai.conversation.id",
    "langfuse.observation.metadata.langfuse_session_id",
    "langfuse.trace.metadata.langfuse_session_id",
    "ai.telemetry.metadata.sessionId",
    "traceloop.association.properties.session_id",
    "traceloop.association.properties.sessionId",
)
USER_KEYS = (
    "langfuse.user.id",
    "user.id",
    "langfuse.observation.metadata.langfuse_user_id",
    "langfuse.trace.metadata.langfuse_user_id",
    "ai.telemetry.metadata.userId",
    "traceloop.association.properties.user_id",
    "traceloop.association.properties.userId",
)
TAG_KEYS = (
    "langfuse.trace.tags",
    "langfuse.tags",
    "langfuse.observation.metadata.langfuse_tags",
    "langfuse.trace.metadata.langfuse_tags",
    "ai.telemetry.metadata.tags",
    "tag.tags",
    "logfire.tags",
)
ENVIRONMENT_KEYS = ("langfuse.environment", "deployment.environment.name", "deployment.environment")
SPAN_ENVIRONMENT_KEYS = (*ENVIRONMENT_KEYS, "gen_ai.environment")  # old OpenLIT put it on each span
RELEASE_KEYS = ("langfuse.release",)
VERSION_KEYS = ("langfuse.version",)
RESOURCE_VERSION_KEYS = ("langfuse.version", "service.version")

DEFAULT_ENVIRONMENT: Final = "default"
_ENVIRONMENT: Final = re.compile(r"^[a-z0-9_-]+$")
_LANGFUSE_PREFIX: Final = re.compile(r"^(langfuse[-_]?)+")


def _text(key: str, value: Any) -> str | None:
    # Langfuse SDK v5 JSON-encodes metadata values: '"abc"' means abc.
    if ".metadata." in key and isinstance(value, str) and value.startswith('"'):
        value = parse_json_any(value)
    return as_str(value)


def _first_text(attrs: dict[str, Any], keys: tuple[str, ...], used: set[str]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if not is_blank(value):
            used.add(key)
            return _text(key, value)
    return None


def parse_tags(value: Any) -> list[str]:
    """Tags from a string array, a JSON array string, a comma-separated string or one string."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = parse_json(text)
        elif "," in text:
            return [t.strip() for t in text.split(",") if t.strip()]
        else:
            return [text] if text else []
    if isinstance(value, list):
        return [t for t in (as_str(v) for v in value) if t]
    single = as_str(value)
    return [single] if single else []


# Every span of a resource usually names the same few environments: remember their normal forms.
_NORMALIZED: Final[dict[str, str]] = {}
_MAX_NORMALIZED: Final = 1024


def normalize_environment(value: Any) -> str:
    """Langfuse's environment rule: lower-case, no ``langfuse`` prefix, [a-z0-9_-], ≤ 40 chars."""
    if type(value) is str:
        found = _NORMALIZED.get(value)
        if found is None:
            found = _normalize_environment(value)
            if len(value) <= 256:
                remember(_NORMALIZED, value, found, _MAX_NORMALIZED)
        return found
    return _normalize_environment(value)


def _normalize_environment(value: Any) -> str:
    text = _LANGFUSE_PREFIX.sub("", str(value).strip().lower())[:40]
    return text if text and _ENVIRONMENT.match(text) else DEFAULT_ENVIRONMENT


# Every alias key -> (field, rank): one pass over a span's attributes finds the best of each field.
_ALIASES: Final[dict[str, tuple[str, int]]] = {
    key: (field, rank)
    for field, keys in (
        ("session_id", SESSION_KEYS),
        ("user_id", USER_KEYS),
        ("tags", TAG_KEYS),
        ("environment", SPAN_ENVIRONMENT_KEYS),
        ("release", RELEASE_KEYS),
        ("version", VERSION_KEYS),
    )
    for rank, key in enumerate(keys)
}
_RESOURCE_FALLBACKS = (("environment", ENVIRONMENT_KEYS), ("release", RELEASE_KEYS), ("version", RESOURCE_VERSION_KEYS))


def resource_facts(resource: dict[str, Any]) -> dict[str, Any]:
    """Environment, release and version a resource gives every span (computed once per resource)."""
    return {field: _first_text(resource, keys, set()) for field, keys in _RESOURCE_FALLBACKS}


@key_memo
def _alias_plan(keys: tuple[str, ...]) -> Plan:
    """(field, the field's alias keys present, best rank first) for every field with one present
    — usually none or one or two — planned once per key set."""
    return ranked_present(keys, _ALIASES)


def context(view: SpanView) -> Extract:
    """Session, user, tags, environment, release and version of one span."""
    attrs = view.attributes
    # One local per field rather than a dict of them: this runs for every span.
    session_id: str | None = None
    user_id: str | None = None
    tags: list[str] | None = None
    environment: str | None = None
    release: str | None = None
    version: str | None = None
    consumed: set[str] = set()
    for field, aliases in _alias_plan.of(view.keys):
        for key in aliases:  # the best-ranked alias with a value wins
            value = attrs[key]
            if is_blank(value) or (isinstance(value, list) and not value):
                continue
            if field == "tags":
                tags = parse_tags(parse_json_any(value) if ".metadata." in key else value)
            elif field == "session_id":
                session_id = _text(key, value)
            elif field == "user_id":
                user_id = _text(key, value)
            elif field == "environment":
                environment = _text(key, value)
            elif field == "release":
                release = _text(key, value)
            else:
                version = _text(key, value)
            consumed.add(key)
            break
    defaults = view.resource_facts if view.resource_facts is not None else resource_facts(view.resource)
    if environment is None:
        environment = defaults.get("environment")
    if release is None:
        release = defaults.get("release")
    if version is None:
        version = defaults.get("version")
    return Extract(
        session_id=session_id,
        user_id=user_id,
        tags=tags or None,
        environment=normalize_environment(environment) if environment else None,
        release=release,
        version=version,
        consumed=consumed,
    )
