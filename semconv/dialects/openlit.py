"""OpenLIT (``telemetry.sdk.name = "openlit"``, scope ``openlit.otel.tracing``).

OpenLIT writes OTel GenAI keys, so the genai dialect (lower precedence) already reads the model,
parameters, messages (incl. the old flattened ``gen_ai.prompt``/``gen_ai.completion`` strings and the
``gen_ai.content.prompt``/``.completion`` span events), the usage detail keys, ``gen_ai.usage.cost``
and ``gen_ai.server.time_to_first_token``. This module only adds what is OpenLIT's own.
Facts: ../shared/reference/semconv.md §5, §10, §11, and OpenLIT's source (``openlit/semcov``,
``instrumentation/anthropic/utils.py``).

Decisions where the facts leave room:

- Custom operation names: media/speech calls (``image``, ``audio``, ``translate``…) -> GENERATION;
  ``retrieve`` -> RETRIEVER; ``vectordb`` -> RETRIEVER for reads (query/search/get…), SPAN for
  writes; ``workflow``/``framework``/``graph_execution``… -> CHAIN; ``agent``, ``team`` and
  ``execute_task`` (ag2 / pydantic-ai agent runs, browser-use steps) -> AGENT.
- Usage: OpenLIT sets ``gen_ai.usage.input_tokens`` from the provider's own count, which for
  Anthropic and Bedrock excludes the cache (OpenLIT adds the cache on top when pricing), so the
  convention follows the provider rather than the OTel rule genai applies.
- AGENT/CHAIN spans wrap in-process frameworks whose model calls OpenLIT instruments too; OpenLIT
  marks them CLIENT anyway, so genai would bill their totals twice. Their usage becomes
  ``aggregated_usage`` (shown, never priced), their cost goes to metadata ``aggregated_cost``, and
  an empty usage/cost is returned so the genai reading cannot fill them back in.
- ``gen_ai.usage.cost == 0`` with tokens counted means "model not in OpenLIT's price list", not
  "free": it is ignored so the collector prices the call itself (the raw attribute stays).
"""

from __future__ import annotations

from typing import Any, Final

from semconv.attrs import as_float, as_str, first, is_blank, parse_json, parse_json_any
from semconv.context import ENVIRONMENT_KEYS, normalize_environment
from semconv.dialects import genai
from semconv.extract import Dialect, Extract, SpanView
from semconv.usage import disjoint_counts, provider_input_includes_cache

SDK_NAME: Final = "openlit"
SCOPE_PREFIX: Final = "openlit"

CUSTOM_OPERATIONS: Final = {
    **dict.fromkeys(
        (
            "image",
            "audio",
            "translate",
            "speech_to_text",
            "text_to_speech",
            "transliterate",
            "language_identification",
            "speech_to_text_translate",
            "model_request",
        ),
        "GENERATION",
    ),
    "retrieve": "RETRIEVER",
    **dict.fromkeys(
        ("workflow", "framework", "graph_execution", "user_prompt_processing", "tool_coordination", "task"),
        "CHAIN",
    ),
    **dict.fromkeys(("agent", "team", "execute_task"), "AGENT"),
}
VECTORDB: Final = "vectordb"
VECTORDB_READS: Final = frozenset({"query", "select", "search", "fetch", "get", "peek", "find", "similarity_search"})
AGGREGATING_TYPES: Final = frozenset({"AGENT", "CHAIN"})

REASONING: Final = "gen_ai.content.reasoning"
TOOL_INPUT_KEYS = ("gen_ai.tool.input", "gen_ai.tool.args")
TOOL_OUTPUT_KEYS = ("gen_ai.tool.output",)
RETRIEVAL_QUERY_KEYS = ("gen_ai.retrieval.query.text", "gen_ai.retrieval.query", "db.query.text")
RETRIEVAL_DOCUMENT_KEYS = ("gen_ai.retrieval.documents",)
LEGACY_ENVIRONMENT: Final = "gen_ai.environment"


def span_type(attrs: dict[str, Any]) -> str | None:
    """OpenLIT's custom operation names; None for the standard ones (genai maps those)."""
    operation = str(attrs.get("gen_ai.operation.name", ""))
    if operation == VECTORDB:
        db_operation = str(attrs.get("db.operation.name", attrs.get("db.operation", ""))).lower()
        return "RETRIEVER" if db_operation in VECTORDB_READS else "SPAN"
    return CUSTOM_OPERATIONS.get(operation)


def _first_key(attrs: dict[str, Any], keys: tuple[str, ...]) -> tuple[Any, set[str]]:
    for key in keys:
        if first(attrs, (key,)) is not None:
            return attrs[key], {key}
    return None, set()


