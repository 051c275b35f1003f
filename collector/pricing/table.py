"""``PriceTable``: resolve a (model, provider, project, date) to flattened prices once, then price calls fast."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import _CacheInfo, lru_cache

from collector.pricing.config import PricingEntry
from collector.pricing.cost import compute_cost
from collector.pricing.custom import CustomPrices
from collector.pricing.models import CostResult, ModelPrices, TimeDependentPrices, unknown_cost
from collector.pricing.normalize import canonical_provider, name_candidates, provider_hint, undated_candidates

log = logging.getLogger(__name__)

_Resolved = ModelPrices | TimeDependentPrices | None

#: Longer "model names" are garbage, not models: unknown without running any matcher on them.
MAX_MODEL_NAME = 512


def _as_datetime(at: object) -> datetime | None:
    if isinstance(at, datetime):
        return at
    if isinstance(at, date):
        return datetime.combine(at, time.min, tzinfo=UTC)
    return None


_DAY_US = 86_400_000_000
_EPOCH_DAY = date(1970, 1, 1)
_DAYS_KEPT = 4096  # days since the epoch -> date, for calls timed in µs (see PriceTable.cost)


def _utc_day(at: datetime | None) -> date:
    if at is None:
        return datetime.now(UTC).date()
    tz = at.tzinfo
    if tz is None or tz is UTC:  # naive timestamps are UTC, as in genai-prices
        return at.date()
    return at.astimezone(UTC).date()


class PriceTable:
    """Model prices: custom entries first, then the genai-prices defaults; lookups cached, arithmetic cheap.

    Matching, in order:

    1. custom entries (``PricingEntry``) that apply to the project and date and whose ``match`` regex fully
       matches the model name as sent or one of its normalised spellings; project-specific entries first,
       then the newest ``start_date``;
    2. genai-prices, trying the call's provider (``aws.bedrock`` → ``aws``, ``gcp.vertex_ai`` → ``google``…),
       then the provider the name implies (``openai/…``, Bedrock ids → ``aws``), then the provider
       genai-prices infers from the name alone (``gpt-*``, ``claude-*``, ``gemini-*``…), each with the name
       candidates of ``normalize.name_candidates``; only if none matches, the same again with a trailing date
       removed (``gpt-4o-2099-01-01`` → ``gpt-4o``).

    Each distinct (model, provider, project, UTC date) is resolved once and kept in an LRU cache of
    ``cache_size`` keys (misses too). ``cost`` never raises: anything it cannot price is ``unknown_model``.
    """

    def __init__(
        self, overrides: Sequence[PricingEntry] = (), *, use_default: bool = True, cache_size: int = 4096
    ) -> None:
        self._custom = CustomPrices(overrides)
        if use_default:
            from collector.pricing.genai import GenaiPrices

            self.default: GenaiPrices | None = GenaiPrices()
        else:
            self.default = None
        self._scoped = self._custom.project_scoped
        self._cached = lru_cache(maxsize=cache_size)(self._resolve_uncached)
        self._days: dict[int, date] = {}

    # -- public API ------------------------------------------------------------------------------------------

    def resolve(
        self, model: str, provider: str | None = None, project_id: str | None = None, at: datetime | None = None
    ) -> ModelPrices | None:
        """The prices that apply to a call of ``model`` (as sent) at ``at`` (None: now; naive: UTC), or None."""
        at = _as_datetime(at)
        found = self._lookup(model, provider, project_id, _utc_day(at))
        if found is None or found.__class__ is ModelPrices:
            return found  # type: ignore[return-value]
        return found.select(at)  # type: ignore[union-attr]

    def cost(
        self,
        usage: Mapping[str, int | float],
        model: str | None,
        provider: str | None = None,
        project_id: str | None = None,
        at: datetime | float | None = None,
    ) -> CostResult:
        """Price one call's disjoint usage buckets. Unknown model (or odd input) → ``unknown_model=True``.

        ``at`` is when the call was made: a datetime (naive: UTC), a number of µs since the epoch
        (as stored rows carry it: no datetime is made unless the prices change within a day), or
        None for now.
        """
        try:
            timed_in_us = at.__class__ is int or at.__class__ is float
            if timed_in_us:
                day = self._day(int(at))  # type: ignore[arg-type]
            else:
                if at is not None and at.__class__ is not datetime:
                    at = _as_datetime(at)
                day = _utc_day(at)  # type: ignore[arg-type]
            if model.__class__ is str and (provider is None or provider.__class__ is str) and not self._scoped:
                found = self._cached(model, provider, None, day) if model else None  # the common case
            else:
                found = self._lookup(model, provider, project_id, day)
            if found is None:
                return unknown_cost()
            if found.__class__ is not ModelPrices:
                if timed_in_us:
                    at = datetime.fromtimestamp(at / 1e6, UTC)  # type: ignore[operator]
                found = found.select(at)  # type: ignore[union-attr,arg-type]
            return compute_cost(found, usage)  # type: ignore[arg-type]
        except Exception:  # never raise on odd input (e.g. usage that is not a mapping)
            log.debug("pricing: cannot price usage %r of model %r", usage, model, exc_info=True)
            return unknown_cost()

    def _day(self, at_us: int) -> date:
        """The UTC day of ``at_us`` µs since the epoch (kept: rows of a batch share a few days)."""
        number = at_us // _DAY_US
        day = self._days.get(number)
        if day is None:
            if len(self._days) >= _DAYS_KEPT:
                self._days.clear()
            day = self._days[number] = _EPOCH_DAY + timedelta(days=number)
        return day

    def warm(self) -> None:
        """Load the genai-prices data now (~0.4 s, ~20 MB) instead of on the first call; call at startup."""
        if self.default is not None:
            self.default.load()

    def cache_info(self) -> _CacheInfo:
        """Hits, misses, maxsize and current size of the resolution cache."""
        return self._cached.cache_info()

    def cache_clear(self) -> None:
        """Forget every resolution (e.g. after genai-prices' ``UpdatePrices`` loaded new data)."""
        self._cached.cache_clear()

    # -- internals -------------------------------------------------------------------------------------------

    def _lookup(self, model: object, provider: object, project_id: object, day: date) -> _Resolved:
        if model.__class__ is not str or not model:
            return None
        if provider is not None and provider.__class__ is not str:
            provider = None
        if project_id is not None and (project_id.__class__ is not str or not self._custom.project_scoped):
            project_id = None  # only project-scoped entries make the project part of the key
        return self._cached(model, provider, project_id, day)

    def _resolve_uncached(self, model: str, provider: str | None, project_id: str | None, day: date) -> _Resolved:
        try:
            return self._resolve(model, provider, project_id, day)
        except Exception:
            log.warning("pricing: cannot resolve model %r (provider %r)", model, provider, exc_info=True)
            return None

    def _resolve(self, model: str, provider: str | None, project_id: str | None, day: date) -> _Resolved:
        if len(model) > MAX_MODEL_NAME:
            return None
        canonical = canonical_provider(provider)
        hint = provider_hint(model)
        candidates = name_candidates(model)
        if len(self._custom):
            names = [model.strip(), *candidates]
            prices = self._custom.find(names, canonical or hint, project_id, day)
            if prices is not None:
                return prices
        if self.default is None:
            return None
        order: list[str | None] = []
        for name in (canonical, hint):
            provider_id = self.default.provider_id(name)
            if provider_id is not None and provider_id not in order:
                order.append(provider_id)
        order.append(None)
        found = self.default.find(candidates, order)
        if found is None:
            undated = undated_candidates(candidates)
            found = self.default.find(undated, order) if undated else None
        if found is None:
            return None
        return self.default.prices_for(found[0], found[1], day)
