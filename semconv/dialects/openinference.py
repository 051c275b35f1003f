"""OpenInference (Arize Phoenix): ``openinference.span.kind`` on every span, ``llm.*``, ``input.value``.

Facts: ../shared/reference/semconv.md §3, §10, §11. Only what is specific to OpenInference is read
here; plain ``gen_ai.*`` keys on the same span are left to the genai dialect (lower precedence).

Decisions where the facts leave room:

- ``RERANKER`` -> RETRIEVER (documents in, ranked documents out; Langfuse has no reranker type).
  ``PROMPT`` (template rendering) and ``UNKNOWN`` -> None, so the generic fallback applies.
- Token counts are billable only on LLM/EMBEDDING spans (and spans of unknown kind). On CHAIN,
  AGENT, TOOL… spans (e.g. smolagents' agent span) they repeat the children's counts: they become
  ``aggregated_usage`` (shown, never priced), and ``llm.cost.*`` there goes to metadata.
- Flattened ``llm.input_messages`` / ``llm.output_messages`` win over ``input.value`` /
  ``output.value`` (Langfuse checks ``input.value`` first and so shows the raw request JSON).
  When only ``input.value`` exists on an LLM span and it is a request body, its ``messages``
  (with an Anthropic-style ``system``) become the input; a response body's ``choices`` (or an
  Anthropic message) becomes the output.
- ``llm.token_count.prompt_details.cache_input`` overlaps cache_read/cache_write without saying
  how, so it is not mapped and stays in the raw attributes.
"""

from __future__ import annotations

from typing import Any, Final

from semconv.attrs import as_float, as_int, as_str, first, indexed, is_blank, parse_json, parse_json_any, with_prefix
from semconv.extract import Dialect, Extract, SpanView
from semconv.messages import normalize_messages, prepend_system
from semconv.shapes import KeySet, key_memo
from semconv.usage import disjoint_counts

KIND: Final = "openinference.span.kind"
TYPES: Final = {
    "LLM": "GENERATION",
    "EMBEDDING": "EMBEDDING",
    "CHAIN": "CHAIN",
    "RETRIEVER": "RETRIEVER",
    "RERANKER": "RETRIEVER",
    "TOOL": "TOOL",
    "AGENT": "AGENT",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
    "PROMPT": None,
    "UNKNOWN": None,
}
BILLABLE_TYPES: Final = frozenset({"GENERATION", "EMBEDDING", None})

MODEL_KEYS = (
    "llm.response.model_name",
    "llm.model_name",
    "llm.request.model_name",
    "embedding.model_name",
    "reranker.model_name",
)
PROVIDER_KEYS = ("llm.provider", "llm.system")
PARAMETER_KEYS = ("llm.invocation_parameters", "embedding.invocation_parameters")

# llm.token_count.* -> disjoint() argument. Prompt includes cache and audio, completion includes
# reasoning and audio (OpenInference's Anthropic instrumentation: prompt = input + cache_read + cache_write).
TOKEN_PREFIX: Final = "llm.token_count."
USAGE_KEYS: Final = {
    "input": "prompt",
    "output": "completion",
    "total": "total",
    "cache_read": "prompt_details.cache_read",
    "cache_write": "prompt_details.cache_write",
    "input_audio": "prompt_details.audio",
    "reasoning": "completion_details.reasoning",
    "output_audio": "completion_details.audio",
}

# llm.cost.* (USD) -> our bucket names. "prompt"/"completion" are inclusive totals of their side.
COST_PREFIX: Final = "llm.cost."
COST_DETAILS: Final = {
    "input": "prompt_details.input",
    "cache_read": "prompt_details.cache_read",
    "cache_write": "prompt_details.cache_write",
    "input_audio": "prompt_details.audio",
    "output": "completion_details.output",
    "reasoning": "completion_details.reasoning",
    "output_audio": "completion_details.audio",
}
COST_SIDES: Final = {
    "prompt": ("input", ("cache_read", "cache_write", "input_audio")),
    "completion": ("output", ("reasoning", "output_audio")),
}

INPUT_MESSAGES: Final = "llm.input_messages."
OUTPUT_MESSAGES: Final = "llm.output_messages."
PROMPTS: Final = "llm.prompts"
CHOICES: Final = "llm.choices"
DOCUMENTS: Final = "retrieval.documents."
RERANK_INPUT: Final = "reranker.input_documents."
RERANK_OUTPUT: Final = "reranker.output_documents."
EMBEDDINGS: Final = "embedding.embeddings."
JSON_MIME: Final = "application/json"
# Message fields kept as they are (a tuple of any length: compiled, a loop indexes it).
_MESSAGE_FIELDS: Final[tuple[str, ...]] = ("name", "tool_call_id", "finish_reason")


