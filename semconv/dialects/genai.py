"""OpenTelemetry GenAI semantic conventions, every generation (≤1.26 events … 1.41 and the genai repo).

Also the plain ``gen_ai.*`` keys other dialects emit beside their own (OpenLLMetry ≥0.55,
OpenLIT, Pydantic AI, Vercel v7), so this dialect has the lowest precedence. Facts:
../shared/reference/semconv.md §1, §10.
"""

from __future__ import annotations

from typing import Any, Final

from semconv.attrs import as_float, first, is_blank, parse_json, parse_json_any
from semconv.extract import Dialect, Extract, SpanView
from semconv.messages import normalize_messages, prepend_system
from semconv.shapes import KeySet, Plan, key_memo, ranked_present
from semconv.usage import disjoint_counts
from semconv.values import attributes

OPERATION_TYPES: Final = {
    **dict.fromkeys(("chat", "text_completion", "generate_content", "completion", "generate"), "GENERATION"),
    "embeddings": "EMBEDDING",
    **dict.fromkeys(("retrieval", "search_memory"), "RETRIEVER"),
    **dict.fromkeys(("create_agent", "invoke_agent"), "AGENT"),
    "execute_tool": "TOOL",
    **dict.fromkeys(("invoke_workflow", "plan"), "CHAIN"),
    "apply_guardrail": "GUARDRAIL",
}
# Spans that report the usage of the model calls below them (an in-process agent or workflow).
AGGREGATING_OPERATIONS: Final = frozenset({"invoke_agent", "create_agent", "invoke_workflow", "agent_step"})
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")
TTFT_KEYS = (  # seconds from the request to the first chunk
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.client.operation.time_to_first_chunk",
    "gen_ai.server.time_to_first_token",
)
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system")

# Usage aliases across generations and vendors (all count cache inside input, reasoning inside output).
USAGE_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "input": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "total": ("gen_ai.usage.total_tokens",),
    "cache_read": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.prompt_tokens_details.cached_tokens",
        "gen_ai.usage.details.cache_read_tokens",
        "gen_ai.usage.details.cache_read_input_tokens",
    ),
    "cache_write": (
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.prompt_tokens_details.cache_creation_tokens",
        "gen_ai.usage.details.cache_write_tokens",
        "gen_ai.usage.details.cache_creation_input_tokens",
    ),
    "reasoning": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "gen_ai.usage.completion_tokens_details.reasoning_tokens",
        "gen_ai.usage.details.reasoning_tokens",
    ),
    "input_audio": ("gen_ai.usage.audio.input_tokens", "gen_ai.usage.details.input_audio_tokens"),
    "output_audio": (
        "gen_ai.usage.audio.output_tokens",
        "gen_ai.usage.completion_tokens_details.audio_tokens",
        "gen_ai.usage.details.output_audio_tokens",
    ),
}
_ALL_USAGE_KEYS: Final = frozenset(k for keys in USAGE_KEYS.values() for k in keys)
CONTENT_KEYS: Final = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.retrieval.query.text",
        "gen_ai.retrieval.documents",
    }
)
_PARAMETER_PREFIXES = ("gen_ai.request.", "gen_ai.openai.request.", "openai.request.")
_MESSAGE_EVENTS: Final = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _usage_index(prefix: str) -> dict[str, tuple[str, int]]:
    """Every usage key under ``prefix`` -> (bucket, rank among that bucket's aliases)."""
    size = len("gen_ai.usage.")
    return {prefix + key[size:]: (bucket, rank) for bucket, keys in USAGE_KEYS.items() for rank, key in enumerate(keys)}


_USAGE_INDEXES: Final = {prefix: _usage_index(prefix) for prefix in ("gen_ai.usage.", "gen_ai.aggregated_usage.")}


@key_memo
def _usage_plan(keys: tuple[str, ...], prefix: str) -> Plan:
    """(bucket, the bucket's aliases present in ``keys``, best rank first) for every bucket
    present — the keys decide, so planned once per key set and prefix."""
    return ranked_present(keys, _USAGE_INDEXES.get(prefix) or _usage_index(prefix))


