"""Name and provider normalisation before matching (real genai-prices data)."""

from __future__ import annotations

import pytest

from collector.pricing import PriceTable, canonical_provider, name_candidates
from collector.pricing.normalize import provider_hint, undated_candidates

PROVIDERS = [
    ("openai", "openai"),
    ("openai.chat", "openai"),
    ("openai.responses", "openai"),
    ("anthropic", "anthropic"),
    ("Anthropic", "anthropic"),
    ("anthropic.messages", "anthropic"),
    ("aws.bedrock", "aws"),
    ("bedrock", "aws"),
    ("aws", "aws"),
    ("amazon-bedrock", "aws"),
    ("gcp.vertex_ai", "google"),
    ("vertex_ai", "google"),
    ("gcp.gemini", "google"),
    ("gemini", "google"),
    ("google.generative-ai", "google"),
    ("azure.ai.openai", "azure"),
    ("az.ai.openai", "azure"),
    ("azure", "azure"),
    ("x_ai", "x-ai"),
    ("xai", "x-ai"),
    ("mistral_ai", "mistral"),
    ("MistralAI", "mistral"),
    ("groq.chat", "groq"),
    ("  OpenAI ", "openai"),
    ("langchain", "langchain"),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("spelling", "expected"), PROVIDERS)
def test_canonical_provider(spelling: str | None, expected: str | None) -> None:
    assert canonical_provider(spelling) == expected


RESOLVE = [
    # (model as sent, provider as sent, matched model id, matched provider id)
    ("gpt-4o", None, "gpt-4o", "openai"),
    ("GPT-4o", "OpenAI", "gpt-4o", "openai"),
    ("openai/gpt-4o", None, "gpt-4o", "openai"),
    ("openai/gpt-4o", "litellm", "gpt-4o", "openai"),
    ("gpt-4o-2024-08-06", "openai", "gpt-4o", "openai"),  # genai-prices matches the dated name itself
    ("gpt-4o-2024-05-13", "openai", "gpt-4o-2024-05-13", "openai"),  # a dated name with its own price keeps it
    ("gpt-4o-2099-12-31", "openai", "gpt-4o", "openai"),  # unknown date suffix: stripped as a last resort
    ("gpt-4o-mini-20240718", None, "gpt-4o-mini", "openai"),
    ("anthropic/claude-3-5-sonnet-20241022", None, "claude-3-5-sonnet", "anthropic"),
    ("claude-haiku-4-5", "some-gateway", "claude-haiku-4-5", "anthropic"),
    ("models/gemini-2.5-pro", "gcp.gemini", "gemini-2.5-pro", "google"),
    ("google/gemini-2.5-flash", None, "gemini-2.5-flash", "google"),
    ("gemini-2.5-pro", "gcp.vertex_ai", "gemini-2.5-pro", "google"),
    ("claude-3-5-sonnet-v2@20241022", "gcp.vertex_ai", "claude-3-5-sonnet", "google"),
    (
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "aws.bedrock",
        "regional.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "aws",
    ),
    ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", None, "regional.anthropic.claude-3-5-sonnet-20241022-v2:0", "aws"),
    ("anthropic.claude-3-haiku-20240307-v1:0", "aws", "regional.anthropic.claude-3-haiku-20240307-v1:0", "aws"),
    (
        "apac.anthropic.claude-3-haiku-20240307-v1:0",
        "bedrock",
        "regional.anthropic.claude-3-haiku-20240307-v1:0",
        "aws",
    ),
    (
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "aws.bedrock",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "aws",
    ),
    ("gpt-4o", "azure.ai.openai", "gpt-4o", "azure"),
    ("gpt-4o-mini", "az.ai.openai", "gpt-4o-mini", "azure"),
    ("grok-3", "x_ai", "grok-3", "x-ai"),
    ("grok-3", "xai", "grok-3", "x-ai"),
    ("mistral-large-latest", "mistral_ai", "mistral-large", "mistral"),
    ("mistral-large-latest", "MistralAI", "mistral-large", "mistral"),
    ("o3", "openai.responses", "o3", "openai"),
    ("claude-3-5-haiku-20241022", "anthropic.messages", "claude-3-5-haiku-latest", "anthropic"),
    # the client says openai (OpenAI SDK against a gateway) but the model is Anthropic's: found by name
    ("claude-haiku-4-5", "openai", "claude-haiku-4-5", "anthropic"),
]


@pytest.mark.parametrize(("model", "provider", "matched", "matched_provider"), RESOLVE)
def test_resolve_normalises(
    default_table: PriceTable, model: str, provider: str | None, matched: str, matched_provider: str
) -> None:
    prices = default_table.resolve(model, provider)
    assert prices is not None, (model, provider)
    assert (prices.name, prices.provider) == (matched, matched_provider)


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("my-private-model", None),
        ("my-private-model", "openai"),
        ("totally-unknown/thing", "aws.bedrock"),
        ("gpt-", None),
        ("   ", None),
    ],
)
def test_unknown_model_has_no_cost(default_table: PriceTable, model: str, provider: str | None) -> None:
    assert default_table.resolve(model, provider) is None
    result = default_table.cost({"input": 1000, "output": 10}, model, provider)
    assert result.unknown_model is True
    assert result.cost_details == {}
    assert result.total_cost is None
    assert result.matched_model is None


def test_name_candidates() -> None:
    assert name_candidates("openrouter/anthropic/Claude-X") == [
        "openrouter/anthropic/claude-x",
        "anthropic/claude-x",
        "claude-x",
    ]
    assert name_candidates("us.anthropic.claude-3-haiku-20240307-v1:0") == [
        "us.anthropic.claude-3-haiku-20240307-v1:0",
        "claude-3-haiku-20240307",
        "claude-3-haiku-20240307-v1:0",
    ]
    assert name_candidates("claude-3-5-sonnet-v2@20241022")[:2] == [
        "claude-3-5-sonnet-v2@20241022",
        "claude-3-5-sonnet-20241022",
    ]
    assert undated_candidates(["gpt-4o-2099-12-31", "x-20240101", "plain"]) == ["gpt-4o", "x"]


@pytest.mark.parametrize(
    ("model", "hint"),
    [
        ("openai/gpt-4o", "openai"),
        ("google/gemini-2.5-pro", "google"),
        ("models/gemini-2.5-pro", None),
        ("us.anthropic.claude-3-haiku-20240307-v1:0", "aws"),
        ("amazon.nova-pro-v1:0", "aws"),
        ("gpt-4o", None),
    ],
)
def test_provider_hint(model: str, hint: str | None) -> None:
    assert provider_hint(model) == hint
