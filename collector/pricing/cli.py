"""``spanfuse prices MODEL``: show the price entry the collector would apply to a model."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from collector.pricing.config import PricingEntry, parse_pricing_entries
from collector.pricing.models import BUCKETS, FALLBACK, ModelPrices
from collector.pricing.table import PriceTable


def add_prices_command(subparsers: Any) -> None:
    """Register ``prices MODEL [--provider P] [--project ID] [--date YYYY-MM-DD] [--config PATH]``.

    ``subparsers`` is what ``ArgumentParser.add_subparsers()`` returned. The command's function is stored as
    ``args.run`` (returns the exit code): 0 when a price matched, 1 for an unknown model, 2 for a bad config.
    """
    parser = subparsers.add_parser(
        "prices",
        help="show the price the collector applies to a model",
        description="Show the matched price entry (model, provider, source) and its prices per 1M tokens.",
    )
    parser.add_argument("model", help="model name as a client sends it, e.g. gpt-4o or us.anthropic.claude-…-v1:0")
    parser.add_argument("--provider", help="provider as sent (openai, aws.bedrock, gcp.vertex_ai, …)")
    parser.add_argument("--project", help="project id, for project-specific custom entries")
    parser.add_argument("--date", type=date.fromisoformat, help="price on this UTC date (default: now)")
    parser.add_argument("--config", help="YAML file whose top-level 'pricing:' list adds custom entries")
    parser.set_defaults(run=run_prices)


def load_entries(path: str) -> list[PricingEntry]:
    """Custom entries from the top-level ``pricing:`` list of a YAML file (no other section is read)."""
    import yaml

    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if document is None:
        return []
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return parse_pricing_entries(document.get("pricing"))


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def run_prices(args: argparse.Namespace) -> int:
    """Print the matched entry as a rich table; exit code 1 when nothing matches."""
    import yaml
    from rich.console import Console

    console = Console()
    try:
        entries = load_entries(args.config) if args.config else []
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"spanfuse prices: cannot load {args.config}: {exc}", file=sys.stderr)
        return 2
    table = PriceTable(entries)
    at = datetime.combine(args.date, time(12), tzinfo=UTC) if args.date else None
    prices = table.resolve(args.model, args.provider, args.project, at)
    if prices is None:
        provider = f" (provider {args.provider!r})" if args.provider else ""
        console.print(
            f"unknown model {args.model!r}{provider}: no custom entry or genai-prices price matches",
            markup=False,
            highlight=False,
        )
        return 1
    render(console, args.model, prices)
    return 0


def render(console: Any, model: str, prices: ModelPrices) -> None:
    """Print one ``ModelPrices`` as a table of USD per 1M tokens (one column per tier)."""
    from rich.table import Table

    console.print(f"requested: {model}", markup=False, highlight=False)
    console.print(f"matched model: {prices.name}", markup=False, highlight=False)
    console.print(f"provider: {prices.provider or '-'}", markup=False, highlight=False)
    console.print(f"source: {prices.source}", markup=False, highlight=False)
    grid = Table(title="USD per 1M tokens")
    grid.add_column("bucket")
    grid.add_column("base", justify="right")
    for threshold, _ in prices.tiers_mtok:
        grid.add_column(f"> {threshold:,} input tokens", justify="right")
    grid.add_column("note")
    keys = [key for key in BUCKETS if key in prices.per_mtok]
    keys += sorted(key for key in prices.per_mtok if key not in BUCKETS)
    for key in keys:
        row = [key, _fmt(prices.per_mtok[key])]
        row += [_fmt(tier[key]) if key in tier else "" for _, tier in prices.tiers_mtok]
        row.append(f"no own price: billed as {FALLBACK[key]}" if key in prices.derived else "")
        grid.add_row(*row)
    console.print(grid)
    if prices.ignored:
        listed = ", ".join(f"{key}={value}" for key, value in sorted(prices.ignored.items()))
        console.print(f"not applied (no matching usage bucket): {listed}", markup=False, highlight=False)
