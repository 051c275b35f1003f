"""The cost arithmetic: disjoint usage buckets times flattened per-token prices."""

from __future__ import annotations

import math
from collections.abc import Mapping

from collector.pricing.models import TOTAL, CostResult, ModelPrices

_INF = math.inf


def _units(value: object) -> float | int:
    """Usage value as a finite number ≥ 0; anything odd (None, bool, str, NaN, negative, inf) counts as 0."""
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


def total_input_tokens(usage: Mapping[str, object]) -> float:
    """input + cache_read + cache_write + input_audio: the quantity that tier thresholds compare against."""
    get = usage.get
    return _units(get("input")) + _units(get("cache_read")) + _units(get("cache_write")) + _units(get("input_audio"))


def compute_cost(prices: ModelPrices, usage: Mapping[str, object]) -> CostResult:
    """Price ``usage`` with ``prices``.

    For every key with units > 0 and a price: ``cost = units * per_token``; with tiers, the per-token prices of
    the highest tier whose threshold the total input tokens exceed. ``total`` is the sum. Keys without a price
    (and the informational ``total`` usage key) get no cost entry.
    """
    per_token = prices.per_token
    tier: int | None = None
    if prices.tiers:
        threshold_input = total_input_tokens(usage)
        for threshold, tier_prices in reversed(prices.tiers):
            if threshold_input > threshold:
                per_token = tier_prices
                tier = threshold
                break
    details: dict[str, float] = {}
    total = 0.0
    for key, value in usage.items():
        price = per_token.get(key)
        if price is None or key == TOTAL:
            continue
        cls = value.__class__
        if cls is int or cls is float:
            if not 0 < value < _INF:
                continue
        else:
            value = _units(value)
            if not value:
                continue
        cost = value * price
        details[key] = cost
        total += cost
    details[TOTAL] = total
    return CostResult(details, total, prices.name, prices.provider, prices.source, False, tier)