# Decoded attributes and JSON hold dicts, never other mappings: they are tested as ``dict``
# (an isinstance check against the ``Mapping`` ABC costs a Python-level call).
def _dig(node: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


# ---- messages ---------------------------------------------------------------------------------


def _part(item: Any) -> dict[str, Any] | None:
    """One ``message_content`` entry as a content part normalize_message understands."""
    content = _dig(item, "message_content")
    if not isinstance(content, dict):
        return None
    kind = content.get("type")
    text = content.get("text")
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _dig(content, "image", "image", "url")}}
    if kind == "audio":
        return {"type": "audio", "audio": _dig(content, "audio", "audio") or content.get("audio")}
    if kind == "reasoning":
        return {"type": "reasoning", "content": text} if text is not None else None
    if kind in (None, "text"):
        return {"type": "text", "text": text} if text is not None else None
    return {k: v for k, v in content.items()}


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for item in message.get("tool_calls") or ():
        call = _dig(item, "tool_call")
        if isinstance(call, dict):
            function = call.get("function")
            calls.append({"id": call.get("id"), "function": dict(function) if isinstance(function, dict) else {}})
    if message.get("function_call_name") is not None:  # deprecated OpenAI function calling
        arguments = message.get("function_call_arguments_json")
        calls.append({"id": None, "function": {"name": message["function_call_name"], "arguments": arguments}})
    return calls


def _message(item: Any, default_role: str) -> dict[str, Any] | None:
    message = _dig(item, "message")
    if not isinstance(message, dict):
        return None
    contents = message.get("contents")
    role = message.get("role")
    raw: dict[str, Any] = {"role": role if isinstance(role, str) and role else default_role}
    if isinstance(contents, list) and contents:
        raw["content"] = [p for p in (_part(c) for c in contents) if p is not None]
    else:
        raw["content"] = message.get("content")
    for key in _MESSAGE_FIELDS:
        value = message.get(key)
        if value is not None:
            raw[key] = value
    calls = _tool_calls(message)
    if calls:
        raw["tool_calls"] = calls
    return raw


def _messages(attrs: dict[str, Any], keys: KeySet, prefix: str, default_role: str) -> tuple[Any, set[str]]:
    items, used = indexed(attrs, prefix, keys=keys)
    raws = [m for m in (_message(item, default_role) for item in items) if m is not None]
    return (normalize_messages(raws), used) if raws else (None, set())


def _texts(attrs: dict[str, Any], key: str, path: tuple[str, ...]) -> tuple[Any, set[str]]:
    """Completions-API prompts/choices: ``llm.prompts.N.prompt.text`` or an older string list."""
    value = attrs.get(key)
    if isinstance(value, list) and value:
        texts = [as_str(v) for v in value]
        return (texts[0] if len(texts) == 1 else texts), {key}
    items, keys = indexed(attrs, key + ".")
    texts = [t for t in (_dig(item, *path) for item in items) if t is not None]
    if not texts:
        return None, set()
    return (texts[0] if len(texts) == 1 else texts), keys


# ---- input.value / output.value ---------------------------------------------------------------


def _value(attrs: dict[str, Any], side: str) -> tuple[Any, set[str]]:
    """``input.value``/``output.value``: JSON when typed so or when it is an object/array."""
    key = side + ".value"
    value = attrs.get(key)
    if is_blank(value):
        return None, set()
    mime = attrs.get(side + ".mime_type")
    if isinstance(value, str):
        text = value.strip()
        if mime == JSON_MIME:
            value = parse_json_any(value)
        elif text[:1] in ("{", "["):
            value = parse_json(text)
    keys = {key} | ({side + ".mime_type"} if mime is not None else set())
    return value, keys


def _chat(value: Any) -> list[dict[str, Any]] | None:
    """``value`` normalised to chat messages, or None if it is not a message list."""
    messages = normalize_messages(value)
    if isinstance(messages, list) and messages and all(isinstance(m, dict) and "role" in m for m in messages):
        return messages
    return None


def _request_messages(value: Any) -> Any:
    """An LLM request body ``{"messages": [...], "system"?: ..., "model": ...}`` -> its chat messages."""
    if isinstance(value, dict) and "role" not in value:
        messages = _chat(value.get("messages"))
        if messages is not None:
            return prepend_system(messages, value.get("system"))
    return normalize_messages(value)


