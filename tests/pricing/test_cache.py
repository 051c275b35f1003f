"""Resolution is cached: the second call for the same key does not go back to genai-prices."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from collector.pricing import PriceTable

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)


def counting(table: PriceTable) -> list[int]:
    """Wrap the genai-prices lookup of ``table`` with a call counter (the real lookup still runs)."""
    assert table.default is not None
    calls = [0]
    real: Callable[..., Any] = table.default.find

    def find(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    table.default.find = find  # type: ignore[method-assign]
    return calls


def test_second_resolve_does_not_call_genai_prices() -> None:
    table = PriceTable()
    calls = counting(table)
    first = table.resolve("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "aws.bedrock", at=AT)
    assert calls[0] >= 1
    lookups = table.default.lookups
    second = table.resolve("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "aws.bedrock", at=AT)
    result = table.cost({"input": 10}, "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "aws.bedrock", at=AT)
    assert second is first
    assert calls[0] == 1 and table.default.lookups == lookups
    assert result.matched_model == first.name
    info = table.cache_info()
    assert (info.hits, info.misses) == (2, 1)


def test_misses_are_cached_too() -> None:
    table = PriceTable()
    calls = counting(table)
    assert table.cost({"input": 10}, "no-such-model-2025-01-01", "openai", at=AT).unknown_model
    assert calls[0] == 2  # one pass with the names as sent, one with the date suffix stripped
    lookups = table.default.lookups
    for _ in range(3):
        assert table.cost({"input": 10}, "no-such-model-2025-01-01", "openai", at=AT).unknown_model
    assert calls[0] == 2 and table.default.lookups == lookups
    assert (table.cache_info().hits, table.cache_info().misses) == (3, 1)


def test_key_includes_provider_and_day_but_not_time_of_day() -> None:
    table = PriceTable()
    table.resolve("gpt-4o", "openai", at=datetime(2026, 6, 1, 1, tzinfo=UTC))
    table.resolve("gpt-4o", "openai", at=datetime(2026, 6, 1, 23, tzinfo=UTC))
    assert table.cache_info().misses == 1
    table.resolve("gpt-4o", "openai", at=datetime(2026, 6, 2, 1, tzinfo=UTC))
    table.resolve("gpt-4o", "azure", at=datetime(2026, 6, 2, 1, tzinfo=UTC))
    assert table.cache_info().misses == 3


def test_a_call_timed_in_microseconds_keys_the_cache_by_its_utc_day() -> None:
    table = PriceTable()
    midnight = int(datetime(2026, 6, 2, tzinfo=UTC).timestamp()) * 1_000_000
    for at in (midnight - 3_600_000_000, midnight - 1, midnight, midnight + 3_600_000_000):
        assert not table.cost({"input": 10}, "gpt-4o", "openai", at=at).unknown_model
    assert (table.cache_info().hits, table.cache_info().misses) == (2, 2)  # 1 June twice, 2 June twice
    assert table.cost({"input": 10}, "gpt-4o", "openai", at=10**30).unknown_model  # past any date: no price, no raise


def test_project_only_in_key_when_entries_are_project_scoped() -> None:
    table = PriceTable()
    table.resolve("gpt-4o", "openai", "p1", at=AT)
    table.resolve("gpt-4o", "openai", "p2", at=AT)
    assert table.cache_info().misses == 1


def test_cache_is_bounded() -> None:
    table = PriceTable(cache_size=2)
    for model in ("gpt-4o", "gpt-4o-mini", "o3", "claude-haiku-4-5"):
        table.resolve(model, at=AT)
    assert table.cache_info().currsize == 2
    table.cache_clear()
    assert table.cache_info().currsize == 0


def test_warm_loads_data_without_resolving() -> None:
    table = PriceTable()
    table.warm()
    assert table.cache_info().currsize == 0 and table.default.lookups == 0
    PriceTable(use_default=False).warm()  # no default source: nothing to load
