"""Result types of the price table: flattened per-token prices and the cost of one model call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

#: Usage buckets the mapper produces. They are disjoint: ``input`` excludes cache reads/writes and audio,
#: ``output`` excludes reasoning and audio. ``total`` is informational and never priced.
BUCKETS: tuple[str, ...] = (
    "input",
    "cache_read",
    "cache_write",
    "output",
    "reasoning",
    "input_audio",
    "output_audio",
)

#: Buckets that count towards the tier threshold ("total input tokens").
INPUT_BUCKETS: tuple[str, ...] = ("input", "cache_read", "cache_write", "input_audio")

#: A standard bucket without a price of its own is billed at its parent's price, as genai-prices does.
FALLBACK: Mapping[str, str] = {
    "cache_read": "input",
    "cache_write": "input",
    "input_audio": "input",
    "reasoning": "output",
    "output_audio": "output",
}

#: The usage key that is never priced.
TOTAL = "total"


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """Prices of one model, flattened for the hot path.

    Attributes:
        name: the matched model id (genai-prices ``ModelInfo.id``) or the custom entry's ``name``.
        provider: the matched provider id (genai-prices id such as ``openai``, ``aws``) or None.
        source: ``"custom"`` or ``"genai-prices <version>"``.
        per_token: USD per single unit for each priced usage key (the standard buckets, plus any other key a
            custom entry prices).
        tiers: ``(threshold, per_token)`` pairs sorted by threshold. When the total input tokens
            (input + cache_read + cache_write + input_audio) are strictly above ``threshold``, that tier's
            ``per_token`` mapping (complete, not a delta) applies to all units of every key ("cliff" pricing).
            The highest threshold that is exceeded wins.
        per_mtok: the same prices as ``per_token`` in USD per million units, exact, for display.
        tiers_mtok: the tiers in USD per million units, exact, for display.
        ignored: prices of the source that are not applied to our buckets (e.g. ``web_searches_kcount``), as
            ``price key -> human-readable value``; informational only.
        derived: buckets without a price of their own that take their parent's price (see ``FALLBACK``).
    """

    name: str
    provider: str | None
    source: str
    per_token: Mapping[str, float]
    tiers: tuple[tuple[int, Mapping[str, float]], ...] = ()
    per_mtok: Mapping[str, Decimal] = field(default_factory=dict)
    tiers_mtok: tuple[tuple[int, Mapping[str, Decimal]], ...] = ()
    ignored: Mapping[str, str] = field(default_factory=dict)
    derived: frozenset[str] = frozenset()


@dataclass(slots=True)
class CostResult:
    """The cost of one model call.

    Attributes:
        cost_details: USD per usage key that had units and a price, plus ``total`` (their sum). Empty when the
            model is unknown.
        total_cost: the sum, or None when the model is unknown (never a guess).
        matched_model: ``ModelPrices.name`` of the price used, or None.
        provider: ``ModelPrices.provider`` of the price used, or None.
        source: ``ModelPrices.source`` of the price used, or None.
        unknown_model: True when no price matched.
        tier: the tier threshold that applied (total input tokens above it), or None for the base prices.
    """

    cost_details: dict[str, float]
    total_cost: float | None
    matched_model: str | None = None
    provider: str | None = None
    source: str | None = None
    unknown_model: bool = False
    tier: int | None = None


def unknown_cost() -> CostResult:
    """A fresh result for a model without a price."""
    return CostResult({}, None, None, None, None, True, None)


class TimeOfDay(Protocol):
    """A constraint evaluated per call, such as genai-prices' ``TimeOfDateConstraint`` (off-peak windows)."""

    def active(self, request_timestamp: datetime) -> bool: ...


@dataclass(frozen=True, slots=True)
class TimeDependentPrices:
    """Prices that depend on the time of day (e.g. DeepSeek off-peak): the first active candidate wins.

    Built for one UTC date (start-date changes are already resolved); ``select`` runs per call.
    """

    candidates: tuple[tuple[TimeOfDay, ModelPrices], ...]
    default: ModelPrices

    def select(self, at: datetime | None) -> ModelPrices:
        """The prices in force at ``at`` (None: now; naive: UTC)."""
        when = at if at is not None else datetime.now(UTC)
        for constraint, prices in self.candidates:
            if constraint.active(when):
                return prices
        return self.default