def _usage(attrs: dict[str, Any]) -> dict[str, int] | None:
    counts = {bucket: first(attrs, keys) for bucket, keys in genai.USAGE_KEYS.items()}
    provider = as_str(first(attrs, genai.PROVIDER_KEYS))
    return disjoint_counts(counts, input_includes_cache=provider_input_includes_cache(provider))


def _with_reasoning(attrs: dict[str, Any]) -> tuple[Any, set[str]]:
    """genai's output with ``gen_ai.content.reasoning`` added to the last assistant message."""
    reasoning = attrs.get(REASONING)
    if is_blank(reasoning):
        return None, set()
    _, output = genai.content_from_attributes(dict(attrs))
    if not isinstance(output, list):
        return None, set()
    for index in range(len(output) - 1, -1, -1):
        message = output[index]
        if isinstance(message, dict) and message.get("role") == "assistant":
            if not message.get("reasoning"):
                output = [*output[:index], {**message, "reasoning": as_str(reasoning)}, *output[index + 1 :]]
                return output, {REASONING}
            break
    return None, set()


def _fallback_io(attrs: dict[str, Any], kind: str | None) -> tuple[Any, Any, set[str]]:
    """Tool and retrieval input/output under OpenLIT's own keys, when the standard keys are absent."""
    if kind == "TOOL":
        input_value: Any = None
        output_value: Any = None
        used: set[str] = set()
        if attrs.get("gen_ai.tool.call.arguments") is None:
            value, keys = _first_key(attrs, TOOL_INPUT_KEYS)
            input_value, used = parse_json(value), used | keys
        if attrs.get("gen_ai.tool.call.result") is None:
            value, keys = _first_key(attrs, TOOL_OUTPUT_KEYS)
            output_value, used = parse_json_any(value), used | keys
        return input_value, output_value, used
    if kind == "RETRIEVER" and attrs.get("gen_ai.input.messages") is None:
        query, query_keys = _first_key(attrs, RETRIEVAL_QUERY_KEYS)
        documents, document_keys = _first_key(attrs, RETRIEVAL_DOCUMENT_KEYS)
        return query, parse_json(documents), query_keys | document_keys
    return None, None, set()


def _environment(attrs: dict[str, Any]) -> tuple[str | None, set[str]]:
    """Old OpenLIT's span-level ``gen_ai.environment``, unless a standard environment key is on the span."""
    value = attrs.get(LEGACY_ENVIRONMENT)
    if is_blank(value) or first(attrs, ENVIRONMENT_KEYS) is not None:
        return None, set()
    return normalize_environment(value), {LEGACY_ENVIRONMENT}


def by_keys(view: SpanView) -> bool | None:
    """Recognised by the scope or OpenLIT's own keys; else the SDK names decide (see Dialect.by_keys)."""
    attrs = view.attributes
    if view.scope_name.startswith(SCOPE_PREFIX) or ("gen_ai.usage.cost" in attrs and "gen_ai.sdk.version" in attrs):
        return True
    return None


def matches(view: SpanView) -> bool:
    return (
        by_keys(view)
        or view.attributes.get("telemetry.sdk.name") == SDK_NAME
        or view.resource.get("telemetry.sdk.name") == SDK_NAME
    )


def extract(view: SpanView) -> Extract:
    attrs = view.attributes
    custom = span_type(attrs)
    kind = custom or genai.operation_type(dict(attrs))
    usage = _usage(attrs)
    cost = as_float(attrs.get("gen_ai.usage.cost"))
    metadata: dict[str, Any] | None = None
    aggregated = None
    costs: dict[str, float] | None = None
    if kind in AGGREGATING_TYPES:
        if usage is not None:
            aggregated, usage = usage, {}
        if cost is not None:
            metadata, costs = {"aggregated_cost": cost}, {}
    elif cost == 0 and usage and usage.get("total"):
        costs = {}  # "not in OpenLIT's price list": let the collector price it
    input_value, output_value, io_keys = _fallback_io(attrs, kind)
    reasoned, reasoning_keys = _with_reasoning(attrs)
    environment, environment_keys = _environment(attrs)
    return Extract(
        type=custom,
        input=input_value,
        output=reasoned if reasoned is not None else output_value,
        usage=usage,
        aggregated_usage=aggregated,
        cost=costs,
        metadata=metadata,
        environment=environment,
        consumed=io_keys | reasoning_keys | environment_keys,
    )


DIALECT: Dialect = Dialect("openlit", matches, extract, by_keys)
