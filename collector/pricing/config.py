"""Custom price entries: the schema of the ``pricing:`` list in otel-config.yaml.

Example::

    pricing:
      - name: my-finetune
        match: "ft:gpt-4o-mini:acme:.*"
        unit: per_1m_tokens
        prices: {input: 0.30, cache_read: 0.15, output: 1.20}
      - name: gemini-2.5-pro-discount
        match: "gemini-2\\.5-pro.*"
        provider: gcp.vertex_ai
        unit: per_1m_tokens
        prices: {input: 1.0, output: 8.0}
        tiers:
          - above_input_tokens: 200000
            prices: {input: 2.0, output: 12.0}
        projects: [team-a]
        start_date: 2026-01-01
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from collector.pricing.models import TOTAL

UNITS = ("per_token", "per_1m_tokens")


def _check_prices(prices: Mapping[str, Decimal]) -> None:
    for key, value in prices.items():
        if not key:
            raise ValueError("price keys must be non-empty usage key names")
        if key == TOTAL:
            raise ValueError("'total' is informational and cannot be priced; price the buckets instead")
        if value < 0:
            raise ValueError(f"price for {key!r} must be >= 0, got {value}")


class PricingTier(BaseModel):
    """A price tier: when total input tokens (input + cache_read + cache_write + input_audio) are strictly above
    ``above_input_tokens``, these prices apply to *all* units of the keys they list ("cliff" pricing, as the
    providers bill it). Keys not listed keep the entry's base price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    above_input_tokens: int = Field(ge=0)
    prices: dict[str, Decimal] = Field(min_length=1)

    @field_validator("prices")
    @classmethod
    def _valid_prices(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        _check_prices(value)
        return value


class PricingEntry(BaseModel):
    """One custom model price. Custom entries win over the genai-prices defaults whenever they match.

    Attributes:
        name: identifier of the entry, reported as the matched model. Required.
        match: Python regular expression, compiled with ``re.IGNORECASE`` and applied with ``re.fullmatch`` to
            the model name as sent by the client and to its normalised spellings (lower-cased, ``provider/``
            prefixes removed, Bedrock region/vendor prefix and ``-v1:0`` suffix removed). Defaults to the
            entry's ``name`` taken literally (so ``name: gpt-4o`` matches ``gpt-4o`` and ``openai/gpt-4o``).
        provider: when set, the entry only matches calls whose provider (or, without one, the provider implied
            by the model name) is the same after normalisation (``aws.bedrock`` == ``bedrock`` == ``aws``).
        unit: ``per_token`` (USD per single unit) or ``per_1m_tokens`` (USD per million units). Required; it
            applies to every key in ``prices`` and ``tiers``.
        prices: usage key → price ≥ 0. The standard buckets are ``input``, ``cache_read``, ``cache_write``,
            ``output``, ``reasoning``, ``input_audio`` and ``output_audio``; a standard bucket left out falls back
            like the defaults do (cache_read, cache_write, input_audio → input; reasoning, output_audio → output).
            Set it to 0 to make it free. Any other key (e.g. ``web_search_queries``) is priced only if listed.
        tiers: optional cliff tiers on total input tokens, see ``PricingTier``.
        projects: project ids the entry applies to; absent means all projects. Project-specific entries are
            preferred over global ones.
        start_date: the entry applies to calls starting on or after this date (UTC); among matching entries the
            newest start date wins (entries without one come last).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    match: str | None = None
    provider: str | None = None
    unit: Literal["per_token", "per_1m_tokens"]
    prices: dict[str, Decimal] = Field(min_length=1)
    tiers: list[PricingTier] = Field(default_factory=list)
    projects: list[str] | None = None
    start_date: date | None = None

    _pattern: re.Pattern[str] = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _unit_present(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "unit" not in data:
            raise ValueError(f"'unit' is required: one of {', '.join(repr(u) for u in UNITS)}")
        if isinstance(data, Mapping) and isinstance(data.get("unit"), str) and data["unit"] not in UNITS:
            raise ValueError(f"'unit' must be one of {', '.join(repr(u) for u in UNITS)}, got {data['unit']!r}")
        return data

    @field_validator("prices")
    @classmethod
    def _valid_prices(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        _check_prices(value)
        return value

    @field_validator("tiers")
    @classmethod
    def _unique_tiers(cls, value: list[PricingTier]) -> list[PricingTier]:
        thresholds = [tier.above_input_tokens for tier in value]
        if len(set(thresholds)) != len(thresholds):
            raise ValueError("tiers must have distinct 'above_input_tokens' values")
        return sorted(value, key=lambda tier: tier.above_input_tokens)

    @model_validator(mode="after")
    def _compile(self) -> PricingEntry:
        pattern = self.match if self.match is not None else re.escape(self.name)
        try:
            self._pattern = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(
                f"pricing entry {self.name!r}: 'match' is not a valid Python regex ({exc}): {pattern!r}"
            ) from exc
        return self

    def matches_name(self, names: Iterable[str]) -> bool:
        """True when ``match`` fully matches any of ``names`` (case-insensitively)."""
        fullmatch = self._pattern.fullmatch
        return any(fullmatch(name) for name in names)

    @property
    def scale(self) -> Decimal:
        """Divisor from the configured unit to USD per single unit."""
        return Decimal(1) if self.unit == "per_token" else Decimal(1_000_000)


def parse_pricing_entries(raw: object) -> list[PricingEntry]:
    """Validate the value of a top-level ``pricing:`` key (a list of mappings, or None for none).

    Raises:
        ValueError: with a message naming the offending entry's position.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError(f"'pricing' must be a list of entries, got {type(raw).__name__}")
    entries: list[PricingEntry] = []
    for index, item in enumerate(raw):
        try:
            entries.append(PricingEntry.model_validate(item))
        except ValidationError as exc:
            label = item.get("name") if isinstance(item, Mapping) else None
            where = f"pricing[{index}]" + (f" ({label!r})" if label else "")
            raise ValueError(f"{where}: {exc}") from exc
    return entries


__all__ = ["UNITS", "PricingEntry", "PricingTier", "parse_pricing_entries"]
