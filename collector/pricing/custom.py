"""Selection among custom ``pricing:`` entries (they win over the defaults whenever they match)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from collector.pricing.config import PricingEntry
from collector.pricing.flatten import build_prices
from collector.pricing.models import ModelPrices
from collector.pricing.normalize import canonical_provider

SOURCE = "custom"
_MILLION = Decimal(1_000_000)


def entry_prices(entry: PricingEntry) -> ModelPrices:
    """Flatten a custom entry (its unit converted to USD per million, standard-bucket fallbacks applied)."""
    to_mtok = _MILLION if entry.unit == "per_token" else Decimal(1)
    base = {key: value * to_mtok for key, value in entry.prices.items()}
    tiers = [
        (tier.above_input_tokens, {key: value * to_mtok for key, value in tier.prices.items()}) for tier in entry.tiers
    ]
    return build_prices(entry.name, canonical_provider(entry.provider), SOURCE, base, tiers)


class CustomPrices:
    """The configured entries, pre-flattened, with Langfuse-like precedence.

    Among the entries that match a call: entries listing the call's project come before global ones, then the
    newest ``start_date`` (entries without one last), then the order in the configuration.
    """

    def __init__(self, entries: Sequence[PricingEntry]) -> None:
        self._entries = [(entry, canonical_provider(entry.provider), entry_prices(entry)) for entry in entries]
        self.project_scoped = any(entry.projects for entry in entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, names: Sequence[str], provider: str | None, project_id: str | None, day: date) -> ModelPrices | None:
        """The winning entry's prices for a call, or None.

        Args:
            names: the model name as sent followed by its normalised spellings.
            provider: the call's canonical provider (or the one implied by the model name), or None.
            project_id: the call's project, or None.
            day: the call's UTC date.
        """
        best: tuple[tuple[int, int, int], ModelPrices] | None = None
        for index, (entry, entry_provider, prices) in enumerate(self._entries):
            if entry.projects is not None and project_id not in entry.projects:
                continue
            if entry.start_date is not None and day < entry.start_date:
                continue
            if entry_provider is not None and entry_provider != provider:
                continue
            if not entry.matches_name(names):
                continue
            rank = (
                0 if entry.projects is not None else 1,
                -entry.start_date.toordinal() if entry.start_date is not None else 1,
                index,
            )
            if best is None or rank < best[0]:
                best = (rank, prices)
        return best[1] if best is not None else None
