"""The cost arithmetic: disjoint usage buckets times flattened per-token prices."""

from __future__ import annotations

import math
from collections.abc import Mapping

from collector.pricing.models import INPUT_BUCKETS, TOTAL, CostResult, ModelPrices

_INF = math.inf
_INPUT = frozenset(INPUT_BUCKETS)


def _units(value: object) -> float | int:
    """Usage value as a finite number > 0, or 0 for anything odd (None, bool, str, NaN, negative, inf)."""
    cls = value.__class__
    if cls is int or cls is float:
        return value if 0 < value < _INF else 0  # type: ignore[operator,return-value]
    if cls is bool or value is None:
        return 0
    try:
        number = float(value)  # type: ignore[arg-type]  # Decimal, numpy scalars, numeric strings
    except (TypeError, ValueError, OverflowError):
        return 0
    return number if 0 < number < _INF else 0


def _apply(per_token: Mapping[str, float], usage: Mapping[str, object]) -> tuple[dict[str, float], float, float]:
    """(cost per priced key, their sum, total input tokens) in one pass over ``usage``.

    Total input tokens (input + cache_read + cache_write + input_audio) are what tier thresholds compare against.
    """
    details: dict[str, float] = {}
    total = 0.0
    total_input = 0
    for key, value in usage.items():
        cls = value.__class__
        if cls is int or cls is float:
            if not 0 < value < _INF:
                continue
        else:
            value = _units(value)
            if not value:
                continue
        if key in _INPUT:
            total_input += value
        price = per_token.get(key)
        if price is None or key == TOTAL:
            continue
        cost = value * price
        details[key] = cost
        total += cost
    return details, total, total_input


def compute_cost(prices: ModelPrices, usage: Mapping[str, object]) -> CostResult:
    """Price ``usage`` with ``prices``.

    For every key with units > 0 and a price: ``cost = units * per_token``. With tiers, when the total input
    tokens exceed a tier's threshold, the per-token prices of the highest such tier apply to all units ("cliff").
    ``total`` is the sum. Keys without a price, and the informational ``total`` usage key, get no cost entry.
    """
    details, total, total_input = _apply(prices.per_token, usage)
    tier: int | None = None
    if prices.tiers and total_input > prices.tiers[0][0]:
        for threshold, tier_prices in reversed(prices.tiers):
            if total_input > threshold:
                details, total, _ = _apply(tier_prices, usage)
                tier = threshold
                break
    details[TOTAL] = total
    return CostResult(details, total, prices.name, prices.provider, prices.source, False, tier)
