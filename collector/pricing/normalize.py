"""Model-name and provider normalisation done before matching a price.

Everything here is pure string work with no dependency on the price data, so it is cheap to test.
"""

from __future__ import annotations

import re

# OTel (`gen_ai.provider.name` / legacy `gen_ai.system`), OpenInference, Vercel AI SDK and LiteLLM spellings,
# lower-cased, mapped to genai-prices provider ids.
_PROVIDER_ALIASES: dict[str, str] = {
    # OpenAI
    "openai": "openai",
    "openai.chat": "openai",
    "openai.responses": "openai",
    "openai.completion": "openai",
    "openai.embedding": "openai",
    # Anthropic
    "anthropic": "anthropic",
    "anthropic.messages": "anthropic",
    # AWS Bedrock
    "aws": "aws",
    "aws.bedrock": "aws",
    "aws_bedrock": "aws",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "amazon-bedrock": "aws",
    "amazon_bedrock": "aws",
    "amazon.bedrock": "aws",
    # Google (Gemini API and Vertex AI share the `google` id in genai-prices)
    "google": "google",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertex-ai": "google",
    "vertexai": "google",
    "vertex": "google",
    "gemini": "google",
    "google_genai": "google",
    "google-genai": "google",
    "google.generative-ai": "google",
    "google.vertex": "google",
    "googleai": "google",
    "google_ai": "google",
    # Azure (genai-prices falls back from azure to openai, anthropic, deepseek, x-ai and moonshotai)
    "azure": "azure",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "azure.openai": "azure",
    "azure_ai": "azure",
    # xAI
    "x-ai": "x-ai",
    "x_ai": "x-ai",
    "xai": "x-ai",
    # Mistral
    "mistral": "mistral",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral-ai": "mistral",
    # Others whose OTel spelling differs from the genai-prices id
    "together_ai": "together",
    "together-ai": "together",
    "togetherai": "together",
    "fireworks_ai": "fireworks",
    "fireworks-ai": "fireworks",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
    "moonshot_ai": "moonshotai",
    "cerebras": "cerebras",
    "huggingface": "huggingface",
}

_BEDROCK_REGIONS = r"us|eu|apac|global|us-gov|jp|au|ca|in|regional"
_BEDROCK_VENDORS = (
    r"anthropic|amazon|meta|mistral|cohere|ai21|deepseek|qwen|openai|writer|twelvelabs|stability|moonshot|"
    r"moonshotai|minimax|google|nvidia"
)
# `us.anthropic.claude-3-5-sonnet-20241022-v2:0`, `anthropic.claude-3-haiku-20240307-v1:0`, `meta.llama3-70b-…-v1:0`
_BEDROCK_RE = re.compile(rf"^(?:(?:{_BEDROCK_REGIONS})\.)?(?:{_BEDROCK_VENDORS})\.(?P<model>[a-z0-9].*)$")
_BEDROCK_VERSION_RE = re.compile(r"(?:-v\d+(?::\d+)?|:\d+)$")
# `claude-3-5-sonnet-v2@20241022` (Vertex AI): `@` separates the version.
_VERTEX_AT_RE = re.compile(r"(?:-v\d+)?@")
# Trailing date: `-2024-08-06`, `-20240806`, `-2408` is too ambiguous and is left alone.
_DATE_SUFFIX_RE = re.compile(r"-(?:20\d{2}-\d{2}-\d{2}|20\d{6})$")


def canonical_provider(provider: str | None) -> str | None:
    """Lower-case a provider spelling and map known aliases to genai-prices provider ids.

    ``aws.bedrock`` → ``aws``, ``gcp.vertex_ai``/``gcp.gemini`` → ``google``, ``az.ai.openai`` → ``azure``,
    ``x_ai`` → ``x-ai``, ``MistralAI`` → ``mistral``, ``openai.chat`` → ``openai``. A dotted spelling whose
    first segment is known (``groq.chat``) maps through that segment. Anything else is returned lower-cased
    and stripped (so custom entries can still match on it); empty or non-string input gives None.
    """
    if not isinstance(provider, str):
        return None
    key = provider.strip().lower()
    if not key:
        return None
    if (alias := _PROVIDER_ALIASES.get(key)) is not None:
        return alias
    head = key.split(".", 1)[0]
    if head != key and (alias := _PROVIDER_ALIASES.get(head)) is not None:
        return alias
    return key


def is_bedrock_name(model: str) -> bool:
    """True for Bedrock model ids such as ``us.anthropic.claude-…-v2:0`` or ``amazon.nova-pro-v1:0``."""
    return _BEDROCK_RE.match(model.strip().lower()) is not None


def provider_hint(model: str) -> str | None:
    """The provider a model name itself implies: Bedrock ids → ``aws``; ``openai/gpt-4o`` → ``openai``."""
    name = model.strip().lower()
    if "/" in name:
        head = name.split("/", 1)[0]
        alias = _PROVIDER_ALIASES.get(head)
        if alias is not None:
            return alias
    if _BEDROCK_RE.match(name.rsplit("/", 1)[-1]):
        return "aws"
    return None


def _add(out: list[str], name: str) -> None:
    if name and name not in out:
        out.append(name)


def name_candidates(model: str) -> list[str]:
    """Spellings of ``model`` to try, most specific first, all lower-case, without date stripping.

    The name as sent; then with leading ``provider/`` path segments removed one at a time (``openai/gpt-4o``,
    ``models/gemini-2.5-pro``, ``openrouter/anthropic/claude-…``); for each, Bedrock ids without the region
    and vendor prefix and without the ``-v2:0`` version suffix, and Vertex ``claude-…@20241022`` with a dash.
    """
    name = model.strip().lower()
    out: list[str] = []
    parts = name.split("/")
    for i in range(len(parts)):
        base = "/".join(parts[i:])
        _add(out, base)
        bedrock = _BEDROCK_RE.match(base)
        if bedrock:
            inner = bedrock.group("model")
            _add(out, _BEDROCK_VERSION_RE.sub("", inner))
            _add(out, inner)
        if "@" in base:
            _add(out, _VERTEX_AT_RE.sub("-", base))
            _add(out, base.split("@", 1)[0])
    return out


def undated_candidates(candidates: list[str]) -> list[str]:
    """The candidates with a trailing date (``-2024-08-06`` or ``-20240806``) removed, new ones only."""
    out: list[str] = []
    for name in candidates:
        undated = _DATE_SUFFIX_RE.sub("", name)
        if undated != name and undated not in candidates:
            _add(out, undated)
    return out
