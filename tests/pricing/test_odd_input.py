"""``cost`` never raises: odd models, providers, usage values and timestamps."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from collector.pricing import PriceTable


@pytest.mark.parametrize("model", [None, "", 123, b"gpt-4o", ["gpt-4o"]])
def test_odd_model_is_unknown(default_table: PriceTable, model: object) -> None:
    result = default_table.cost({"input": 10}, model)  # type: ignore[arg-type]
    assert result.unknown_model and result.total_cost is None and result.cost_details == {}


@pytest.mark.parametrize("usage", [None, 42, "input=3", [("input", 3)]])
def test_odd_usage_container_is_unknown(default_table: PriceTable, usage: object) -> None:
    assert default_table.cost(usage, "gpt-4o", "openai").unknown_model  # type: ignore[arg-type]


def test_odd_usage_values_count_as_zero(default_table: PriceTable) -> None:
    usage = {
        "input": -5,
        "cache_read": math.nan,
        "cache_write": math.inf,
        "output": True,
        "reasoning": None,
        "input_audio": "12",  # numeric strings are accepted
        "output_audio": Decimal("2"),
    }
    result = default_table.cost(usage, "gpt-4o", "openai")  # type: ignore[arg-type]
    assert not result.unknown_model
    assert set(result.cost_details) == {"input_audio", "output_audio", "total"}
    assert result.total_cost == pytest.approx(12 * 2.5e-6 + 2 * 1e-5)


@pytest.mark.parametrize(
    "at", [None, datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC), date(2026, 1, 1), "yesterday", 1.7e9]
)
def test_odd_timestamps(default_table: PriceTable, at: object) -> None:
    result = default_table.cost({"input": 1000}, "gpt-4o", "openai", at=at)  # type: ignore[arg-type]
    assert result.total_cost == pytest.approx(0.0025)


def test_odd_provider_and_project(default_table: PriceTable) -> None:
    result = default_table.cost({"input": 1000}, "gpt-4o", 7, ["p"])  # type: ignore[arg-type]
    assert result.total_cost == pytest.approx(0.0025)


def test_integer_usage_stays_exact_enough(default_table: PriceTable) -> None:
    result = default_table.cost({"input": 123_456_789, "output": 987_654}, "gpt-4o", "openai")
    assert result.total_cost == pytest.approx(123_456_789 * 2.5e-6 + 987_654 * 1e-5, abs=1e-9)


def test_absurdly_long_model_name_is_unknown(default_table: PriceTable) -> None:
    assert default_table.cost({"input": 1}, "gpt-4o" + "x" * 10_000).unknown_model
