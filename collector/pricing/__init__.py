"""Model prices and cost: a genai-prices default table, custom ``pricing:`` entries, a cached cost calculator.

>>> table = PriceTable()
>>> result = table.cost({"input": 1000, "cache_read": 900, "output": 100}, "gpt-4o", "openai")
"""

from collector.pricing.config import PricingEntry, PricingTier, parse_pricing_entries
from collector.pricing.models import BUCKETS, CostResult, ModelPrices
from collector.pricing.normalize import canonical_provider, name_candidates
from collector.pricing.table import PriceTable

__all__ = [
    "BUCKETS",
    "CostResult",
    "ModelPrices",
    "PriceTable",
    "PricingEntry",
    "PricingTier",
    "canonical_provider",
    "name_candidates",
    "parse_pricing_entries",
]
