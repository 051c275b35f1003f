"""Adapter in front of the ``genai-prices`` package: model lookup and flattening of its prices.

genai-prices prices a call in 100-200 µs; this adapter only uses it to *find* a model and to read its
``ModelPrice`` once, then flattens it into a ``ModelPrices`` whose arithmetic is a few dict lookups.

Price keys → our buckets (USD per million tokens in genai-prices):

============== ========================================= ===================================
bucket         genai-prices price key                    fallback when the key is absent
============== ========================================= ===================================
input          ``input_mtok``                            (none)
cache_read     ``cache_read_mtok``                       ``input_mtok``
cache_write    ``cache_write_mtok``                      ``input_mtok``
output         ``output_mtok``                           (none)
reasoning      ``output_reasoning_mtok``                 ``output_mtok``
input_audio    ``input_audio_mtok``                      ``input_mtok``
output_audio   ``output_audio_mtok``                     ``output_mtok``
============== ========================================= ===================================

The fallbacks follow ``genai_prices.decompose.compute_leaf_values``: usage of a child unit that has no price
of its own is not subtracted from its parent (``input_tokens``/``output_tokens``), so it is billed at the
parent's rate. Other price keys (web searches, per-request fees, 1h cache writes, image/video tokens…) are
not applied and are listed in ``ModelPrices.ignored``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, StartDateConstraint, TieredPrices

from collector.pricing.flatten import build_prices
from collector.pricing.models import ModelPrices, TimeDependentPrices

#: genai-prices price key → our bucket.
PRICE_KEY_TO_BUCKET: dict[str, str] = {
    "input_mtok": "input",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "output_mtok": "output",
    "output_reasoning_mtok": "reasoning",
    "input_audio_mtok": "input_audio",
    "output_audio_mtok": "output_audio",
}


class GenaiPrices:
    """The default price source: the data bundled with genai-prices (or the snapshot ``UpdatePrices`` set).

    Attributes:
        lookups: how many model lookups were made into genai-prices (observable cache behaviour).
    """

    def __init__(self) -> None:
        self.version: str = genai_prices.__version__
        self.lookups = 0
        self._flat: dict[tuple[str, str, int], ModelPrices] = {}
        self._flat_snapshot: int | None = None

    @property
    def source(self) -> str:
        """``"genai-prices <version>"`` recorded on every price taken from this source."""
        return f"genai-prices {self.version}"

    def load(self) -> None:
        """Load the bundled data (genai-prices does it lazily on first use)."""
        self._snapshot()

    @staticmethod
    def _snapshot() -> data_snapshot.DataSnapshot:
        return data_snapshot.get_snapshot()

    def provider_id(self, provider: str | None) -> str | None:
        """The genai-prices provider id for an already-canonicalised provider, or None when it has none."""
        if not provider:
            return None
        found = data_snapshot.find_provider_by_id(self._snapshot().providers, provider)
        return found.id if found is not None else None

    def find(self, candidates: Sequence[str], provider_ids: Sequence[str | None]) -> tuple[Provider, ModelInfo] | None:
        """First (provider, model) found, trying each provider id in order with every name candidate.

        A provider id of None lets genai-prices infer the provider from the name (``gpt-`` → openai,
        ``claude`` → anthropic, ``gemini`` → google…). A provider's ``fallback_model_providers`` are honoured by
        genai-prices itself (azure → openai, google → anthropic).
        """
        snapshot = self._snapshot()
        for provider_id in provider_ids:
            for name in candidates:
                self.lookups += 1
                try:
                    return snapshot.find_provider_model(name, None, provider_id, None)
                except LookupError:
                    continue
        return None

    def prices_for(self, provider: Provider, model: ModelInfo, day: date) -> ModelPrices | TimeDependentPrices:
        """Flattened prices of ``model`` as sold by ``provider`` on ``day`` (UTC).

        ``ConditionalPrice`` lists are resolved as genai-prices does (``ModelInfo.get_prices``): the last entry
        whose constraint is active wins, the first entry if none is. Start dates are decided here from ``day``;
        time-of-day windows stay as candidates evaluated per call.
        """
        if isinstance(model.prices, ModelPrice):
            return self._flatten(provider, model, 0, model.prices)
        candidates = []
        chosen = 0
        for index in range(len(model.prices) - 1, -1, -1):
            constraint = model.prices[index].constraint
            if constraint is None:
                chosen = index
                break
            if isinstance(constraint, StartDateConstraint):
                if day >= constraint.start_date:
                    chosen = index
                    break
                continue
            candidates.append((constraint, self._flatten(provider, model, index, model.prices[index].prices)))
        default = self._flatten(provider, model, chosen, model.prices[chosen].prices)
        if not candidates:
            return default
        return TimeDependentPrices(tuple(candidates), default)

    def _flatten(self, provider: Provider, model: ModelInfo, index: int, price: ModelPrice) -> ModelPrices:
        snapshot_id = id(self._snapshot())
        if snapshot_id != self._flat_snapshot:  # UpdatePrices swapped the data: forget flattened prices
            self._flat.clear()
            self._flat_snapshot = snapshot_id
        key = (provider.id, model.id, index)
        cached = self._flat.get(key)
        if cached is None:
            cached = self._flat[key] = flatten_model_price(model.id, provider.id, self.source, price)
        return cached


def flatten_model_price(name: str, provider: str | None, source: str, price: ModelPrice) -> ModelPrices:
    """Map one genai-prices ``ModelPrice`` onto our buckets (see the module docstring), tiers included."""
    base: dict[str, Decimal] = {}
    tier_overrides: dict[int, dict[str, Decimal]] = {}
    ignored: dict[str, str] = {}
    for price_key, value in price.__dict__.items():
        if price_key.startswith("_") or value is None:
            continue
        bucket = PRICE_KEY_TO_BUCKET.get(price_key)
        if bucket is None:
            ignored[price_key] = _describe(value)
            continue
        if isinstance(value, TieredPrices):
            base[bucket] = value.base
            for tier in value.tiers:
                tier_overrides.setdefault(tier.start, {})[bucket] = tier.price
        elif isinstance(value, Decimal):
            base[bucket] = value
        else:  # pragma: no cover - genai-prices validates its data
            ignored[price_key] = _describe(value)
    return build_prices(name, provider, source, base, sorted(tier_overrides.items()), ignored)


def _describe(value: object) -> str:
    if isinstance(value, TieredPrices):
        tiers = ", ".join(f"{tier.price} above {tier.start:,}" for tier in value.tiers)
        return f"{value.base} ({tiers})"
    return str(value)
