"""Pydantic AI (scope ``pydantic-ai``) and Logfire (scopes ``logfire``, ``logfire.<integration>``).

Both emit plain OTel GenAI keys, read by the genai dialect; this one adds what is theirs: the agent span
(``invoke_agent {agent}``, v2 ``agent run``) with ``pydantic_ai.all_messages`` / ``final_result`` and the run's
usage (``gen_ai.aggregated_usage.*``, or ``gen_ai.usage.*`` before v3: never billed), v2 tool spans
(``tool_arguments`` / ``tool_response``), provider details ``gen_ai.usage.details.*``, ``operation.cost``,
``model_request_parameters``, the ``logfire.msg`` name, ``logfire.level_num``, Logfire's LLM integrations
(``request_data`` / ``response_data``, the raw provider usage) and Logfire's pending-span placeholders.
Facts: ../shared/reference/semconv.md §7, §10, §11.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from semconv.attrs import as_float, as_int, as_str, first, parse_json
from semconv.dialects import genai
from semconv.extract import Dialect, Extract, SpanView
from semconv.messages import normalize_message, normalize_messages, prepend_system
from semconv.parameters import PARAMETER_NAMES
from semconv.usage import disjoint, disjoint_counts, provider_input_includes_cache

PYDANTIC_SCOPE: Final = "pydantic-ai"
SPAN_KIND_CLIENT: Final = 3
STATUS_CODE_ERROR: Final = 2  # an error status is never masked by a milder explicit level

AGENT_ONLY_KEYS = ("pydantic_ai.all_messages", "all_messages_events", "final_result", "agent_name")
AGENT_SPAN_NAMES = ("agent run", "invoke_agent")
TOOL_IO_KEYS = ("tool_arguments", "tool_response")  # instrumentation v2 tool spans
SYSTEM_KEY: Final = "gen_ai.system_instructions"
FIRST_CHUNK_S_KEY: Final = "gen_ai.client.operation.time_to_first_chunk"

USAGE: Final = "gen_ai.usage."
AGGREGATED: Final = "gen_ai.aggregated_usage."
# Suffixes under gen_ai.usage. / gen_ai.aggregated_usage. per bucket. Pydantic AI counts cache inside input and
# reasoning inside output; ``details.*`` are provider extras (``details.cache_*_tokens`` repeat the first-class
# keys; ``details.cache_*_input_tokens`` are Anthropic's raw names in older releases).
USAGE_SUFFIXES: Final[dict[str, tuple[str, ...]]] = {
    "input": ("input_tokens", "prompt_tokens"),
    "output": ("output_tokens", "completion_tokens"),
    "cache_read": ("cache_read.input_tokens", "details.cache_read_tokens", "details.cache_read_input_tokens"),
    "cache_write": (
        "cache_write.input_tokens",
        "cache_creation.input_tokens",
        "details.cache_write_tokens",
        "details.cache_creation_input_tokens",
    ),
    "reasoning": ("reasoning.output_tokens", "details.reasoning_tokens"),
    "input_audio": ("audio.input_tokens", "details.input_audio_tokens"),
    "output_audio": ("audio.output_tokens", "details.output_audio_tokens"),
}
USAGE_KEYS: Final = {
    prefix: {bucket: tuple(prefix + s for s in suffixes) for bucket, suffixes in USAGE_SUFFIXES.items()}
    for prefix in (USAGE, AGGREGATED)
}
RAW_USAGE_KEY: Final = "gen_ai.usage.raw"

# logfire.level_num: trace 1, debug 5, info 9, notice 10, warn 13, error 17, fatal 21.
LEVEL_THRESHOLDS = ((17, "ERROR"), (13, "WARNING"))
DEBUG_MAX_LEVEL: Final = 5
EVENT_ROLES: Final = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
EVENT_NOISE: Final = frozenset({"event.name", "gen_ai.message.index", "gen_ai.system", "index"})


def matches(view: SpanView) -> bool:
    scope = view.scope_name
    return (
        scope == PYDANTIC_SCOPE
        or scope == "logfire"
        or scope.startswith("logfire.")
        or "logfire" in view.namespaces
        or "pydantic_ai" in view.namespaces
    )


def extract(view: SpanView) -> Extract:
    attrs = view.attributes
    if attrs.get("logfire.span_type") == "pending_span":
        return _pending(view)
    agent = is_agent(view)
    usage, usage_keys = _usage(view)
    cost = as_float(attrs.get("operation.cost"))
    name, name_keys = _name(attrs)
    if agent:
        input_value, output_value, io_keys = _agent_io(attrs)
    else:
        input_value, output_value, io_keys = _io(attrs)
    metadata = parse_json(attrs.get("metadata")) if attrs.get("metadata") not in (None, "") else None
    if metadata is not None and not isinstance(metadata, Mapping):
        metadata = {"metadata": metadata}
    billed_cost = cost if cost is not None and not agent else None  # an agent's cost would repeat its calls'
    consumed = usage_keys | io_keys | name_keys | ({"metadata"} if metadata else set())
    consumed |= {"operation.cost"} if billed_cost is not None else set()
    consumed |= {FIRST_CHUNK_S_KEY} & attrs.keys()
    return Extract(
        type="AGENT" if agent else _type(attrs),
        name=name,
        model=_model(attrs),
        model_parameters=_model_parameters(attrs),
        input=input_value,
        output=output_value,
        usage=_not_billed(view, usage) if agent else usage,
        aggregated_usage=usage if agent else None,
        cost={"total": billed_cost} if billed_cost is not None else None,
        completion_start_time=_completion_start(view),
        level=None if view.span.status.code == STATUS_CODE_ERROR else level(attrs.get("logfire.level_num")),
        metadata=dict(metadata) if metadata else None,
        trace_metadata=dict(metadata) if metadata and agent else None,
        consumed=consumed,
    )


def _pending(view: SpanView) -> Extract:
    """Logfire's start-of-span placeholder: kept (never dropped) but a DEBUG-level plain span, never billed."""
    name, name_keys = _name(view.attributes)
    return Extract(type="SPAN", name=name, level="DEBUG", usage=None, consumed=name_keys)


