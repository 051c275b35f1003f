"""Custom ``pricing:`` entries: schema validation, precedence, units, tiers, fallbacks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import yaml
from pydantic import ValidationError

from collector.pricing import PriceTable, PricingEntry, parse_pricing_entries

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)


def entry(**fields: object) -> PricingEntry:
    fields.setdefault("unit", "per_1m_tokens")
    return PricingEntry.model_validate(fields)


def test_custom_entry_overrides_default() -> None:
    table = PriceTable([entry(name="gpt-4o-negotiated", match=r"gpt-4o", prices={"input": 1, "output": 4})])
    for model in ("gpt-4o", "GPT-4O", "openai/gpt-4o"):
        result = table.cost({"input": 1_000_000, "output": 1_000_000}, model, "openai", at=AT)
        assert (result.matched_model, result.source, result.total_cost) == ("gpt-4o-negotiated", "custom", 5.0)
    # a name the regex does not fully match falls through to genai-prices
    assert table.cost({"input": 10}, "gpt-4o-mini", "openai").source.startswith("genai-prices")


def test_match_defaults_to_the_literal_name() -> None:
    table = PriceTable([entry(name="ft:gpt-4o-mini:acme:v1", prices={"input": 1})], use_default=False)
    assert table.resolve("ft:gpt-4o-mini:acme:v1") is not None
    assert table.resolve("ft:gpt-4o-mini:acme:v10") is None
    assert table.resolve("ftXgpt-4o-mini:acme:v1") is None  # no regex meaning for '.' etc.


def test_project_scoped_entry_only_for_that_project() -> None:
    table = PriceTable(
        [
            entry(name="global", match="claude-haiku-4-5", prices={"input": 10}),
            entry(name="team-a", match="claude-haiku-4-5", prices={"input": 20}, projects=["team-a"]),
        ]
    )
    assert table.resolve("claude-haiku-4-5", project_id="team-a", at=AT).name == "team-a"
    assert table.resolve("claude-haiku-4-5", project_id="team-b", at=AT).name == "global"
    assert table.resolve("claude-haiku-4-5", at=AT).name == "global"
    only_scoped = PriceTable(
        [entry(name="team-a", match="claude-haiku-4-5", prices={"input": 20}, projects=["team-a"])]
    )
    assert only_scoped.resolve("claude-haiku-4-5", project_id="team-b", at=AT).source.startswith("genai-prices")


def test_start_date_selects_newest_applicable_entry() -> None:
    entries = [
        entry(name="undated", match="my-model", prices={"input": 1}),
        entry(name="from-2025", match="my-model", prices={"input": 2}, start_date=date(2025, 1, 1)),
        entry(name="from-2026", match="my-model", prices={"input": 3}, start_date=date(2026, 1, 1)),
    ]
    table = PriceTable(entries, use_default=False)
    assert table.resolve("my-model", at=datetime(2024, 6, 1, tzinfo=UTC)).name == "undated"
    assert table.resolve("my-model", at=datetime(2025, 6, 1, tzinfo=UTC)).name == "from-2025"
    assert table.resolve("my-model", at=datetime(2026, 1, 1, tzinfo=UTC)).name == "from-2026"
    # the date is taken in UTC: 2025-12-31T23:30-02:00 is already 2026-01-01 in UTC
    from datetime import timedelta, timezone

    late = datetime(2025, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert table.resolve("my-model", at=late).name == "from-2026"
    dated_only = PriceTable([entries[2]], use_default=False)
    assert dated_only.resolve("my-model", at=datetime(2025, 6, 1, tzinfo=UTC)) is None


def test_project_specific_beats_newer_global() -> None:
    table = PriceTable(
        [
            entry(name="global-new", match="m", prices={"input": 1}, start_date=date(2026, 1, 1)),
            entry(name="project-old", match="m", prices={"input": 2}, projects=["p"], start_date=date(2024, 1, 1)),
        ],
        use_default=False,
    )
    assert table.resolve("m", project_id="p", at=AT).name == "project-old"


@pytest.mark.parametrize(
    ("unit", "prices"),
    [
        ("per_token", {"input": 0.000002, "cache_read": 2e-7, "output": 0.00001}),
        ("per_1m_tokens", {"input": 2, "cache_read": 0.2, "output": 10}),
    ],
)
def test_units(unit: str, prices: dict[str, float]) -> None:
    table = PriceTable([entry(name="m", unit=unit, prices=prices)], use_default=False)
    result = table.cost({"input": 1000, "cache_read": 5000, "output": 300}, "m")
    assert result.cost_details["input"] == pytest.approx(0.002)
    assert result.cost_details["cache_read"] == pytest.approx(0.001)
    assert result.cost_details["output"] == pytest.approx(0.003)
    assert result.total_cost == pytest.approx(0.006)
    assert table.resolve("m").per_mtok["input"] == Decimal(2)


def test_tiers_are_cliffs_and_accumulate() -> None:
    table = PriceTable(
        [
            entry(
                name="m",
                prices={"input": 1, "output": 2, "cache_read": 0.1},
                tiers=[
                    {"above_input_tokens": 2000, "prices": {"input": 3}},
                    {"above_input_tokens": 1000, "prices": {"input": 2, "output": 4}},
                ],
            )
        ],
        use_default=False,
    )
    base = table.cost({"input": 900, "cache_read": 100, "output": 1_000_000}, "m")  # 1000 total: not above
    assert base.tier is None and base.total_cost == pytest.approx((900 * 1 + 100 * 0.1 + 1_000_000 * 2) / 1e6)
    mid = table.cost({"input": 901, "cache_read": 100, "output": 1_000_000}, "m")
    assert mid.tier == 1000 and mid.total_cost == pytest.approx((901 * 2 + 100 * 0.1 + 1_000_000 * 4) / 1e6)
    high = table.cost({"input": 2001, "output": 1_000_000}, "m")
    # above 2000: input from the 2000 tier, output keeps the 1000 tier's price
    assert high.tier == 2000 and high.total_cost == pytest.approx((2001 * 3 + 1_000_000 * 4) / 1e6)


def test_standard_buckets_fall_back_and_zero_means_free() -> None:
    table = PriceTable(
        [entry(name="m", prices={"input": 1, "output": 2, "cache_write": 0})],
        use_default=False,
    )
    usage = {"cache_read": 10**6, "cache_write": 10**6, "input_audio": 10**6, "reasoning": 10**6, "output_audio": 10**6}
    details = table.cost(usage, "m").cost_details
    assert details == {
        "cache_read": 1.0,  # no own price: billed as input
        "cache_write": 0.0,  # explicitly free: a priced bucket with cost 0
        "input_audio": 1.0,
        "reasoning": 2.0,  # no own price: billed as output
        "output_audio": 2.0,
        "total": 6.0,
    }


def test_other_keys_priced_only_when_listed() -> None:
    table = PriceTable([entry(name="m", unit="per_token", prices={"input": 1e-6, "web_search_queries": 0.01})])
    result = table.cost({"input": 100, "web_search_queries": 3, "image_generations": 2}, "m", at=AT)
    assert result.cost_details == pytest.approx({"input": 1e-4, "web_search_queries": 0.03, "total": 0.0301})


def test_provider_restriction() -> None:
    table = PriceTable(
        [entry(name="bedrock-claude", match=r".*claude-3-5-sonnet.*", provider="aws.bedrock", prices={"input": 1})]
    )
    bedrock_id = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
    assert table.resolve(bedrock_id, "bedrock", at=AT).name == "bedrock-claude"
    assert table.resolve(bedrock_id, "aws", at=AT).name == "bedrock-claude"
    assert table.resolve(bedrock_id, None, at=AT).name == "bedrock-claude"  # provider implied by the Bedrock id
    assert table.resolve("claude-3-5-sonnet-20241022", "anthropic", at=AT).source.startswith("genai-prices")
    assert table.resolve("claude-3-5-sonnet-20241022", None, at=AT).source.startswith("genai-prices")


def test_regex_matches_normalised_spellings() -> None:
    table = PriceTable([entry(name="m", match=r"claude-3-haiku-20240307", prices={"input": 1})], use_default=False)
    assert table.resolve("anthropic.claude-3-haiku-20240307-v1:0", "aws.bedrock") is not None
    assert table.resolve("anthropic/claude-3-haiku-20240307") is not None
    assert table.resolve("claude-3-haiku-20240307-extra") is None  # fullmatch, not search


def test_use_default_false_has_only_custom_prices() -> None:
    table = PriceTable([], use_default=False)
    assert table.cost({"input": 1}, "gpt-4o", "openai").unknown_model


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "x", "match": "gpt-(4o", "prices": {"input": 1}}, "not a valid Python regex"),
        ({"name": "x", "prices": {"input": 1}, "unit": None}, "per_token"),
        ({"name": "x", "prices": {"input": 1}, "unit": "per_1k_tokens"}, "'per_token', 'per_1m_tokens'"),
        ({"name": "x", "prices": {"input": -1}}, "price for 'input' must be >= 0"),
        ({"name": "x", "prices": {"total": 1}}, "'total' is informational"),
        ({"name": "x", "prices": {}}, "at least 1 item"),
        ({"name": "x", "prices": {"input": 1}, "price": 2}, "Extra inputs are not permitted"),
        (
            {"name": "x", "prices": {"input": 1}, "tiers": [{"above_input_tokens": 5, "prices": {"input": 1}, "x": 1}]},
            "Extra inputs are not permitted",
        ),
        (
            {"name": "x", "prices": {"input": 1}, "tiers": [{"above_input_tokens": -1, "prices": {"input": 1}}]},
            "greater than or equal to 0",
        ),
        (
            {"name": "x", "prices": {"input": 1}, "tiers": [{"above_input_tokens": 5, "prices": {"input": 1}}] * 2},
            "distinct",
        ),
        ({"name": "", "prices": {"input": 1}}, "at least 1 character"),
    ],
)
def test_invalid_entries(fields: dict[str, object], message: str) -> None:
    fields = dict(fields)
    if fields.get("unit", "") is None:
        del fields["unit"]
    else:
        fields.setdefault("unit", "per_token")
    with pytest.raises(ValidationError) as info:
        PricingEntry.model_validate(fields)
    assert message in str(info.value)


def test_missing_unit_message_lists_the_choices() -> None:
    with pytest.raises(ValidationError, match="'unit' is required: one of 'per_token', 'per_1m_tokens'"):
        PricingEntry.model_validate({"name": "x", "prices": {"input": 1}})


def test_parse_yaml_pricing_section() -> None:
    document = yaml.safe_load(
        """
pricing:
  - name: acme-finetune
    match: "ft:gpt-4o-mini:acme:.*"
    unit: per_1m_tokens
    prices: {input: 0.30, cache_read: 0.15, output: 1.20}
    projects: [team-a]
    start_date: 2026-01-01
"""
    )
    [parsed] = parse_pricing_entries(document["pricing"])
    assert parsed.start_date == date(2026, 1, 1) and parsed.projects == ["team-a"]
    assert parsed.prices["input"] == Decimal("0.3")
    assert parse_pricing_entries(None) == []
    with pytest.raises(ValueError, match=r"pricing\[1\] \('bad'\)"):
        parse_pricing_entries([document["pricing"][0], {"name": "bad", "unit": "per_token", "prices": {"input": -1}}])
    with pytest.raises(ValueError, match="must be a list"):
        parse_pricing_entries({"name": "x"})
