"""Langfuse SDK attributes (``langfuse.*``; scope ``langfuse-sdk``, SDK v3/v4/v5).

Wire facts (../shared/reference/langfuse-sdk.md §2.1): input/output are sent as-is when they
are strings and as JSON otherwise; v5 JSON-encodes every metadata value while v3/v4 send
strings and ints raw; ``completion_start_time`` arrives JSON-quoted; tags are a string array.
"""

from __future__ import annotations

from typing import Any, Final

from semconv.attrs import as_bool, as_float, as_int, as_str, parse_json, parse_json_any, unflatten, with_prefix
from semconv.extract import Dialect, Extract, SpanView
from semconv.messages import normalize_messages
from semconv.shapes import KeySet, key_memo
from semconv.timeparse import iso_to_micros
from semconv.usage import disjoint, disjoint_counts

OBSERVATION: Final = "langfuse.observation."
TRACE: Final = "langfuse.trace."

TYPES: Final = {
    "span": "SPAN",
    "generation": "GENERATION",
    "event": "EVENT",
    "embedding": "EMBEDDING",
    "agent": "AGENT",
    "tool": "TOOL",
    "chain": "CHAIN",
    "retriever": "RETRIEVER",
    "guardrail": "GUARDRAIL",
    "evaluator": "EVALUATOR",
}
LEVELS: Final = {
    **dict.fromkeys(("DEBUG", "TRACE", "VERBOSE"), "DEBUG"),
    **dict.fromkeys(("DEFAULT", "INFO", "LOG", "NOTICE", "OK", "SUCCESS"), "DEFAULT"),
    **dict.fromkeys(("WARNING", "WARN"), "WARNING"),
    **dict.fromkeys(("ERROR", "FATAL", "CRITICAL"), "ERROR"),
}
_GENERATION_HINTS = (
    "model.name",
    "cost_details",
    "usage_details",
    "completion_start_time",
    "model.parameters",
    "prompt.name",
    "prompt.version",
)

# usage_details keys -> bucket. Langfuse's own keys are already disjoint.
_NATIVE_USAGE: Final = {
    "input": "input",
    "output": "output",
    "total": "total",
    **dict.fromkeys(
        ("input_cached_tokens", "input_cache_read", "cache_read_input_tokens", "cached_tokens", "cache_read"),
        "cache_read",
    ),
    **dict.fromkeys(
        (
            "input_cache_creation",
            "input_cache_creation_5m",
            "input_cache_creation_1h",
            "cache_creation_input_tokens",
            "input_cache_write",
            "cache_write_tokens",
            "cache_write",
        ),
        "cache_write",
    ),
    **dict.fromkeys(("output_reasoning_tokens", "output_reasoning", "reasoning_tokens", "reasoning"), "reasoning"),
    **dict.fromkeys(("input_audio", "input_audio_tokens"), "input_audio"),
    **dict.fromkeys(("output_audio", "output_audio_tokens"), "output_audio"),
}


def _sum_into(target: dict[str, int], key: str, value: Any) -> None:
    number = as_int(value)
    if number is not None:
        target[key] = target.get(key, 0) + number


def usage_from_details(details: Any) -> dict[str, int] | None:
    """Buckets from a usage_details object: Langfuse keys, or an OpenAI / Anthropic usage object."""
    if not isinstance(details, dict) or not details:
        return None
    if "prompt_tokens" in details or "completion_tokens" in details:  # OpenAI: totals include details
        prompt = details.get("prompt_tokens_details") or {}
        completion = details.get("completion_tokens_details") or {}
        return disjoint(
            input=details.get("prompt_tokens"),
            output=details.get("completion_tokens"),
            cache_read=prompt.get("cached_tokens") if isinstance(prompt, dict) else None,
            input_audio=prompt.get("audio_tokens") if isinstance(prompt, dict) else None,
            reasoning=completion.get("reasoning_tokens") if isinstance(completion, dict) else None,
            output_audio=completion.get("audio_tokens") if isinstance(completion, dict) else None,
        )
    if "input_tokens" in details or "output_tokens" in details:  # Anthropic: input excludes the cache
        return disjoint(
            input=details.get("input_tokens"),
            output=details.get("output_tokens"),
            cache_read=details.get("cache_read_input_tokens"),
            cache_write=details.get("cache_creation_input_tokens"),
            input_includes_cache=False,
        )
    buckets: dict[str, int] = {}
    extra: dict[str, int] = {}
    for key, value in details.items():
        bucket = _NATIVE_USAGE.get(key)
        if bucket is None:
            _sum_into(extra, key, value)
        else:
            _sum_into(buckets, bucket, value)
    # Every bucket of _NATIVE_USAGE (its "total" included) is an argument of disjoint.
    return disjoint_counts(buckets, input_includes_cache=False, output_includes_reasoning=False, extra=extra)


