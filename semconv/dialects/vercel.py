"""Vercel AI SDK (TypeScript): legacy ``ai.*`` spans and the extras of the v7 ``gen_ai`` integration.

Legacy format (AI SDK ≤v6 ``experimental_telemetry``, v7 ``LegacyOpenTelemetry``; scope ``ai``): an outer
``ai.generateText``/``ai.streamText``/… span, one ``….doGenerate``/``….doStream``/``….doEmbed`` span per
provider call, ``ai.toolCall`` spans. The outer span repeats the usage of its provider calls, so only the
``do*`` spans are billed. v7 ``OpenTelemetry`` (scope ``gen_ai``) is plain OTel GenAI, read by the genai
dialect; this one adds the ``rerank`` operation and the opt-in ``ai.usage.*TokenDetails.*`` counts.

Token counting differs by SDK version: up to v5 every provider passed its own convention through (Anthropic's
and Bedrock's input tokens exclude the cache, OpenAI's and Google's include it; Google's output excludes
reasoning); from v6 the SDK normalises input to include the cache and reports ``ai.usage.inputTokenDetails.*``.
Facts: ../shared/reference/semconv.md §6, §10.1, §11.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from semconv.attrs import as_float, as_int, as_str, first, is_blank, parse_json, parse_json_any, with_prefix
from semconv.dialects import genai
from semconv.extract import Dialect, Extract, SpanView
from semconv.messages import normalize_message, normalize_messages, prepend_system
from semconv.usage import disjoint, provider_input_includes_cache

SCOPES: Final = frozenset({"ai", "gen_ai"})
SPAN_KIND_CLIENT: Final = 3

# The last segment of a provider call's operation id -> type; any other ``do*`` call is a generation.
PROVIDER_CALL_TYPES: Final = {"doEmbed": "EMBEDDING", "doRerank": "RETRIEVER"}
# Outer calls: Vercel's own v7 integration names the four text/object calls ``invoke_agent``.
OUTER_TYPES: Final = dict.fromkeys(
    ("ai.generateText", "ai.streamText", "ai.generateObject", "ai.streamObject"), "AGENT"
)
OUTER_DEFAULT_TYPE: Final = "CHAIN"  # ai.embed, ai.embedMany, ai.rerank and unknown outer calls
BILLED_TYPES: Final = frozenset({"GENERATION", "EMBEDDING"})
# v7 ``gen_ai`` operations whose usage repeats the calls below them.
AGGREGATING_OPERATIONS: Final = frozenset({"invoke_agent", "agent_step"})
V7_TYPES: Final = {"rerank": "RETRIEVER"}

MODEL_KEYS = ("ai.model.id", "ai.response.model", "gen_ai.response.model", "gen_ai.request.model")
PROVIDER_KEYS = ("ai.model.provider", "gen_ai.system", "gen_ai.provider.name")

USAGE_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "input": (
        "ai.usage.inputTokens",
        "ai.usage.promptTokens",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
    ),
    "output": (
        "ai.usage.outputTokens",
        "ai.usage.completionTokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
    ),
    "total": ("ai.usage.totalTokens", "ai.usage.tokens"),
    "cache_read": (
        "ai.usage.inputTokenDetails.cacheReadTokens",
        "ai.usage.cachedInputTokens",
        "gen_ai.usage.cache_read.input_tokens",
    ),
    "cache_write": (
        "ai.usage.inputTokenDetails.cacheWriteTokens",
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
    ),
    "reasoning": ("ai.usage.outputTokenDetails.reasoningTokens", "ai.usage.reasoningTokens"),
}
NO_CACHE_INPUT: Final = "ai.usage.inputTokenDetails.noCacheTokens"
TEXT_OUTPUT: Final = "ai.usage.outputTokenDetails.textTokens"
DETAIL_PREFIXES = ("ai.usage.inputTokenDetails.", "ai.usage.outputTokenDetails.")
_USAGE_KEYS: Final = frozenset({*(k for keys in USAGE_KEYS.values() for k in keys), NO_CACHE_INPUT, TEXT_OUTPUT})

# ai.settings.* -> the parameter names gen_ai.request.* uses, so both spellings land on one key.
SETTING_NAMES: Final = {
    "maxOutputTokens": "max_tokens",
    "maxTokens": "max_tokens",
    "topP": "top_p",
    "topK": "top_k",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "stopSequences": "stop_sequences",
}
CONTEXT_PREFIXES = ("ai.settings.context.", "ai.settings.runtimeContext.")
METADATA_PREFIX: Final = "ai.telemetry.metadata."
RESERVED_METADATA: Final = frozenset({"userId", "sessionId", "tags", "langfusePrompt"})  # read by context.py / prompt
PROMPT_KEY: Final = METADATA_PREFIX + "langfusePrompt"
FIRST_CHUNK_MS_KEYS = ("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk")
FIRST_CHUNK_S_KEY: Final = "gen_ai.client.operation.time_to_first_chunk"

INPUT_KEYS = ("ai.prompt.messages", "ai.prompt", "ai.toolCall.args", "ai.values", "ai.value", "ai.documents")
TEXT_KEYS = ("ai.response.text", "ai.result.text")
TOOL_CALL_KEYS = ("ai.response.toolCalls", "ai.result.toolCalls")
OBJECT_KEYS = ("ai.response.object", "ai.result.object")


def matches(view: SpanView) -> bool:
    return "ai" in view.namespaces or view.scope_name in SCOPES


def extract(view: SpanView) -> Extract:
    attrs = view.attributes
    operation = _operation(view)
    if operation is None:
        return _extract_v7(view)
    kind = operation_type(operation)
    provider = as_str(first(attrs, PROVIDER_KEYS))
    usage = usage_from(attrs, provider)
    billed = kind in BILLED_TYPES
    metadata, trace_metadata = _metadata(attrs)
    prompt = _prompt(attrs) if kind == "GENERATION" else None
    input_value, input_keys = _input(attrs)
    output_value, output_keys = _output(attrs)
    consumed = {k for k in attrs if k in _USAGE_KEYS or k.startswith(DETAIL_PREFIXES)}
    consumed |= {k for k in attrs if k.startswith("ai.settings.")}
    consumed |= {METADATA_PREFIX + k for k in with_prefix(attrs, METADATA_PREFIX) if k not in RESERVED_METADATA}
    consumed |= {
        k for k in (*MODEL_KEYS[:2], "ai.model.provider", "ai.prompt.toolChoice", "ai.prompt.tools") if k in attrs
    }
    consumed |= {k for k in (*FIRST_CHUNK_MS_KEYS, "ai.toolCall.name") if k in attrs}
    consumed |= input_keys | output_keys | ({PROMPT_KEY} if prompt else set())
    return Extract(
        type=kind,
        name=_name(attrs, operation),
        model=as_str(first(attrs, MODEL_KEYS)),
        provider=provider,
        model_parameters=model_parameters(attrs),
        input=input_value,
        output=output_value,
        usage=usage if billed else _not_billed(view, usage),
        aggregated_usage=None if billed else usage,
        completion_start_time=_completion_start(view),
        prompt_name=prompt[0] if prompt else None,
        prompt_version=prompt[1] if prompt else None,
        metadata=metadata,
        trace_metadata=trace_metadata,
        consumed=consumed,
    )


def _extract_v7(view: SpanView) -> Extract:
    """v7 ``gen_ai`` spans: only what the genai dialect does not know."""
    attrs = view.attributes
    operation = str(attrs.get("gen_ai.operation.name", ""))
    usage = None
    if any(k.startswith(DETAIL_PREFIXES) for k in attrs):  # opt-in details refine the plain gen_ai usage
        usage = usage_from(attrs, as_str(first(attrs, PROVIDER_KEYS)))
    aggregating = operation in AGGREGATING_OPERATIONS and view.span.kind != SPAN_KIND_CLIENT
    context = {**with_prefix(attrs, CONTEXT_PREFIXES[0]), **with_prefix(attrs, CONTEXT_PREFIXES[1])}
    return Extract(
        type=V7_TYPES.get(operation),
        usage=None if aggregating else usage,
        aggregated_usage=usage if aggregating else None,
        completion_start_time=_completion_start(view),
        metadata={"context": context} if context else None,
        consumed={k for k in attrs if k.startswith((*DETAIL_PREFIXES, *CONTEXT_PREFIXES))}
        | ({FIRST_CHUNK_S_KEY} if FIRST_CHUNK_S_KEY in attrs else set()),
    )


def _operation(view: SpanView) -> str | None:
    """The legacy operation id (``ai.generateText.doGenerate``…), or None for v7 / foreign spans."""
    attrs = view.attributes
    operation = as_str(attrs.get("ai.operationId"))
    if operation is None:
        name = as_str(attrs.get("operation.name")) or (view.span.name if view.scope_name == "ai" else "")
        operation = name.split(" ", 1)[0] if name else None
    return operation if operation and operation.startswith("ai.") else None


def operation_type(operation: str) -> str | None:
    if operation == "ai.toolCall":
        return "TOOL"
    last = operation.rsplit(".", 1)[-1]
    if last.startswith("do") and operation.count(".") >= 2:
        return PROVIDER_CALL_TYPES.get(last, "GENERATION")
    return OUTER_TYPES.get(operation, OUTER_DEFAULT_TYPE)


def _name(attrs: dict[str, Any], operation: str) -> str:
    tool = as_str(attrs.get("ai.toolCall.name"))
    if tool:
        return tool
    function_id = as_str(attrs.get("ai.telemetry.functionId"))
    return f"{function_id}:{operation}" if function_id else operation


def _not_billed(view: SpanView, usage: dict[str, int] | None) -> dict[str, int] | None:
    """``usage`` for a span whose counts repeat its children's: None, so nothing is billed twice.

    Except when the genai dialect (lower precedence) would bill this span's ``gen_ai.usage.*`` keys: then an
    empty dict, because the merge takes the first non-None value and None would let genai's reading through.
    """
    attrs = view.attributes
    genai_aggregates = attrs.get("gen_ai.operation.name") in genai.AGGREGATING_OPERATIONS
    genai_bills = not (genai_aggregates and view.span.kind != SPAN_KIND_CLIENT) and genai.usage_from(attrs) is not None
    if usage is not None and genai_bills:
        return {}
    return None


# --- usage -------------------------------------------------------------------------------------------


def usage_from(attrs: dict[str, Any], provider: str | None) -> dict[str, int] | None:
    """Disjoint buckets from ``ai.usage.*`` / ``gen_ai.usage.*`` and the provider metadata."""
    counts: dict[str, Any] = {bucket: as_int(first(attrs, keys)) for bucket, keys in USAGE_KEYS.items()}
    meta = _provider_metadata_usage(parse_json(attrs.get("ai.response.providerMetadata")))
    for bucket in ("cache_read", "cache_write", "reasoning"):
        if counts[bucket] is None:
            counts[bucket] = meta.get(bucket)
    input_includes_cache = _input_includes_cache(attrs, provider, counts, meta.get("raw_input"))
    output_includes_reasoning = _output_includes_reasoning(counts)
    no_cache, text = as_int(attrs.get(NO_CACHE_INPUT)), as_int(attrs.get(TEXT_OUTPUT))
    if no_cache is not None:  # v6+ details: the exact uncached input
        counts["input"], input_includes_cache = no_cache, False
    if text is not None and counts["reasoning"] is not None:
        counts["output"], output_includes_reasoning = text, False
    return disjoint(
        **counts, input_includes_cache=input_includes_cache, output_includes_reasoning=output_includes_reasoning
    )


def _provider_metadata_usage(meta: Any) -> dict[str, int]:
    """Cache / reasoning counts (and Anthropic's raw input) from ``ai.response.providerMetadata``."""
    if not isinstance(meta, Mapping):
        return {}
    found: dict[str, int | None] = {}
    anthropic = meta.get("anthropic")
    if isinstance(anthropic, Mapping):
        raw = anthropic.get("usage")
        if not isinstance(raw, Mapping):
            raw = {}
        found["cache_write"] = _int(anthropic.get("cacheCreationInputTokens"), raw.get("cache_creation_input_tokens"))
        found["cache_read"] = _int(anthropic.get("cacheReadInputTokens"), raw.get("cache_read_input_tokens"))
        found["raw_input"] = _int(raw.get("input_tokens"))
    openai = meta.get("openai")
    if isinstance(openai, Mapping):
        found["cache_read"] = _int(found.get("cache_read"), openai.get("cachedPromptTokens"))
        found["reasoning"] = _int(openai.get("reasoningTokens"))
    bedrock = meta.get("bedrock")
    if isinstance(bedrock, Mapping) and isinstance(bedrock.get("usage"), Mapping):
        usage = bedrock["usage"]
        found["cache_read"] = _int(found.get("cache_read"), usage.get("cacheReadInputTokens"))
        found["cache_write"] = _int(
            found.get("cache_write"), usage.get("cacheWriteInputTokens"), usage.get("cacheCreationInputTokens")
        )
    return {k: v for k, v in found.items() if v is not None}


def _int(*values: Any) -> int | None:
    """The first value that is a token count (0 counts)."""
    return next((n for n in map(as_int, values) if n is not None), None)


def _input_includes_cache(
    attrs: dict[str, Any], provider: str | None, counts: dict[str, int | None], raw_input: int | None
) -> bool:
    """Whether the reported input counts cached tokens: v6+ (token details present) always; before, per provider."""
    if any(k.startswith(DETAIL_PREFIXES) for k in attrs):
        return True
    cache = (counts["cache_read"] or 0) + (counts["cache_write"] or 0)
    if raw_input is not None and counts["input"] is not None and cache:  # Anthropic's raw count settles it
        if counts["input"] == raw_input:
            return False
        if counts["input"] == raw_input + cache:
            return True
    return provider_input_includes_cache(provider)


def _output_includes_reasoning(counts: dict[str, int | None]) -> bool:
    """False when the total shows reasoning counted beside the output (Google before AI SDK v6)."""
    output, total, reasoning = counts["output"], counts["total"], counts["reasoning"]
    if output is None or total is None or not reasoning:
        return True
    return total < (counts["input"] or 0) + output + reasoning


# --- content -------------------------------------------------------------------------------------------


def _input(attrs: dict[str, Any]) -> tuple[Any, set[str]]:
    """do*: ``ai.prompt.messages``; outer: ``ai.prompt``; tool: ``ai.toolCall.args``; embed/rerank values."""
    for key in INPUT_KEYS:
        value = attrs.get(key)
        if is_blank(value):
            continue
        if key == "ai.prompt.messages":
            return normalize_messages(parse_json(value)), {key}
        if key == "ai.prompt":
            return prompt_messages(parse_json(value)), {key}
        if key == "ai.toolCall.args":
            return parse_json_any(value), {key}
        return _json_items(value), {key}
    return None, set()


def prompt_messages(prompt: Any) -> Any:
    """Outer ``ai.prompt`` JSON ``{system, prompt, messages}`` as chat messages, system first."""
    if not isinstance(prompt, Mapping) or not {"system", "prompt", "messages"} & prompt.keys():
        return prompt
    messages: list[Any] = []
    for part in (prompt.get("prompt"), prompt.get("messages")):
        if isinstance(part, str) and part:
            messages.append({"role": "user", "content": part})
        elif isinstance(part, list) and part:
            normalized = normalize_messages(part)
            if normalized is part:  # not chat-like: keep the prompt as it came
                return prompt
            messages.extend(normalized)
    return prepend_system(messages, _system_text(prompt.get("system")))


def _system_text(system: Any) -> Any:
    """``system``/``instructions``: a string, a system message, or a list of system messages."""
    items = system if isinstance(system, list) else [system]
    contents = [item.get("content") if isinstance(item, Mapping) else item for item in items]
    texts = [t for t in contents if isinstance(t, str) and t]
    return "\n".join(texts) if texts else None


def _output(attrs: dict[str, Any]) -> tuple[Any, set[str]]:
    text_key = next((k for k in TEXT_KEYS if attrs.get(k) not in (None, "")), None)
    calls_key = next((k for k in TOOL_CALL_KEYS if attrs.get(k) not in (None, "")), None)
    reasoning = as_str(attrs.get("ai.response.reasoning"))
    if text_key or calls_key or reasoning:
        message = assistant_message(
            attrs.get(text_key) if text_key else None,
            parse_json(attrs.get(calls_key)) if calls_key else None,
            reasoning,
            as_str(attrs.get("ai.response.finishReason")),
        )
        used = {k for k in (text_key, calls_key) if k} | ({"ai.response.reasoning"} if reasoning else set())
        return message, used
    for key in (*OBJECT_KEYS, "ai.toolCall.result"):
        if attrs.get(key) is not None:
            return parse_json_any(attrs[key]), {key}
    if attrs.get("ai.ranking") is not None:
        return _json_items(attrs["ai.ranking"]), {"ai.ranking"}
    return None, set()


def assistant_message(text: Any, calls: Any, reasoning: str | None, finish_reason: str | None) -> Any:
    """``ai.response.text`` + ``ai.response.toolCalls`` (+ reasoning) as one assistant message."""
    parts: list[Any] = []
    if reasoning:
        parts.append({"type": "reasoning", "text": reasoning})
    if text is not None:
        parts.append({"type": "text", "text": text if isinstance(text, str) else as_str(text)})
    if isinstance(calls, list):
        parts.extend(
            {"type": "tool-call", "toolCallId": c.get("toolCallId"), "toolName": c.get("toolName"), **_args(c)}
            for c in calls
            if isinstance(c, Mapping)
        )
    elif calls is not None:  # not JSON: keep it visible
        parts.append({"type": "text", "text": as_str(calls)})
    raw: dict[str, Any] = {"role": "assistant", "content": parts}
    if finish_reason:
        raw["finish_reason"] = finish_reason
    return normalize_message(raw)


def _args(call: Mapping[str, Any]) -> dict[str, Any]:
    """v5+ ``input`` (an object); ≤v4 ``args`` (a JSON string)."""
    return {"input": call["input"]} if "input" in call else {"args": call.get("args")}


def _json_items(value: Any) -> Any:
    """``ai.values`` / ``ai.documents`` / ``ai.ranking``: a list of JSON strings (or one JSON string)."""
    if isinstance(value, list):
        return [parse_json_any(v) for v in value]
    return parse_json_any(value)


# --- parameters, metadata, prompt, timing --------------------------------------------------------------


def model_parameters(attrs: dict[str, Any]) -> dict[str, Any] | None:
    params = {k: v for k, v in with_prefix(attrs, "gen_ai.request.").items() if k != "model"}
    for key, value in with_prefix(attrs, "ai.settings.").items():
        if not key.startswith(("context.", "runtimeContext.")):
            params.setdefault(SETTING_NAMES.get(key, key), value)
    if attrs.get("ai.prompt.toolChoice") is not None:
        params["tool_choice"] = parse_json_any(attrs["ai.prompt.toolChoice"])
    return params or None


def _metadata(attrs: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(observation metadata, trace metadata) from ``ai.telemetry.metadata.*``, runtime context and tools."""
    user = {k: v for k, v in with_prefix(attrs, METADATA_PREFIX).items() if k not in RESERVED_METADATA}
    observation: dict[str, Any] = dict(user)
    context = {**with_prefix(attrs, CONTEXT_PREFIXES[0]), **with_prefix(attrs, CONTEXT_PREFIXES[1])}
    if context:
        observation["context"] = context
    tools = attrs.get("ai.prompt.tools")
    if tools is not None:
        observation["tools"] = _json_items(tools)
    return observation or None, user or None


def _prompt(attrs: dict[str, Any]) -> tuple[str, int | None] | None:
    """``ai.telemetry.metadata.langfusePrompt`` = JSON ``{name, version}`` (generations only)."""
    value = parse_json(attrs.get(PROMPT_KEY))
    name = as_str(value.get("name")) if isinstance(value, Mapping) else None
    if not name:
        return None
    return name, as_int(value.get("version"))


def _completion_start(view: SpanView) -> int | None:
    ms = as_float(first(view.attributes, FIRST_CHUNK_MS_KEYS))
    if ms is not None and ms >= 0:
        return view.start_us + round(ms * 1000)
    seconds = as_float(view.attributes.get(FIRST_CHUNK_S_KEY))
    if seconds is not None and seconds >= 0:
        return view.start_us + round(seconds * 1_000_000)
    return None


DIALECT: Dialect = Dialect("vercel", matches, extract, by_keys=matches)  # matches reads only the scope and keys
