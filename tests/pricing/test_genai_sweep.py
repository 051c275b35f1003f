"""Every token-priced model of the main providers: our flattened prices reproduce genai-prices' own arithmetic.

Usage is chosen to exercise every bucket and, with a second usage, every tier. Models whose price includes a
per-request fee (``requests_kcount``, not one of our buckets) are skipped: genai-prices adds it to every call.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest
from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot

from collector.pricing import PriceTable
from collector.pricing.cost import compute_cost
from collector.pricing.genai import GenaiPrices
from collector.pricing.models import TimeDependentPrices

PROVIDERS = ("openai", "anthropic", "google", "aws", "azure", "x-ai", "mistral", "deepseek", "groq")
AT = datetime(2026, 9, 1, 20, tzinfo=UTC)
USAGES = [
    {"input": 1234, "cache_read": 2345, "cache_write": 345, "output": 456, "reasoning": 567, "input_audio": 67},
    {"input": 250_000, "cache_read": 30_000, "cache_write": 1000, "output": 4000, "reasoning": 5000, "output_audio": 9},
]


def _genai_usage(u: dict[str, int]) -> Usage:
    return Usage(
        input_tokens=u.get("input", 0) + u.get("cache_read", 0) + u.get("cache_write", 0) + u.get("input_audio", 0),
        cache_read_tokens=u.get("cache_read", 0),
        cache_write_tokens=u.get("cache_write", 0),
        input_audio_tokens=u.get("input_audio", 0),
        cache_audio_read_tokens=0,
        output_tokens=u.get("output", 0) + u.get("reasoning", 0) + u.get("output_audio", 0),
        output_reasoning_tokens=u.get("reasoning", 0),
        output_audio_tokens=u.get("output_audio", 0),
    )


@pytest.mark.parametrize("at", [AT, datetime(2025, 3, 1, 3, tzinfo=UTC)], ids=["2026-09-01T20Z", "2025-03-01T03Z"])
def test_flattened_prices_match_model_calc_price(at: datetime) -> None:
    source = GenaiPrices()
    checked = 0
    mismatches = []
    for provider in get_snapshot().providers:
        if provider.id not in PROVIDERS:
            continue
        for model in provider.models:
            price = model.get_prices(at)
            if price.requests_kcount is not None or price.input_mtok is None:
                continue  # per-request fees, or not token-priced (audio hours, characters, pages)
            found = source.prices_for(provider, model, at.date())
            prices = found.select(at) if isinstance(found, TimeDependentPrices) else found
            for usage in USAGES:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    calc = model.calc_price(_genai_usage(usage), provider, genai_request_timestamp=at)
                ours = compute_cost(prices, usage).total_cost
                if ours is None or abs(ours - float(calc.total_price)) > 1e-9:
                    mismatches.append((provider.id, model.id, usage, ours, calc.total_price))
            checked += 1
    assert checked > 300
    assert not mismatches, mismatches[:5]


def test_model_ids_resolve_to_themselves() -> None:
    """Where genai-prices itself finds a model by its id, so do we (same model, same provider)."""
    table = PriceTable()
    snapshot = get_snapshot()
    checked = 0
    for provider in snapshot.providers:
        if provider.id not in PROVIDERS:
            continue
        for model in provider.models:
            try:
                expected_provider, expected = snapshot.find_provider_model(model.id, None, provider.id, None)
            except LookupError:
                continue  # some ids do not match their own match clause (e.g. aws regional.amazon.*)
            prices = table.resolve(model.id, provider.id, at=AT)
            assert prices is not None, model.id
            assert (prices.name, prices.provider) == (expected.id, expected_provider.id)
            checked += 1
    assert checked > 300