def _response_messages(value: Any) -> Any:
    """An LLM response body (OpenAI ``choices`` or an Anthropic message) -> its chat messages."""
    if not isinstance(value, dict):
        return normalize_messages(value)
    choices = value.get("choices")
    if isinstance(choices, list) and choices:
        messages = []
        for choice in choices:
            message = dict(_dig(choice, "message") or {})
            if isinstance(choice, dict) and choice.get("finish_reason") is not None:
                message.setdefault("finish_reason", choice["finish_reason"])
            messages.append(message)
        return _chat([{"role": "assistant", **m} for m in messages]) or value
    if isinstance(value.get("role"), str) and "content" in value:
        message = {"role": value["role"], "content": value["content"]}
        if value.get("stop_reason") is not None:
            message["finish_reason"] = value["stop_reason"]
        return _chat(message) or value
    return normalize_messages(value)


# ---- documents --------------------------------------------------------------------------------


def _documents(attrs: dict[str, Any], prefix: str) -> tuple[list[dict[str, Any]] | None, set[str]]:
    items, keys = indexed(attrs, prefix)
    documents = []
    for item in items:
        document = _dig(item, "document")
        if isinstance(document, dict):
            doc = dict(document)
            if "metadata" in doc:
                doc["metadata"] = parse_json(doc["metadata"])
            documents.append(doc)
    return (documents or None), (keys if documents else set())


def _embedding_texts(attrs: dict[str, Any]) -> tuple[Any, set[str]]:
    keys = {k for k in attrs if k.startswith(EMBEDDINGS) and k.endswith(".embedding.text")}
    items, _ = indexed({k: attrs[k] for k in keys}, EMBEDDINGS)
    texts = [t for t in (_dig(item, "embedding", "text") for item in items) if t is not None]
    if not texts:
        return None, set()
    return (texts[0] if len(texts) == 1 else texts), keys


# ---- input / output per kind ------------------------------------------------------------------


def _io(attrs: dict[str, Any], attr_keys: KeySet, kind: str | None) -> tuple[Any, Any, set[str]]:
    used: set[str] = set()
    input_value, keys = _messages(attrs, attr_keys, INPUT_MESSAGES, "user")
    if input_value is None:
        input_value, keys = _texts(attrs, PROMPTS, ("prompt", "text"))
    if input_value is None:
        input_value, keys = _value(attrs, "input")
        input_value = _request_messages(input_value) if kind == "GENERATION" else normalize_messages(input_value)
    used |= keys
    output_value, keys = _messages(attrs, attr_keys, OUTPUT_MESSAGES, "assistant")
    if output_value is None:
        output_value, keys = _texts(attrs, CHOICES, ("completion", "text"))
    if output_value is None:
        output_value, keys = _value(attrs, "output")
        output_value = _response_messages(output_value) if kind == "GENERATION" else normalize_messages(output_value)
    used |= keys
    if attrs.get(KIND) == "RERANKER":
        input_value, output_value = _rerank_io(attrs, input_value, output_value, used)
    elif kind == "RETRIEVER" and output_value is None:
        output_value, keys = _documents(attrs, DOCUMENTS)
        used |= keys
    elif kind == "EMBEDDING" and input_value is None:
        input_value, keys = _embedding_texts(attrs)
        used |= keys
    return input_value, output_value, used


def _rerank_io(attrs: dict[str, Any], input_value: Any, output_value: Any, used: set[str]) -> tuple[Any, Any]:
    if input_value is None:
        documents, keys = _documents(attrs, RERANK_INPUT)
        query = attrs.get("reranker.query")
        if documents is not None or query is not None:
            input_value = {"query": query, "documents": documents}
            if attrs.get("reranker.top_k") is not None:
                input_value["top_k"] = attrs["reranker.top_k"]
            used |= keys | {k for k in ("reranker.query", "reranker.top_k") if k in attrs}
    if output_value is None:
        output_value, keys = _documents(attrs, RERANK_OUTPUT)
        used |= keys
    return input_value, output_value


# ---- usage, cost, parameters, metadata --------------------------------------------------------


_TOKEN_KEYS: Final = {bucket: TOKEN_PREFIX + suffix for bucket, suffix in USAGE_KEYS.items()}


