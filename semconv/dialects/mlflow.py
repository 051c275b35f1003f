"""MLflow tracing exported over OTLP: ``mlflow.*`` keys, every value JSON-encoded (``mlflow.spanType`` = ``'"LLM"'``).

Only model spans (LLM, CHAT_MODEL, EMBEDDING) are billed: other span types that carry
``mlflow.chat.tokenUsage`` (an autologged agent run, Anthropic's ``count_tokens``) repeat or estimate usage,
so theirs is shown as aggregated. ``mlflow.traceTag.<k>`` values are plain strings (not JSON).
Facts: ../shared/reference/semconv.md §8, §10; ``mlflow/tracing/constant.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from semconv.attrs import as_float, as_int, as_str, is_blank, parse_json_any, with_prefix
from semconv.extract import Dialect, Extract, SpanView
from semconv.messages import normalize_messages, prepend_system
from semconv.parameters import PARAMETER_NAMES
from semconv.usage import disjoint, provider_input_includes_cache

TYPES: Final = {
    "LLM": "GENERATION",
    "CHAT_MODEL": "GENERATION",
    "EMBEDDING": "EMBEDDING",
    "CHAIN": "CHAIN",
    "AGENT": "AGENT",
    "TOOL": "TOOL",
    "RETRIEVER": "RETRIEVER",
    "RERANKER": "RETRIEVER",  # reorders retrieved documents; Langfuse has no reranker type
    "PARSER": "SPAN",
    "MEMORY": "SPAN",
    "UNKNOWN": "SPAN",
    # custom span types that happen to be Langfuse types
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
    "WORKFLOW": "CHAIN",
}
BILLED_TYPES: Final = frozenset({"GENERATION", "EMBEDDING"})
STATUS_CODE_ERROR: Final = 2  # an error status is never masked by a milder explicit level

SPAN_TYPE: Final = "mlflow.spanType"
INPUTS: Final = "mlflow.spanInputs"
OUTPUTS: Final = "mlflow.spanOutputs"
USAGE: Final = "mlflow.chat.tokenUsage"
COST: Final = "mlflow.llm.cost"
MODEL: Final = "mlflow.llm.model"
PROVIDER: Final = "mlflow.llm.provider"
MESSAGE_FORMAT: Final = "mlflow.message.format"
TOOLS: Final = "mlflow.chat.tools"
LINKED_PROMPTS: Final = "mlflow.linkedPrompts"
LOG_LEVEL: Final = "mlflow.spanLogLevel"
TAG_PREFIX: Final = "mlflow.traceTag."
TRACE_NAME_TAG: Final = "mlflow.traceName"
CHUNK_EVENT_PREFIX: Final = "mlflow.chunk.item."

COST_KEYS: Final = {"input_cost": "input", "output_cost": "output", "total_cost": "total"}
REQUEST_CONTENT_KEYS: Final = frozenset({"messages", "model", "system", "tools"})
# LangChain message dicts (``{"type": "human", "content": ...}``) -> roles.
LANGCHAIN_ROLES: Final = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}
# SpanLogLevel: DEBUG 10, INFO 20, WARNING 30, ERROR 40, CRITICAL 50 (names accepted too).
LEVEL_NAMES: Final = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def matches(view: SpanView) -> bool:
    return "mlflow" in view.namespaces


def extract(view: SpanView) -> Extract:
    attrs = view.attributes
    consumed: set[str] = set()
    span_type = as_str(parse_json_any(attrs.get(SPAN_TYPE)))  # kept raw: several types map to SPAN
    kind = TYPES.get(span_type.upper()) if span_type else None
    billed = kind in BILLED_TYPES
    inputs, request_rest, params, request_model = _inputs(_decoded(attrs, INPUTS, consumed))
    usage = _usage(attrs, consumed)
    cost = _cost(attrs) if billed else None
    consumed |= {COST} if cost else set()
    prompt = _prompt(attrs, consumed) if kind == "GENERATION" else None
    trace_name, tags = _trace_tags(attrs, consumed)
    metadata: dict[str, Any] = {}
    if request_rest:
        metadata["request"] = request_rest
    tools = _decoded(attrs, TOOLS, consumed)
    if tools is not None:
        metadata["tools"] = tools
    raw_output = _decoded(attrs, OUTPUTS, consumed)
    output = outputs(raw_output)
    if isinstance(raw_output, Mapping) and output is not raw_output:
        consumed.discard(OUTPUTS)  # a completion envelope (id, usage…) reshaped to messages: keep the original
    return Extract(
        type=kind,
        model=as_str(_decoded(attrs, MODEL, consumed)) or (request_model if billed else None),
        provider=as_str(_decoded(attrs, PROVIDER, consumed)),
        model_parameters=params or None,
        input=inputs,
        output=output,
        usage=usage if billed else None,
        aggregated_usage=None if billed else usage,
        cost=cost,
        completion_start_time=_first_chunk_time(view.span),
        level=None if view.span.status.code == STATUS_CODE_ERROR else _level(attrs),
        prompt_name=prompt[0] if prompt else None,
        prompt_version=prompt[1] if prompt else None,
        metadata=metadata or None,
        trace_name=trace_name,
        trace_metadata=tags or None,
        consumed=consumed,
    )


def _decoded(attrs: dict[str, Any], key: str, consumed: set[str]) -> Any:
    """The JSON-decoded value of an ``mlflow.*`` key (None if absent); the key counts as read."""
    value = attrs.get(key)
    if is_blank(value):
        return None
    consumed.add(key)
    return parse_json_any(value)


# --- content -------------------------------------------------------------------------------------------


def _inputs(value: Any) -> tuple[Any, dict[str, Any], dict[str, Any], str | None]:
    """(input, other request keys, model parameters, request model) from the decoded span inputs.

    Chat requests (``{"messages": [...], "model": ..., "temperature": ...}``) become messages; their
    parameters and model are split out and any other key kept for metadata. Anything else is kept as is.
    """
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        messages = chat_messages(value["messages"])
        if messages is not None:
            params = {k: v for k, v in value.items() if k in PARAMETER_NAMES}
            rest = {k: v for k, v in value.items() if k not in PARAMETER_NAMES and k not in REQUEST_CONTENT_KEYS}
            return prepend_system(messages, value.get("system")), rest, params, as_str(value.get("model"))
    if isinstance(value, list):
        messages = chat_messages(value)
        if messages is not None:
            return messages, {}, {}, None
    return value, {}, {}, None


def chat_messages(items: list[Any]) -> list[Any] | None:
    """Messages in OpenAI / Anthropic / LangChain shape, normalised; None if ``items`` is not chat."""
    if items and isinstance(items[0], list) and len(items) == 1:  # LangChain: one list of messages per prompt
        items = items[0]
    if not items or not all(isinstance(i, Mapping) for i in items):
        return None
    items = [_langchain_message(i) for i in items]
    normalized = normalize_messages(items)
    return normalized if normalized is not items else None


def _langchain_message(item: Mapping[str, Any]) -> Mapping[str, Any]:
    if "role" in item or item.get("type") not in LANGCHAIN_ROLES:
        return item
    message = {"role": LANGCHAIN_ROLES[item["type"]], "content": item.get("content")}
    for key in ("tool_calls", "tool_call_id", "name"):
        if item.get(key):
            message[key] = item[key]
    return message


def outputs(value: Any) -> Any:
    """Decoded span outputs: an OpenAI completion, an Anthropic message or a message list as chat."""
    if isinstance(value, Mapping):
        choices = value.get("choices")
        if isinstance(choices, list) and choices and all(isinstance(c, Mapping) for c in choices):
            messages = [_choice_message(c) for c in choices]
            if all(isinstance(m, Mapping) for m in messages):
                normalized = normalize_messages(messages, "assistant")
                return normalized if normalized is not messages else value
        if isinstance(value.get("role"), str) and "content" in value:  # Anthropic Message
            message = {"role": value["role"], "content": value["content"]}
            if value.get("stop_reason"):
                message["finish_reason"] = value["stop_reason"]
            normalized = normalize_messages(message)
            return normalized if isinstance(normalized, list) else value
        return value
    if isinstance(value, list):
        chat = chat_messages(value)
        return chat if chat is not None else value
    return value


def _choice_message(choice: Mapping[str, Any]) -> Any:
    message = choice.get("message")
    if not isinstance(message, Mapping):
        return None
    result = dict(message)
    if choice.get("finish_reason"):
        result.setdefault("finish_reason", choice["finish_reason"])
    return result


# --- usage, cost, prompt, level, tags, timing ----------------------------------------------------------


def _usage(attrs: dict[str, Any], consumed: set[str]) -> dict[str, int] | None:
    """``mlflow.chat.tokenUsage``: each flavor passes its provider's counting (raw Anthropic excludes the cache).

    The message format names the flavor that produced the numbers (``anthropic`` raw; ``langchain``,
    ``openai``, ``pydantic_ai`` normalised to include the cache), so it decides before the provider.
    """
    usage = parse_json_any(attrs.get(USAGE))
    if not isinstance(usage, Mapping):
        return None
    consumed.add(USAGE)
    convention = as_str(parse_json_any(attrs.get(MESSAGE_FORMAT))) or as_str(parse_json_any(attrs.get(PROVIDER)))
    return disjoint(
        input=usage.get("input_tokens"),
        output=usage.get("output_tokens"),
        total=usage.get("total_tokens"),
        cache_read=usage.get("cache_read_input_tokens"),
        cache_write=usage.get("cache_creation_input_tokens"),
        input_includes_cache=provider_input_includes_cache(convention),
    )


def _cost(attrs: dict[str, Any]) -> dict[str, float] | None:
    """``mlflow.llm.cost`` ``{input_cost, output_cost, total_cost}`` (USD) -> ``{input, output, total}``."""
    value = parse_json_any(attrs.get(COST))
    if not isinstance(value, Mapping):
        return None
    cost = {name: number for key, name in COST_KEYS.items() if (number := as_float(value.get(key))) is not None}
    if cost and "total" not in cost:
        cost["total"] = sum(cost.values())
    return cost or None


def _prompt(attrs: dict[str, Any], consumed: set[str]) -> tuple[str, int | None] | None:
    """The first of ``mlflow.linkedPrompts`` (JSON ``[{name, version}]``)."""
    prompts = parse_json_any(attrs.get(LINKED_PROMPTS))
    if isinstance(prompts, str):  # double-encoded
        prompts = parse_json_any(prompts)
    linked = prompts[0] if isinstance(prompts, list) and prompts else None
    if not isinstance(linked, Mapping):
        return None
    name = as_str(linked.get("name"))
    if not name:
        return None
    consumed.add(LINKED_PROMPTS)
    return name, as_int(linked.get("version"))


def _level(attrs: dict[str, Any]) -> str | None:
    """``mlflow.spanLogLevel`` (kept raw too: INFO has no Langfuse level of its own)."""
    value = parse_json_any(attrs.get(LOG_LEVEL))
    number = LEVEL_NAMES.get(value.strip().upper()) if isinstance(value, str) else as_int(value)
    if number is None:
        return None
    if number >= LEVEL_NAMES["ERROR"]:
        return "ERROR"
    if number >= LEVEL_NAMES["WARNING"]:
        return "WARNING"
    return "DEBUG" if number <= LEVEL_NAMES["DEBUG"] else None  # INFO: the status decides


def _trace_tags(attrs: dict[str, Any], consumed: set[str]) -> tuple[str | None, dict[str, Any]]:
    """``mlflow.traceTag.<k>`` (plain strings) -> trace metadata; the ``mlflow.traceName`` tag -> trace name."""
    tags = with_prefix(attrs, TAG_PREFIX)
    consumed |= {TAG_PREFIX + k for k in tags}
    name = as_str(tags.get(TRACE_NAME_TAG))
    return name, {k: v for k, v in tags.items() if k != TRACE_NAME_TAG}


def _first_chunk_time(span: Any) -> int | None:
    """Streaming spans record each chunk as an ``mlflow.chunk.item.<i>`` event: the first one's time."""
    times = [e.time_unix_nano for e in span.events if e.name.startswith(CHUNK_EVENT_PREFIX) and e.time_unix_nano]
    return min(times) // 1000 if times else None


DIALECT: Dialect = Dialect("mlflow", matches, extract, by_keys=matches)  # matches reads only the scope and keys