def is_agent(view: SpanView) -> bool:
    attrs = view.attributes
    if view.scope_name != PYDANTIC_SCOPE and not any(k in attrs for k in AGENT_ONLY_KEYS):
        return False
    if attrs.get("gen_ai.operation.name") == "invoke_agent" or any(k in attrs for k in AGENT_ONLY_KEYS):
        return True
    return view.span.name.split(" ", 1)[0] == "invoke_agent" or view.span.name == AGENT_SPAN_NAMES[0]


def _type(attrs: dict[str, Any]) -> str | None:
    """Logfire: logs are events; LLM spans without GenAI keys (older releases) are generations."""
    if "gen_ai.operation.name" in attrs or first(attrs, genai.MODEL_KEYS) is not None:
        return None  # the genai dialect knows
    request = _request(attrs)
    if isinstance(request, Mapping) and request.get("model"):
        template = str(attrs.get("logfire.msg_template", ""))
        return "EMBEDDING" if template.startswith("Embedding") else "GENERATION"
    return "EVENT" if attrs.get("logfire.span_type") == "log" else None


def _name(attrs: dict[str, Any]) -> tuple[str | None, set[str]]:
    """Langfuse's rule: ``gen_ai.tool.name``, else ``logfire.msg``."""
    tool = as_str(attrs.get("gen_ai.tool.name"))
    if tool:
        return tool, set()
    message = as_str(attrs.get("logfire.msg"))
    return (message, {"logfire.msg"}) if message else (None, set())


def level(value: Any) -> str | None:
    number = as_int(value)
    if number is None or number == 0:
        return None
    for threshold, name in LEVEL_THRESHOLDS:
        if number >= threshold:
            return name
    return "DEBUG" if number <= DEBUG_MAX_LEVEL else None


def _not_billed(view: SpanView, usage: dict[str, int] | None) -> dict[str, int] | None:
    """``usage`` of an agent span: None, or ``{}`` when genai would otherwise bill its ``gen_ai.usage.*``.

    Older Pydantic AI agent spans carry the run's usage as ``gen_ai.usage.*`` without
    ``gen_ai.operation.name``; the merge takes the first non-None value, so None would let genai bill it.
    """
    attrs = view.attributes
    genai_aggregates = (
        attrs.get("gen_ai.operation.name") in genai.AGGREGATING_OPERATIONS and view.span.kind != SPAN_KIND_CLIENT
    )
    if usage is not None and not genai_aggregates and genai.usage_from(attrs) is not None:
        return {}
    return None


# --- usage -------------------------------------------------------------------------------------------