@key_memo
def _token_plan(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(bucket, key) of every ``llm.token_count.*`` key present: the keys decide, so planned per key set."""
    present = frozenset(keys)
    return tuple((bucket, key) for bucket, key in _TOKEN_KEYS.items() if key in present)


def _usage(attrs: dict[str, Any], keys: KeySet) -> tuple[dict[str, int] | None, set[str]]:
    counts: dict[str, Any] = {}
    used: set[str] = set()
    for bucket, key in _token_plan.of(keys):
        value = attrs[key]
        counts[bucket] = value
        if value is not None and as_int(value) is not None:
            used.add(key)
    return disjoint_counts(counts), used


def _cost(attrs: dict[str, Any], keys: KeySet) -> tuple[dict[str, float] | None, set[str]]:
    """``llm.cost.*`` as disjoint USD buckets plus ``total`` (``llm.cost.total``, else the sum)."""
    if not with_prefix(attrs, COST_PREFIX, keys=keys):  # the usual case, known per key set (see semconv.shapes)
        return None, set()
    cost: dict[str, float] = {}
    used: set[str] = set()
    for bucket, suffix in COST_DETAILS.items():
        value = as_float(attrs.get(COST_PREFIX + suffix))
        if value is not None:
            cost[bucket] = value
            used.add(COST_PREFIX + suffix)
    side_totals = 0.0
    for side, (main, parts) in COST_SIDES.items():
        side_total = as_float(attrs.get(COST_PREFIX + side))
        if side_total is None:
            side_totals += sum(cost.get(b, 0.0) for b in (main, *parts))
            continue
        used.add(COST_PREFIX + side)
        side_totals += side_total
        rest = side_total - sum(cost.get(p, 0.0) for p in parts)
        if main not in cost:
            cost[main] = rest if rest >= 0 else side_total
    total = as_float(attrs.get(COST_PREFIX + "total"))
    if total is not None:
        used.add(COST_PREFIX + "total")
    if not cost and total is None:
        return None, set()
    cost["total"] = total if total is not None else side_totals
    return cost, used


def _parameters(attrs: dict[str, Any]) -> tuple[dict[str, Any] | None, set[str]]:
    for key in PARAMETER_KEYS:
        params = parse_json(attrs.get(key))
        if isinstance(params, dict):
            return {k: v for k, v in params.items() if k != "model"}, {key}
    return None, set()


def _metadata(attrs: dict[str, Any]) -> tuple[dict[str, Any] | None, set[str]]:
    metadata = parse_json(attrs.get("metadata"))
    if isinstance(metadata, dict) and metadata:
        return metadata, {"metadata"}
    return None, set()


def _first_key(attrs: dict[str, Any], keys: tuple[str, ...]) -> tuple[Any, set[str]]:
    for key in keys:
        value = first(attrs, (key,))
        if value is not None:
            return value, {key}
    return None, set()


# ---- dialect ----------------------------------------------------------------------------------


def span_type(attrs: dict[str, Any]) -> str | None:
    return TYPES.get(str(attrs.get(KIND, "")).strip().upper())


def matches(view: SpanView) -> bool:
    return "openinference" in view.namespaces or view.scope_name.startswith("openinference.")


def extract(view: SpanView) -> Extract:
    attrs = view.attributes
    kind = span_type(attrs)
    model, model_keys = _first_key(attrs, MODEL_KEYS)
    provider, provider_keys = _first_key(attrs, PROVIDER_KEYS)
    params, param_keys = _parameters(attrs)
    input_value, output_value, io_keys = _io(attrs, view.keys, kind)
    usage, usage_keys = _usage(attrs, view.keys)
    cost, cost_keys = _cost(attrs, view.keys)
    user_metadata, metadata_keys = _metadata(attrs)
    metadata = user_metadata
    aggregated = None
    if kind not in BILLABLE_TYPES:  # a parent repeating its model calls' usage: show, never bill
        aggregated, usage = usage, None
        if cost:
            metadata = {**(metadata or {}), "aggregated_cost": cost}
            cost = None
    name = as_str(attrs.get("tool.name")) if kind == "TOOL" else None
    consumed = model_keys  # a fresh set: the others join it by set.update, a direct call when compiled
    for keys in (provider_keys, param_keys, io_keys, usage_keys, cost_keys, metadata_keys):
        consumed.update(keys)
    if name:
        consumed.add("tool.name")
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
        cost=cost,
        metadata=metadata,
        trace_metadata=dict(user_metadata) if user_metadata else None,
        consumed=consumed,
    )


DIALECT: Dialect = Dialect("openinference", matches, extract, by_keys=matches)  # matches reads only the scope and keys
