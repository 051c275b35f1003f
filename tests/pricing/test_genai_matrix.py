"""Our cached arithmetic against genai-prices' own ``calc_price`` on the same usage (real data, no mocks).

The mapper hands us disjoint buckets; genai-prices wants totals (``input_tokens`` includes cache reads/writes
and audio, ``output_tokens`` includes reasoning and audio). Both must give the same total to 1e-9 USD, and
each bucket must be priced at the expected per-token rate (rates below are genai-prices 0.2.3 data, USD/MTok).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from genai_prices import Usage, calc_price

from collector.pricing import PriceTable

AFTER_O3_CUT = datetime(2025, 7, 1, 12, tzinfo=UTC)
BEFORE_O3_CUT = datetime(2025, 5, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 9, 1, 20, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    provider: str | None
    genai_ref: str
    genai_provider: str
    usage: dict[str, int]
    rates_mtok: dict[str, float]  # expected USD per 1M tokens per bucket (tier included)
    matched: tuple[str, str]  # (model id, provider id)
    at: datetime = NOW
    tier: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


CASES = [
    Case(
        "openai-gpt-4o-cache",
        "gpt-4o",
        "openai",
        "gpt-4o",
        "openai",
        {"input": 100, "cache_read": 900, "output": 100},
        {"input": 2.5, "cache_read": 1.25, "output": 10},
        ("gpt-4o", "openai"),
    ),
    Case(
        "openai-gpt-4o-cache-write-falls-back-to-input",
        "gpt-4o-2024-08-06",
        "openai.chat",
        "gpt-4o-2024-08-06",
        "openai",
        {"input": 1200, "cache_read": 300, "cache_write": 500, "output": 40},
        {"input": 2.5, "cache_read": 1.25, "cache_write": 2.5, "output": 10},
        ("gpt-4o", "openai"),
    ),
    Case(
        "openai-o3-reasoning-new-price",
        "o3",
        "openai.responses",
        "o3",
        "openai",
        {"input": 5000, "cache_read": 2000, "output": 300, "reasoning": 4000},
        {"input": 2, "cache_read": 0.5, "output": 8, "reasoning": 8},
        ("o3", "openai"),
        at=AFTER_O3_CUT,
    ),
    Case(
        "openai-o3-reasoning-old-price",
        "o3-2025-04-16",
        "openai",
        "o3-2025-04-16",
        "openai",
        {"input": 5000, "cache_read": 2000, "output": 300, "reasoning": 4000},
        {"input": 10, "cache_read": 0.5, "output": 40, "reasoning": 40},
        ("o3", "openai"),
        at=BEFORE_O3_CUT,
    ),
    Case(
        "openai-realtime-audio",
        "gpt-4o-realtime-preview",
        "openai",
        "gpt-4o-realtime-preview",
        "openai",
        {"input": 300, "input_audio": 2000, "cache_read": 100, "output": 50, "output_audio": 700},
        {"input": 5, "input_audio": 40, "cache_read": 2.5, "output": 20, "output_audio": 80},
        ("gpt-4o-realtime-preview", "openai"),
    ),
    Case(
        "openai-audio-preview-audio-at-text-rate",
        "gpt-4o-audio-preview",
        None,
        "gpt-4o-audio-preview",
        "openai",
        {"input": 300, "input_audio": 2000, "output": 50, "output_audio": 700},
        {"input": 2.5, "input_audio": 2.5, "output": 10, "output_audio": 10},
        ("gpt-4o-audio-preview", "openai"),
    ),
    Case(
        "anthropic-sonnet-cache-read-write",
        "claude-sonnet-4-5-20250929",
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "anthropic",
        {"input": 1500, "cache_read": 40_000, "cache_write": 8000, "output": 900},
        {"input": 3, "cache_read": 0.3, "cache_write": 3.75, "output": 15},
        ("claude-sonnet-4-5", "anthropic"),
    ),
    Case(
        "anthropic-sonnet-long-context-tier",
        "claude-sonnet-4-5",
        "anthropic.messages",
        "claude-sonnet-4-5",
        "anthropic",
        {"input": 20_000, "cache_read": 150_000, "cache_write": 40_000, "output": 2000},
        {"input": 6, "cache_read": 0.6, "cache_write": 7.5, "output": 22.5},
        ("claude-sonnet-4-5", "anthropic"),
        tier=200_000,
    ),
    Case(
        "anthropic-haiku-cache",
        "claude-haiku-4-5",
        "Anthropic",
        "claude-haiku-4-5",
        "anthropic",
        {"input": 700, "cache_read": 12_000, "cache_write": 3000, "output": 250},
        {"input": 1, "cache_read": 0.1, "cache_write": 1.25, "output": 5},
        ("claude-haiku-4-5", "anthropic"),
    ),
    Case(
        "gemini-2.5-pro-base",
        "gemini-2.5-pro",
        "gcp.gemini",
        "gemini-2.5-pro",
        "google",
        {"input": 150_000, "cache_read": 50_000, "output": 1000, "reasoning": 3000},
        {"input": 1.25, "cache_read": 0.125, "output": 10, "reasoning": 10},
        ("gemini-2.5-pro", "google"),
    ),
    Case(
        "gemini-2.5-pro-over-200k-tier",
        "models/gemini-2.5-pro",
        "gcp.vertex_ai",
        "gemini-2.5-pro",
        "google",
        {"input": 150_000, "cache_read": 50_001, "output": 1000, "reasoning": 3000},
        {"input": 2.5, "cache_read": 0.25, "output": 15, "reasoning": 15},
        ("gemini-2.5-pro", "google"),
        tier=200_000,
    ),
    Case(
        "gemini-2.5-flash-input-audio",
        "gemini-2.5-flash",
        "gemini",
        "gemini-2.5-flash",
        "google",
        {"input": 4000, "input_audio": 6000, "cache_read": 1000, "output": 500, "reasoning": 800},
        {"input": 0.3, "input_audio": 1, "cache_read": 0.03, "output": 2.5, "reasoning": 2.5},
        ("gemini-2.5-flash", "google"),
    ),
    Case(
        "bedrock-claude-3-5-sonnet-us-cache",
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "aws.bedrock",
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "aws",
        {"input": 2500, "cache_read": 10_000, "cache_write": 2000, "output": 600},
        {"input": 3, "cache_read": 0.3, "cache_write": 3.75, "output": 15},
        ("regional.anthropic.claude-3-5-sonnet-20241022-v2:0", "aws"),
    ),
    Case(
        "bedrock-us-claude-sonnet-4-5-v1-cache-reasoning",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "aws.bedrock",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "aws",
        {"input": 3000, "cache_read": 20_000, "cache_write": 4000, "output": 500, "reasoning": 1500},
        {"input": 3.3, "cache_read": 0.33, "cache_write": 4.125, "output": 16.5, "reasoning": 16.5},
        ("regional.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws"),
    ),
    Case(
        "bedrock-claude-3-haiku-no-cache-prices",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "aws.bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "aws",
        {"input": 2500, "cache_read": 10_000, "cache_write": 2000, "output": 600},
        {"input": 0.25, "cache_read": 0.25, "cache_write": 0.25, "output": 1.25},
        ("regional.anthropic.claude-3-haiku-20240307-v1:0", "aws"),
    ),
    Case(
        "bedrock-eu-sonnet-4-5-regional-premium",
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "bedrock",
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "aws",
        {"input": 1000, "cache_read": 5000, "cache_write": 1000, "output": 100},
        {"input": 3.3, "cache_read": 0.33, "cache_write": 4.125, "output": 16.5},
        ("regional.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws"),
    ),
    Case(
        "azure-gpt-4o-mini",
        "gpt-4o-mini",
        "az.ai.openai",
        "gpt-4o-mini",
        "azure",
        {"input": 10_000, "cache_read": 5000, "output": 700},
        {"input": 0.15, "cache_read": 0.075, "output": 0.6},
        ("gpt-4o-mini", "azure"),
    ),
    Case(
        "xai-grok-3",
        "grok-3",
        "x_ai",
        "grok-3",
        "x-ai",
        {"input": 1000, "cache_read": 1000, "output": 1000},
        {"input": 3, "cache_read": 0.75, "output": 15},
        ("grok-3", "x-ai"),
    ),
    Case(
        "deepseek-peak-window",
        "deepseek-chat",
        "deepseek",
        "deepseek-chat",
        "deepseek",
        {"input": 1000, "cache_read": 1000, "output": 1000},
        {"input": 0.27, "cache_read": 0.07, "output": 1.1},
        ("deepseek-chat", "deepseek"),
        at=datetime(2026, 9, 1, 10, tzinfo=UTC),
    ),
    Case(
        "deepseek-off-peak",
        "deepseek-chat",
        "deepseek",
        "deepseek-chat",
        "deepseek",
        {"input": 1000, "cache_read": 1000, "output": 1000},
        {"input": 0.135, "cache_read": 0.035, "output": 0.55},
        ("deepseek-chat", "deepseek"),
        at=datetime(2026, 9, 1, 20, tzinfo=UTC),
    ),
]


def genai_total(case: Case) -> float:
    """genai-prices' own price for the same call, with its totals-based usage."""
    u = case.usage
    usage = Usage(
        input_tokens=u.get("input", 0) + u.get("cache_read", 0) + u.get("cache_write", 0) + u.get("input_audio", 0),
        cache_read_tokens=u.get("cache_read", 0),
        cache_write_tokens=u.get("cache_write", 0),
        input_audio_tokens=u.get("input_audio", 0),
        # Our buckets carry no audio cache reads. genai-prices insists on an explicit value when the model prices
        # them and both cache_read and input_audio are reported (otherwise it raises "Missing usage").
        cache_audio_read_tokens=0,
        output_tokens=u.get("output", 0) + u.get("reasoning", 0) + u.get("output_audio", 0),
        output_reasoning_tokens=u.get("reasoning", 0),
        output_audio_tokens=u.get("output_audio", 0),
    )
    result = calc_price(usage, case.genai_ref, provider_id=case.genai_provider, genai_request_timestamp=case.at)
    return float(result.total_price)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_total_matches_genai_prices(default_table: PriceTable, case: Case) -> None:
    result = default_table.cost(case.usage, case.model, case.provider, at=case.at)
    assert not result.unknown_model
    assert result.total_cost is not None
    assert abs(result.total_cost - genai_total(case)) < 1e-9
    assert (result.matched_model, result.provider) == case.matched
    assert result.source is not None and result.source.startswith("genai-prices ")
    assert result.tier == case.tier


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_bucket_priced_at_its_rate(default_table: PriceTable, case: Case) -> None:
    result = default_table.cost(case.usage, case.model, case.provider, at=case.at)
    assert set(result.cost_details) == {*case.usage, "total"}
    for bucket, units in case.usage.items():
        assert result.cost_details[bucket] == pytest.approx(units * case.rates_mtok[bucket] / 1e6, rel=1e-12)
    assert result.cost_details["total"] == pytest.approx(sum(v for k, v in result.cost_details.items() if k != "total"))
    assert result.cost_details["total"] == result.total_cost


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_call_timed_in_microseconds_is_priced_as_at_that_moment(default_table: PriceTable, case: Case) -> None:
    # Workers pass a row's start time (µs since the epoch) rather than make a datetime for every
    # call; the day decides the cache key, the moment a time-of-day price (DeepSeek's off-peak).
    at = case.at or NOW
    micros = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    by_datetime = default_table.cost(case.usage, case.model, case.provider, at=at)
    assert default_table.cost(case.usage, case.model, case.provider, at=micros) == by_datetime
    assert default_table.cost(case.usage, case.model, case.provider, at=float(micros)) == by_datetime