def _usage(view: SpanView) -> tuple[dict[str, int] | None, set[str]]:
    """Buckets (and the keys read): raw provider usage for Logfire integrations, else the GenAI keys."""
    attrs = view.attributes
    provider = as_str(first(attrs, genai.PROVIDER_KEYS))
    if view.scope_name != PYDANTIC_SCOPE:
        raw = parse_json(attrs.get(RAW_USAGE_KEY))
        if not isinstance(raw, Mapping):
            response = parse_json(attrs.get("response_data"))
            raw = response.get("usage") if isinstance(response, Mapping) else None
        usage = raw_usage(raw, provider)
        if usage is not None:
            return usage, set()  # the raw object may hold more than the buckets: kept
    prefix = AGGREGATED if any(k.startswith(AGGREGATED) for k in attrs) else USAGE
    keys = USAGE_KEYS[prefix]
    counts = {bucket: first(attrs, aliases) for bucket, aliases in keys.items()}
    # Pydantic AI computes input with the cache inside; Logfire's integrations pass the provider's own count.
    inclusive = view.scope_name == PYDANTIC_SCOPE or provider_input_includes_cache(provider)
    usage = disjoint_counts(counts, input_includes_cache=inclusive)
    used = {k for aliases in keys.values() for k in aliases if k in attrs}
    return usage, used


def raw_usage(raw: Any, provider: str | None) -> dict[str, int] | None:
    """A provider's own usage object: OpenAI chat / Responses / embeddings, or Anthropic messages."""
    if not isinstance(raw, Mapping):
        return None
    if "prompt_tokens" in raw or "completion_tokens" in raw:  # OpenAI chat / embeddings: totals include details
        prompt, completion = _dict(raw.get("prompt_tokens_details")), _dict(raw.get("completion_tokens_details"))
        return disjoint(
            input=raw.get("prompt_tokens"),
            output=raw.get("completion_tokens"),
            cache_read=prompt.get("cached_tokens"),
            input_audio=prompt.get("audio_tokens"),
            reasoning=completion.get("reasoning_tokens"),
            output_audio=completion.get("audio_tokens"),
        )
    if "input_tokens_details" in raw or "output_tokens_details" in raw:  # OpenAI Responses
        details_in, details_out = _dict(raw.get("input_tokens_details")), _dict(raw.get("output_tokens_details"))
        return disjoint(
            input=raw.get("input_tokens"),
            output=raw.get("output_tokens"),
            cache_read=details_in.get("cached_tokens"),
            reasoning=details_out.get("reasoning_tokens"),
        )
    if "input_tokens" in raw or "output_tokens" in raw:  # Anthropic: input excludes the cache
        anthropic_shape = "cache_read_input_tokens" in raw or "cache_creation_input_tokens" in raw
        return disjoint(
            input=raw.get("input_tokens"),
            output=raw.get("output_tokens"),
            cache_read=raw.get("cache_read_input_tokens"),
            cache_write=raw.get("cache_creation_input_tokens"),
            input_includes_cache=not anthropic_shape and provider_input_includes_cache(provider),
        )
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- content -------------------------------------------------------------------------------------------


def _agent_io(attrs: dict[str, Any]) -> tuple[Any, Any, set[str]]:
    """Agent span: ``pydantic_ai.all_messages`` (v1 ``all_messages_events``) with system first; ``final_result``."""
    used: set[str] = set()
    messages = None
    if attrs.get("pydantic_ai.all_messages") not in (None, ""):
        messages = normalize_messages(parse_json(attrs["pydantic_ai.all_messages"]))
        used.add("pydantic_ai.all_messages")
    elif attrs.get("all_messages_events") not in (None, ""):
        messages, _ = events_io(attrs["all_messages_events"])
        used.add("all_messages_events")
    system = parse_json(attrs.get(SYSTEM_KEY))
    if messages is not None or system not in (None, "", []):
        messages = prepend_system(messages, system)
        used |= {SYSTEM_KEY} & attrs.keys()
    output = parse_json(attrs.get("final_result"))
    if output is not None:
        used.add("final_result")
    return messages, output, used