def _cost(details: Any) -> dict[str, float] | None:
    if not isinstance(details, dict):
        return None
    cost = {k: v for k, v in ((k, as_float(v)) for k, v in details.items()) if v is not None}
    if cost and "total" not in cost:
        cost["total"] = sum(cost.values())
    return cost or None


# prefix -> (its metadata key, the prefix of its metadata.* keys), spelled out once, not per span.
_METADATA_KEYS: Final = {
    prefix: (prefix + "metadata", prefix + "metadata.") for prefix in (OBSERVATION, TRACE, "langfuse.")
}


def _metadata(attrs: dict[str, Any], keys: KeySet, prefix: str, decode_all: bool) -> dict[str, Any] | None:
    """``<prefix>metadata`` (a JSON object) merged with ``<prefix>metadata.<key>`` values."""
    blob_key, parts_prefix = _METADATA_KEYS[prefix]
    blob = parse_json(attrs.get(blob_key))
    merged: dict[str, Any] = dict(blob) if isinstance(blob, dict) else {}
    parts = with_prefix(attrs, parts_prefix, keys=keys)
    if parts:
        decoded = {k: parse_json_any(v) if decode_all else parse_json(v) for k, v in parts.items()}
        nested = unflatten(decoded)
        if isinstance(nested, dict):
            merged.update(nested)
    return merged or None


def _io(value: Any) -> Any:
    return normalize_messages(parse_json_any(value)) if value is not None else None


def _sdk_major(view: SpanView) -> int:
    head = view.scope_version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def matches(view: SpanView) -> bool:
    return "langfuse" in view.namespaces or view.scope_name.startswith("langfuse-sdk")


def extract(view: SpanView) -> Extract:
    attrs = view.attributes  # keys spelled out in full: literal strings are hashed once, not per span
    decode_all = _sdk_major(view) >= 5  # v5 JSON-encodes every metadata value; v3/v4 only non-scalars
    kind = TYPES.get(str(attrs.get("langfuse.observation.type", "")).lower())
    if kind == "SPAN" and _is_old_python_generation(view):
        kind = "GENERATION"
    level = LEVELS.get(str(attrs.get("langfuse.observation.level", "")).strip().upper())
    prompt_version = as_int(attrs.get("langfuse.observation.prompt.version", attrs.get("langfuse.prompt.version")))
    return Extract(
        type=kind,
        input=_io(attrs.get("langfuse.observation.input")),
        output=_io(attrs.get("langfuse.observation.output")),
        # The older top-level langfuse.metadata(.*) when the observation states none.
        metadata=_metadata(attrs, view.keys, OBSERVATION, decode_all)
        or _metadata(attrs, view.keys, "langfuse.", decode_all),
        level=level,
        status_message=as_str(attrs.get("langfuse.observation.status_message")),
        model=as_str(attrs.get("langfuse.observation.model.name")),
        model_parameters=_dict(parse_json(attrs.get("langfuse.observation.model.parameters"))),
        usage=usage_from_details(parse_json(attrs.get("langfuse.observation.usage_details"))),
        cost=_cost(parse_json(attrs.get("langfuse.observation.cost_details"))),
        completion_start_time=iso_to_micros(attrs.get("langfuse.observation.completion_start_time")),
        prompt_name=as_str(attrs.get("langfuse.observation.prompt.name", attrs.get("langfuse.prompt.name"))),
        prompt_version=prompt_version,
        trace_name=as_str(attrs.get("langfuse.trace.name")),
        trace_input=_io(attrs.get("langfuse.trace.input")),
        trace_output=_io(attrs.get("langfuse.trace.output")),
        trace_metadata=_metadata(attrs, view.keys, TRACE, decode_all),
        public=as_bool(attrs.get("langfuse.trace.public", attrs.get("langfuse.public"))),
        root=True
        if as_bool(attrs.get("langfuse.internal.as_root")) or as_bool(attrs.get("langfuse.internal.is_app_root"))
        else None,
        consumed=_langfuse_keys.of(view.keys),
    )


@key_memo
def _langfuse_keys(keys: tuple[str, ...]) -> frozenset[str]:
    return frozenset(key for key in keys if key.startswith("langfuse."))


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _is_old_python_generation(view: SpanView) -> bool:
    """Langfuse Python SDK <= 3.3 marked generations as spans; their generation fields tell."""
    if not view.scope_name.startswith("langfuse-sdk") or view.resource.get("telemetry.sdk.language") != "python":
        return False
    version = tuple(int(p) if p.isdigit() else 0 for p in view.scope_version.split(".")[:2])
    return version <= (3, 3) and any(OBSERVATION + hint in view.attributes for hint in _GENERATION_HINTS)


DIALECT: Dialect = Dialect("langfuse", matches, extract, by_keys=matches)  # matches reads only the scope and keys
