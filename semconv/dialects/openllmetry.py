"""OpenLLMetry / Traceloop SDK, all three generations (early ``llm.*``, legacy indexed ``gen_ai.prompt.N.*``,
current ``gen_ai.*`` JSON messages) plus the Traceloop decorators (``traceloop.*``).

Facts: ../shared/reference/semconv.md §4, §10, §11. The current generation is plain OTel GenAI and is
left to the genai dialect (lower precedence): this module returns None wherever genai already reads
the value, and only adds what genai cannot see.

Decisions where the facts leave room:

- Type: ``llm.request.type`` (chat/completion -> GENERATION, embedding -> EMBEDDING, rerank ->
  RETRIEVER) > ``gen_ai.operation.name`` (genai's table plus OpenLLMetry's custom ``execute_task`` ->
  AGENT, ``llm_request`` -> GENERATION, ``vector_db_retrieve`` -> RETRIEVER) > ``traceloop.span.kind``
  (workflow -> CHAIN, agent -> AGENT, tool -> TOOL, task -> SPAN: a task is any decorated function,
  CHAIN is kept for the workflow that links the steps). ``unknown`` -> None.
- Name: ``traceloop.entity.name`` only for tool spans (like ``gen_ai.tool.name`` / ``tool.name``);
  workflow/task/agent spans keep their ``{entity}.{kind}`` span name, as in Langfuse.
- ``traceloop.entity.input``/``output`` are the input/output when a span has no chat messages; the
  ``{"args": [...], "kwargs": {...}}`` envelope is kept as sent (JSON-decoded).
- Legacy Anthropic writes a thinking block as a completion with role ``thinking``: it is folded into
  the following assistant message's ``reasoning``.
- Usage: OpenLLMetry counts cache inside input (Anthropic too) and reasoning inside output;
  :func:`semconv.usage.disjoint` corrects spans whose numbers contradict that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from semconv.attrs import as_int, as_str, first, indexed, is_blank, parse_json, parse_json_any, with_prefix
from semconv.context import SESSION_KEYS, USER_KEYS
from semconv.dialects import genai
from semconv.extract import Dialect, Extract, SpanView
from semconv.messages import normalize_messages
from semconv.usage import disjoint_counts

REQUEST_TYPES: Final = {
    "chat": "GENERATION",
    "completion": "GENERATION",
    "embedding": "EMBEDDING",
    "rerank": "RETRIEVER",
}
CUSTOM_OPERATIONS: Final = {"execute_task": "AGENT", "llm_request": "GENERATION", "vector_db_retrieve": "RETRIEVER"}
SPAN_KINDS: Final = {"workflow": "CHAIN", "task": "SPAN", "agent": "AGENT", "tool": "TOOL"}
# Message fields kept as they are (a tuple of any length: compiled, a loop indexes it).
_MESSAGE_FIELDS: Final[tuple[str, ...]] = ("tool_call_id", "finish_reason", "name")

# Keys that only OpenLLMetry writes (recognition without the traceloop namespace).
SURE_KEYS = (
    "llm.request.type",
    "llm.usage.total_tokens",
    "llm.vendor",
    "gen_ai.prompt.0.role",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.0.user",
    "gen_ai.completion.0.role",
    "gen_ai.completion.0.content",
    "gen_ai.completion.0.finish_reason",
    "llm.prompts.0.role",
    "llm.prompts.0.content",
    "llm.completions.0.content",
)

# Messages, newest generation first (``gen_ai.input.messages`` itself is read by genai).
PROMPT_PREFIXES = ("gen_ai.prompt.", "llm.prompts.")
COMPLETION_PREFIXES = ("gen_ai.completion.", "llm.completions.")
ENTITY_INPUT: Final = "traceloop.entity.input"
ENTITY_OUTPUT: Final = "traceloop.entity.output"

# Early model/provider keys (the gen_ai.* ones are genai's).
MODEL_KEYS = ("llm.response.model", "llm.request.model")
PROVIDER_KEYS = ("llm.vendor",)

# Usage: genai's aliases plus OpenLLMetry's early/legacy ``llm.usage.*``.
OWN_USAGE_KEYS: Final = {
    "input": ("llm.usage.prompt_tokens",),
    "output": ("llm.usage.completion_tokens",),
    "total": ("llm.usage.total_tokens",),
    "reasoning": ("llm.usage.reasoning_tokens",),
}
USAGE_KEYS: Final = {b: (*keys, *OWN_USAGE_KEYS.get(b, ())) for b, keys in genai.USAGE_KEYS.items()}
_OWN_USAGE: Final = frozenset(k for keys in OWN_USAGE_KEYS.values() for k in keys)

# Early/legacy request parameters -> parameter name (``gen_ai.request.*`` are genai's and win).
PARAMETER_KEYS: Final = {
    "llm.request.max_tokens": "max_tokens",
    "llm.temperature": "temperature",
    "llm.top_p": "top_p",
    "llm.top_k": "top_k",
    "llm.frequency_penalty": "frequency_penalty",
    "llm.presence_penalty": "presence_penalty",
    "llm.request.repetition_penalty": "repetition_penalty",
    "llm.chat.stop_sequences": "stop_sequences",
    "llm.is_streaming": "stream",
    "gen_ai.is_streaming": "stream",
    "llm.user": "user",
    "gen_ai.user": "user",
}
PARAMETER_PREFIXES = ("llm.watsonx.",)

ASSOCIATION: Final = "traceloop.association.properties."
_CONTEXT_KEYS: Final = frozenset(k for k in (*SESSION_KEYS, *USER_KEYS) if k.startswith(ASSOCIATION))


# ---- messages ---------------------------------------------------------------------------------


def _content(value: Any) -> Any:
    """A content attribute: plain text, or JSON text holding content parts (multimodal) or a string."""
    if not isinstance(value, str):
        return value
    if value.startswith('"'):  # json.dumps of a plain string
        decoded = parse_json_any(value)
        return decoded if isinstance(decoded, str) else value
    decoded = parse_json(value)
    if isinstance(decoded, list) and decoded and all(isinstance(p, Mapping) for p in decoded):
        return decoded
    return value


def _calls(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for call in item.get("tool_calls") or ():
        if isinstance(call, Mapping):
            calls.append({"id": call.get("id"), "name": call.get("name"), "arguments": call.get("arguments")})
    function = item.get("function_call")
    if isinstance(function, Mapping) and function.get("name") is not None:
        calls.append({"id": function.get("id"), "name": function["name"], "arguments": function.get("arguments")})
    return calls


def _message(item: Any, default_role: str) -> dict[str, Any] | None:
    if not isinstance(item, Mapping):
        return None
    if "role" not in item and "content" not in item and item.get("user") is not None:  # replicate, haystack
        return {"role": "user", "content": _content(item["user"])}
    role = item.get("role")
    raw: dict[str, Any] = {
        "role": role if isinstance(role, str) and role else default_role,
        "content": _content(item.get("content")),
    }
    if raw["content"] is None and item.get("refusal") is not None:
        raw["content"] = item["refusal"]
    for key in _MESSAGE_FIELDS:
        value = item.get(key)
        if value is not None:
            raw[key] = value
    calls = _calls(item)
    if calls:
        raw["tool_calls"] = calls
    return raw


def _fold_thinking(messages: list[Any]) -> list[Any]:
    """Legacy Anthropic ``role: thinking`` completions -> ``reasoning`` of the next assistant message."""
    out: list[Any] = []
    pending: list[str] = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "thinking":
            if message.get("content") is not None:
                pending.append(str(message["content"]))
            continue
        if pending and isinstance(message, dict):
            reasoning = [*pending, message["reasoning"]] if message.get("reasoning") else pending
            message = {**message, "reasoning": "\n".join(reasoning)}
            pending = []
        out.append(message)
    if pending:
        out.append({"role": "assistant", "content": None, "reasoning": "\n".join(pending)})
    return out


def _messages(attrs: dict[str, Any], prefixes: tuple[str, ...], default_role: str) -> tuple[Any, set[str]]:
    for prefix in prefixes:
        items, keys = indexed(attrs, prefix)
        raws = [m for m in (_message(item, default_role) for item in items) if m is not None]
        if not raws:
            continue
        if not any(isinstance(i, Mapping) and ("role" in i or "user" in i or "tool_calls" in i) for i in items):
            texts = [m["content"] for m in raws]  # embeddings: bare inputs without a role
            return (texts[0] if len(texts) == 1 else texts), keys
        messages = normalize_messages(raws)
        return (_fold_thinking(messages) if isinstance(messages, list) else messages), keys
    return None, set()


def _entity(attrs: dict[str, Any], key: str) -> tuple[Any, set[str]]:
    value = attrs.get(key)
    if is_blank(value):
        return None, set()
    return normalize_messages(parse_json_any(value)), {key}


def _io(attrs: dict[str, Any]) -> tuple[Any, Any, set[str]]:
    used: set[str] = set()
    input_value = output_value = None
    if "gen_ai.input.messages" not in attrs and "gen_ai.system_instructions" not in attrs:
        input_value, keys = _messages(attrs, PROMPT_PREFIXES, "user")
        used |= keys
    if "gen_ai.output.messages" not in attrs:
        output_value, keys = _messages(attrs, COMPLETION_PREFIXES, "assistant")
        used |= keys
    if input_value is None and output_value is None:
        input_value, keys = _entity(attrs, ENTITY_INPUT)
        used |= keys
        output_value, keys = _entity(attrs, ENTITY_OUTPUT)
        used |= keys
    return input_value, output_value, used


# ---- type, model, usage, parameters, metadata -------------------------------------------------


def span_type(attrs: dict[str, Any]) -> str | None:
    request_type = REQUEST_TYPES.get(str(attrs.get("llm.request.type", "")).lower())
    if request_type is not None:
        return request_type
    operation = str(attrs.get("gen_ai.operation.name", ""))
    kind = genai.OPERATION_TYPES.get(operation) or CUSTOM_OPERATIONS.get(operation)
    if kind is not None:
        return kind
    return SPAN_KINDS.get(str(attrs.get("traceloop.span.kind", "")).lower())


def _usage(view: SpanView) -> tuple[dict[str, int] | None, dict[str, int] | None, set[str]]:
    """(billable, aggregated, keys) when early/legacy ``llm.usage.*`` keys exist; genai reads the rest."""
    attrs = view.attributes
    own = {k for k in _OWN_USAGE if as_int(attrs.get(k)) is not None}
    if not own:
        return None, None, set()
    usage = disjoint_counts({bucket: first(attrs, keys) for bucket, keys in USAGE_KEYS.items()})
    operation = str(attrs.get("gen_ai.operation.name", ""))
    if operation in genai.AGGREGATING_OPERATIONS and view.span.kind != 3:  # in-process agent: never bill
        return None, usage, own
    return usage, None, own


def _parameters(attrs: dict[str, Any]) -> tuple[dict[str, Any] | None, set[str]]:
    own: dict[str, Any] = {}
    used: set[str] = set()
    for key, name in PARAMETER_KEYS.items():
        if attrs.get(key) is not None:
            own.setdefault(name, parse_json(attrs[key]))
            used.add(key)
    for prefix in PARAMETER_PREFIXES:
        for key, value in with_prefix(attrs, prefix).items():
            own.setdefault(key, value)
            used.add(prefix + key)
    if not own:
        return None, set()
    return {**own, **(genai.model_parameters(dict(attrs)) or {})}, used


def _association(attrs: dict[str, Any]) -> tuple[dict[str, Any] | None, set[str]]:
    keys = {k for k in attrs if k.startswith(ASSOCIATION) and k not in _CONTEXT_KEYS and len(k) > len(ASSOCIATION)}
    if not keys:
        return None, set()
    return {k[len(ASSOCIATION) :]: attrs[k] for k in sorted(keys)}, keys


def _model(attrs: dict[str, Any]) -> tuple[Any, set[str]]:
    if first(attrs, genai.MODEL_KEYS) is not None:
        return None, set()
    for key in MODEL_KEYS:
        if first(attrs, (key,)) is not None:
            return attrs[key], {key}
    return None, set()


def _provider(attrs: dict[str, Any]) -> tuple[Any, set[str]]:
    if first(attrs, genai.PROVIDER_KEYS) is not None or first(attrs, PROVIDER_KEYS) is None:
        return None, set()
    return attrs[PROVIDER_KEYS[0]], {PROVIDER_KEYS[0]}


# ---- dialect ----------------------------------------------------------------------------------


def matches(view: SpanView) -> bool:
    if "openinference" in view.namespaces:  # OpenInference's own llm.* keys are not OpenLLMetry's
        return False
    if "traceloop" in view.namespaces or view.scope_name == "traceloop.tracer":
        return True
    if "llm" not in view.namespaces and "gen_ai" not in view.namespaces:
        return False
    attrs = view.attributes
    return any(key in attrs for key in SURE_KEYS)


def extract(view: SpanView) -> Extract:
    attrs = view.attributes
    kind = span_type(attrs)
    input_value, output_value, io_keys = _io(attrs)
    usage, aggregated, usage_keys = _usage(view)
    params, param_keys = _parameters(attrs)
    association, association_keys = _association(attrs)
    model, model_keys = _model(attrs)
    provider, provider_keys = _provider(attrs)
    name = as_str(attrs.get("traceloop.entity.name")) if kind == "TOOL" and not attrs.get("gen_ai.tool.name") else None
    return Extract(
        type=kind,
        name=name,
        model=as_str(model),
        provider=as_str(provider),
        model_parameters=params,
        input=input_value,
        output=output_value,
        usage=usage,
        aggregated_usage=aggregated,
        metadata=association,
        trace_metadata=dict(association) if association else None,
        consumed=io_keys | usage_keys | param_keys | association_keys | model_keys | provider_keys,
    )


DIALECT: Dialect = Dialect("openllmetry", matches, extract, by_keys=matches)  # matches reads only the scope and keys
