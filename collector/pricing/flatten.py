"""Build a flattened ``ModelPrices`` from exact per-million prices: fallbacks, cumulative tiers, floats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from collector.pricing.models import FALLBACK, ModelPrices

_MILLION = Decimal(1_000_000)


def with_fallbacks(prices: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Copy of ``prices`` where standard buckets without a price take their parent's price.

    cache_read, cache_write and input_audio fall back to input; reasoning and output_audio to output. This is
    how genai-prices decomposes usage: a child unit without its own price is not subtracted from its parent,
    so its tokens are billed at the parent rate.
    """
    full = dict(prices)
    for bucket, parent in FALLBACK.items():
        if bucket not in full and parent in full:
            full[bucket] = full[parent]
    return full


def _per_token(per_mtok: Mapping[str, Decimal]) -> dict[str, float]:
    return {key: float(value / _MILLION) for key, value in per_mtok.items()}


def build_prices(
    name: str,
    provider: str | None,
    source: str,
    base_mtok: Mapping[str, Decimal],
    tier_overrides_mtok: Sequence[tuple[int, Mapping[str, Decimal]]] = (),
    ignored: Mapping[str, str] | None = None,
) -> ModelPrices:
    """Flatten prices given in USD per million units.

    ``tier_overrides_mtok`` lists, per threshold, only the keys whose price changes above it; thresholds are
    applied in ascending order and accumulate (a key keeps the price of the highest threshold that listed it),
    so every tier in the result is a complete price mapping and the hot path just picks one.
    """
    base_full = with_fallbacks(base_mtok)
    tiers_mtok: list[tuple[int, dict[str, Decimal]]] = []
    merged = dict(base_mtok)
    for threshold, overrides in sorted(tier_overrides_mtok, key=lambda item: item[0]):
        merged.update(overrides)
        tiers_mtok.append((threshold, with_fallbacks(merged)))
    return ModelPrices(
        name=name,
        provider=provider,
        source=source,
        per_token=_per_token(base_full),
        tiers=tuple((threshold, _per_token(prices)) for threshold, prices in tiers_mtok),
        per_mtok=base_full,
        tiers_mtok=tuple(tiers_mtok),
        ignored=dict(ignored or {}),
        derived=frozenset(key for key in base_full if key not in base_mtok),
    )