def usage_from(
    attrs: dict[str, Any], prefix: str = "gen_ai.usage.", *, keys: KeySet | None = None
) -> dict[str, int] | None:
    """Disjoint buckets from ``gen_ai.usage.*`` (or the same names under another prefix).

    For each bucket the first alias in ``USAGE_KEYS`` with a non-empty value wins. ``keys``, the
    span's :class:`KeySet` when the caller has it, saves working it out again.
    """
    best: dict[str, Any] = {}
    for bucket, aliases in _usage_plan.of(attrs if keys is None else keys, prefix):
        for key in aliases:
            value = attrs[key]
            if not is_blank(value):
                best[bucket] = value
                break
    if not best:
        return None
    return disjoint_counts(best)


@key_memo
def _parameter_plan(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(key, parameter name) of every request-parameter key but the model; the first key of a name wins."""
    plan: dict[str, str] = {}
    for key in keys:
        if key.startswith(_PARAMETER_PREFIXES):
            name = key[key.index(".request.") + len(".request.") :]
            if name != "model" and name not in plan:
                plan[name] = key
    return tuple((key, name) for name, key in plan.items())


def model_parameters(attrs: dict[str, Any], *, keys: KeySet | None = None) -> dict[str, Any] | None:
    """``gen_ai.request.*`` (and the older OpenAI-specific names) without the model (``keys``: see usage_from)."""
    return {name: attrs[key] for key, name in _parameter_plan.of(attrs if keys is None else keys)} or None


@key_memo
def _consumed_keys(keys: tuple[str, ...]) -> frozenset[str]:
    """The keys this dialect maps (content, usage, parameters), left out of the raw attributes."""
    return frozenset(
        key
        for key in keys
        if key in CONTENT_KEYS
        or key in _ALL_USAGE_KEYS
        or key.startswith(_PARAMETER_PREFIXES)
        or key.startswith("gen_ai.aggregated_usage.")
    )


def content_from_attributes(attrs: dict[str, Any]) -> tuple[Any, Any]:
    """(input, output) from ≥1.37 message attributes, or the ≤1.26 / OpenLIT prompt strings."""
    messages = attrs.get("gen_ai.input.messages")
    system = attrs.get("gen_ai.system_instructions")
    input_value = None
    if messages is not None or system is not None:
        input_value = prepend_system(normalize_messages(parse_json(messages)), parse_json(system))
    output_value = normalize_messages(parse_json(attrs.get("gen_ai.output.messages")))
    if input_value is None and attrs.get("gen_ai.prompt") is not None:
        input_value = normalize_messages(parse_json(attrs["gen_ai.prompt"]))
    if output_value is None and attrs.get("gen_ai.completion") is not None:
        output_value = normalize_messages(parse_json(attrs["gen_ai.completion"]))
    return input_value, output_value


def log_content(event_name: str | None, body: Any, attrs: dict[str, Any]) -> tuple[Any, Any]:
    """(input, output) messages carried by one GenAI log record (1.28-1.36 events, ≥1.37 details)."""
    if event_name == "gen_ai.client.inference.operation.details":
        source = body if isinstance(body, dict) and "gen_ai.input.messages" in body else attrs
        return content_from_attributes(source)
    if event_name in _MESSAGE_EVENTS:
        messages = normalize_messages(
            body if isinstance(body, dict) else {"content": body}, _MESSAGE_EVENTS[event_name]
        )
        return (messages if isinstance(messages, list) else None), None
    if event_name == "gen_ai.choice" and isinstance(body, dict):
        message = dict(body.get("message") or {})
        if body.get("finish_reason") is not None:
            message.setdefault("finish_reason", body["finish_reason"])
        messages = normalize_messages(message, "assistant")
        return None, (messages if isinstance(messages, list) else None)
    return None, None


def _content_from_events(span: Any) -> tuple[Any, Any]:
    """(input, output) carried as span events: operation.details, per-message events, ≤1.26 content."""
    inputs: list[Any] = []
    outputs: list[Any] = []
    for event in span.events:
        name = event.name
        if name == "gen_ai.client.inference.operation.details":
            details = attributes(event.attributes)
            return content_from_attributes(details)
        if name in _MESSAGE_EVENTS or name == "gen_ai.choice":
            body = attributes(event.attributes)
            target = outputs if name == "gen_ai.choice" else inputs
            message = body.get("message") if name == "gen_ai.choice" else body
            role = "assistant" if name == "gen_ai.choice" else _MESSAGE_EVENTS[name]
            target.extend(normalize_messages(parse_json(message) or {}, default_role=role) or [])
        elif name == "gen_ai.content.prompt":
            inputs.append(parse_json(attributes(event.attributes).get("gen_ai.prompt")))
        elif name == "gen_ai.content.completion":
            outputs.append(parse_json(attributes(event.attributes).get("gen_ai.completion")))
    return _flatten_one(inputs), _flatten_one(outputs)


def _flatten_one(items: list[Any]) -> Any:
    if not items:
        return None
    if len(items) == 1:
        return normalize_messages(items[0])
    if all(isinstance(i, dict) for i in items):
        return items
    return normalize_messages([i for item in items for i in (item if isinstance(item, list) else [item])])


def operation_type(attrs: dict[str, Any]) -> str | None:
    """Observation type from the operation name, tool keys or a model key (Langfuse's rules)."""
    kind = OPERATION_TYPES.get(str(attrs.get("gen_ai.operation.name", "")))
    if kind is None and ("gen_ai.tool.name" in attrs or "gen_ai.tool.call.id" in attrs):
        kind = "TOOL"
    if kind is None and first(attrs, MODEL_KEYS) is not None:
        kind = "GENERATION"
    return kind


def by_keys(view: SpanView) -> bool | None:
    """Recognised by a ``gen_ai.*`` key; else the span's events decide (see Dialect.by_keys)."""
    return True if "gen_ai" in view.namespaces else None


def matches(view: SpanView) -> bool:
    if by_keys(view):
        return True
    events = view.span.events  # most spans of other dialects have none: skip the generator then
    return bool(events) and any(e.name.startswith("gen_ai.") for e in events)


def extract(view: SpanView) -> Extract:
    attrs = view.attributes
    operation = str(attrs.get("gen_ai.operation.name", ""))
    kind = operation_type(attrs)
    input_value, output_value = content_from_attributes(attrs)
    if input_value is None and output_value is None and view.span.events:
        input_value, output_value = _content_from_events(view.span)
    if input_value is None and output_value is None and kind == "TOOL":
        input_value = parse_json(attrs.get("gen_ai.tool.call.arguments"))
        output_value = parse_json_any(attrs.get("gen_ai.tool.call.result"))
    if input_value is None and output_value is None and kind == "RETRIEVER":
        input_value = attrs.get("gen_ai.retrieval.query.text")
        output_value = parse_json(attrs.get("gen_ai.retrieval.documents"))
    usage = usage_from(attrs, keys=view.keys)
    aggregated = usage_from(attrs, "gen_ai.aggregated_usage.", keys=view.keys)
    # An in-process agent or workflow span repeats its model calls' usage: keep it visible, never bill it.
    if usage is not None and operation in AGGREGATING_OPERATIONS and view.span.kind != 3:  # 3 = CLIENT
        aggregated, usage = aggregated or usage, None
    cost = as_float(attrs.get("gen_ai.usage.cost"))
    if cost == 0 and usage and usage.get("total"):
        cost = None  # OpenLIT writes 0 for models missing from its own price list: not a real price
    ttft = as_float(first(attrs, TTFT_KEYS))
    return Extract(
        type=kind,
        name=attrs.get("gen_ai.tool.name") if kind == "TOOL" else None,
        model=first(attrs, MODEL_KEYS),
        provider=first(attrs, PROVIDER_KEYS),
        model_parameters=model_parameters(attrs, keys=view.keys),
        input=input_value,
        output=output_value,
        usage=usage,
        aggregated_usage=aggregated,
        cost={"total": cost} if cost is not None else None,
        completion_start_time=view.start_us + int(ttft * 1_000_000) if ttft is not None and ttft >= 0 else None,
        consumed=(_consumed_keys.of(view.keys) | {"gen_ai.usage.cost"}) if cost else _consumed_keys.of(view.keys),
    )


DIALECT: Dialect = Dialect("genai", matches, extract, by_keys)
