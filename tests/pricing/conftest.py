"""Shared fixtures: one default price table (loading the genai-prices data takes ~0.4 s)."""

from __future__ import annotations

import pytest

from collector.pricing import PriceTable


@pytest.fixture(scope="session")
def default_table() -> PriceTable:
    return PriceTable()
