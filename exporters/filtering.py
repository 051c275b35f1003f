"""Which spans the client exports by default: LLM spans, not HTTP or database noise.

The rule is Langfuse's (``langfuse.span_filter.is_default_export_span``): a span is kept when it
comes from the Langfuse SDK, carries any ``gen_ai.*`` attribute, or comes from a known GenAI
instrumentation scope. The scope part is decided once per scope name and cached, because
``on_end`` runs on the application thread for every span.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan

LANGFUSE_SDK_SCOPE = "langfuse-sdk"
OBSERVE_SCOPE = "spanfuse.observe"

SpanPredicate = Callable[[ReadableSpan], bool]

# Langfuse 5.0.4's KNOWN_LLM_INSTRUMENTATION_SCOPE_PREFIXES, plus our own decorator and a few
# instrumentations it does not list (OpenLIT, MLflow, the official google-genai and MCP ones).
KNOWN_LLM_SCOPE_PREFIXES: frozenset[str] = frozenset(
    {
        LANGFUSE_SDK_SCOPE,
        "spanfuse",
        "agent_framework",
        "autogen-core",
        "ai",
        "haystack",
        "langsmith",
        "litellm",
        "mlflow",
        "openinference",
        "openlit",
        "pydantic-ai",
        "strands-agents",
        "vllm",
        *(
            f"opentelemetry.instrumentation.{name}"
            for name in (
                "agno",
                "alephalpha",
                "anthropic",
                "bedrock",
                "cohere",
                "crewai",
                "google_genai",
                "google_generativeai",
                "groq",
                "haystack",
                "langchain",
                "llamaindex",
                "mcp",
                "mistralai",
                "ollama",
                "openai",
                "openai_agents",
                "openai_v2",
                "replicate",
                "sagemaker",
                "together",
                "transformers",
                "vertexai",
                "voyageai",
                "watsonx",
                "writer",
            )
        ),
    }
)


def is_known_llm_scope(scope_name: str) -> bool:
    """Whether ``scope_name`` is a known GenAI scope: a listed prefix exactly, or below it (``prefix.``)."""
    head = scope_name
    while True:
        if head in KNOWN_LLM_SCOPE_PREFIXES:
            return True
        cut = head.rfind(".")
        if cut < 0:
            return False
        head = head[:cut]


def has_genai_attribute(span: ReadableSpan) -> bool:
    """Whether the span carries any OpenTelemetry GenAI (``gen_ai.*``) attribute."""
    attributes = span.attributes
    if not attributes:
        return False
    return any(key.startswith("gen_ai.") for key in attributes)


class DefaultSpanFilter:
    """The default ``should_export_span``: callable on a span, with a per-scope-name cache."""

    _MAX_SCOPES = 4096  # scope names are few; the bound only guards against generated names

    def __init__(self) -> None:
        self._scopes: dict[str, bool] = {}

    def __call__(self, span: ReadableSpan) -> bool:
        scope = span.instrumentation_scope
        name = scope.name if scope is not None else ""
        known = self._scopes.get(name)
        if known is None:
            if len(self._scopes) >= self._MAX_SCOPES:
                self._scopes.clear()
            known = self._scopes[name] = is_known_llm_scope(name)
        return known or has_genai_attribute(span)


_default_filter = DefaultSpanFilter()


def is_default_export_span(span: ReadableSpan) -> bool:
    """Langfuse's default export rule; use it to extend rather than replace the filter.

    >>> keep = lambda span: is_default_export_span(span) or span.name.startswith("db.")
    """
    return _default_filter(span)