def test_anchor_gpt_4o_1000_input_900_cached_100_output(default_table: PriceTable) -> None:
    # anchors.md §1a: 1000 input (900 of them cache reads) + 100 output = $0.002375
    result = default_table.cost({"input": 100, "cache_read": 900, "output": 100, "total": 1100}, "gpt-4o", "openai")
    assert result.total_cost == pytest.approx(0.002375, abs=1e-12)
    assert "total" in result.cost_details and result.cost_details["total"] == result.total_cost


def test_tier_is_a_cliff_on_total_input(default_table: PriceTable) -> None:
    at_threshold = default_table.cost({"input": 200_000, "output": 1}, "gemini-2.5-pro", "google", at=NOW)
    above = default_table.cost({"input": 199_000, "cache_read": 1000, "input_audio": 1, "output": 1}, "gemini-2.5-pro")
    assert at_threshold.tier is None and at_threshold.cost_details["input"] == pytest.approx(200_000 * 1.25e-6)
    assert above.tier == 200_000 and above.cost_details["input"] == pytest.approx(199_000 * 2.5e-6)


def test_total_usage_key_is_never_priced(default_table: PriceTable) -> None:
    result = default_table.cost({"total": 10_000}, "gpt-4o", "openai")
    assert result.cost_details == {"total": 0.0} and result.total_cost == 0.0


def test_other_keys_are_not_priced_by_default(default_table: PriceTable) -> None:
    # gpt-4o has a web-search price in genai-prices, but our default table only prices token buckets.
    result = default_table.cost({"input": 10, "web_search_queries": 3}, "gpt-4o", "openai")
    assert set(result.cost_details) == {"input", "total"}
    prices = default_table.resolve("gpt-4o", "openai")
    assert prices is not None and "web_searches_kcount" in prices.ignored