def _io(attrs: dict[str, Any]) -> tuple[Any, Any, set[str]]:
    """v2 tool spans; v1 ``events``; Logfire ``request_data`` / ``response_data`` where GenAI messages are absent."""
    if any(k in attrs for k in TOOL_IO_KEYS):
        input_value, output_value = parse_json(attrs.get("tool_arguments")), parse_json(attrs.get("tool_response"))
        return input_value, output_value, set(TOOL_IO_KEYS) & attrs.keys()
    if attrs.get("events") not in (None, "") and "gen_ai.input.messages" not in attrs:
        input_value, output_value = events_io(attrs["events"])
        if input_value is not None or output_value is not None:
            return input_value, output_value, {"events"}
    input_value = None if "gen_ai.input.messages" in attrs else request_input(_request(attrs))
    output_value = (
        None if "gen_ai.output.messages" in attrs else response_output(parse_json(attrs.get("response_data")))
    )
    return input_value, output_value, set()


def events_io(value: Any) -> tuple[Any, Any]:
    """A JSON array of GenAI events (Pydantic AI v1, older Logfire): messages in, ``gen_ai.choice`` out."""
    items = parse_json(value)
    if not isinstance(items, list):
        return None, None
    inputs: list[Any] = []
    outputs: list[Any] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        name = item.get("event.name")
        if name == "gen_ai.choice":
            message = dict(item.get("message") or {}) if isinstance(item.get("message"), Mapping) else {}
            if item.get("finish_reason") is not None:
                message.setdefault("finish_reason", item["finish_reason"])
            outputs.extend(normalize_message(message, "assistant") or [message])
            continue
        body = {k: v for k, v in item.items() if k not in EVENT_NOISE}
        inputs.extend(normalize_message(body, EVENT_ROLES.get(str(name))) or [body])
    return inputs or None, outputs or None


def _request(attrs: dict[str, Any]) -> Any:
    return parse_json(attrs.get("request_data"))


def request_input(request: Any) -> Any:
    """Logfire ``request_data`` (the request kwargs): chat messages (Anthropic ``system`` first) or the prompt."""
    if not isinstance(request, Mapping):
        return None
    messages = request.get("messages")
    if isinstance(messages, list):
        return prepend_system(normalize_messages(messages), request.get("system"))
    for key in ("input", "prompt"):
        if request.get(key) not in (None, ""):
            value = request[key]
            return normalize_messages(value) if isinstance(value, list) else value
    return None


def response_output(response: Any) -> Any:
    """Logfire ``response_data``: ``{message, usage}``, ``{text, finish_reason}`` or streamed chunk content."""
    if not isinstance(response, dict):  # decoded JSON: a mapping is a dict
        return None
    message = response.get("message")
    if isinstance(message, Mapping):
        normalized = normalize_messages(dict(message), "assistant")
        return normalized if isinstance(normalized, list) else [normalized]
    text = first(response, ("text", "combined_chunk_content"))
    if isinstance(text, str):
        out: dict[str, Any] = {"role": "assistant", "content": text}
        if response.get("finish_reason"):
            out["finish_reason"] = response["finish_reason"]
        return [out]
    return None


# --- model, parameters, timing -------------------------------------------------------------------------


def _model(attrs: dict[str, Any]) -> str | None:
    """Only when the GenAI model keys are absent (older Logfire): ``request_data.model``."""
    if first(attrs, genai.MODEL_KEYS) is not None:
        return None
    request = _request(attrs)
    return as_str(request.get("model")) if isinstance(request, Mapping) else None


def _model_parameters(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """``gen_ai.request.*`` + Logfire request kwargs + a summary of Pydantic AI's ``model_request_parameters``."""
    params = dict(genai.model_parameters(attrs) or {})
    request = _request(attrs)
    if isinstance(request, Mapping):
        for key in request.keys() & PARAMETER_NAMES:
            params.setdefault(key, request[key])
    mrp = parse_json(attrs.get("model_request_parameters"))
    if isinstance(mrp, Mapping):
        for key, value in mrp.items():
            if isinstance(value, str | int | float | bool):
                params.setdefault(key, value)
        tools = _tool_names(mrp)
        if tools:
            params.setdefault("tools", tools)
    return params or None


def _tool_names(request_parameters: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for group in ("function_tools", "output_tools"):
        tools = request_parameters.get(group)
        if isinstance(tools, list):
            names.extend(t["name"] for t in tools if isinstance(t, Mapping) and isinstance(t.get("name"), str))
    return names


def _completion_start(view: SpanView) -> int | None:
    seconds = as_float(view.attributes.get(FIRST_CHUNK_S_KEY))
    if seconds is None or seconds < 0:
        return None
    return view.start_us + round(seconds * 1_000_000)


DIALECT: Dialect = Dialect("pydantic_ai", matches, extract, by_keys=matches)  # matches reads only the scope and keys
