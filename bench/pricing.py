"""Pricing benchmark: µs per cached ``PriceTable.cost()``, per cold ``resolve()``, and genai-prices' ``calc_price``.

A realistic mix of ~20 (model, provider) pairs as instrumentations send them (provider prefixes, Bedrock ids,
OTel provider spellings, one unknown model) with disjoint usage buckets. Every figure is the median over
``--repeats`` rounds.

Run from the repository root::

    .venv/bin/python bench/pricing.py [--calls 200000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIX: list[tuple[str, str | None, dict[str, int]]] = [
    ("gpt-4o", "openai", {"input": 1200, "cache_read": 800, "output": 300, "total": 2300}),
    ("gpt-4o-mini", "openai.chat", {"input": 900, "output": 120, "total": 1020}),
    ("gpt-4o-2024-08-06", "openai", {"input": 500, "cache_read": 1500, "output": 90}),
    ("o3", "openai.responses", {"input": 3000, "output": 400, "reasoning": 2500}),
    ("openai/gpt-4.1", None, {"input": 2000, "output": 200}),
    ("gpt-4o", "az.ai.openai", {"input": 700, "output": 70}),
    (
        "claude-sonnet-4-5-20250929",
        "anthropic",
        {"input": 1500, "cache_read": 40000, "cache_write": 5000, "output": 900},
    ),
    ("claude-haiku-4-5", "anthropic.messages", {"input": 400, "cache_read": 6000, "cache_write": 800, "output": 150}),
    ("claude-3-5-haiku-20241022", "Anthropic", {"input": 1000, "output": 100}),
    ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "aws.bedrock", {"input": 2500, "cache_read": 9000, "output": 600}),
    ("anthropic.claude-3-haiku-20240307-v1:0", "aws.bedrock", {"input": 800, "output": 80}),
    ("gemini-2.5-pro", "gcp.gemini", {"input": 150000, "cache_read": 60000, "output": 1000, "reasoning": 3000}),
    ("models/gemini-2.5-flash", "gcp.vertex_ai", {"input": 4000, "input_audio": 2000, "output": 500, "reasoning": 700}),
    ("gemini-2.0-flash", "gemini", {"input": 3000, "output": 300}),
    ("grok-3", "x_ai", {"input": 1000, "cache_read": 500, "output": 200}),
    ("mistral-large-latest", "mistral_ai", {"input": 1500, "output": 250}),
    ("deepseek-chat", "deepseek", {"input": 2000, "cache_read": 1000, "output": 400}),
    ("llama-3.3-70b-versatile", "groq", {"input": 1200, "output": 300}),
    ("command-r-plus", "cohere", {"input": 900, "output": 100}),
    ("my-private-finetune", "openai", {"input": 100, "output": 10}),
]

AT = datetime(2026, 9, 1, 20, 0, tzinfo=UTC)


def genai_usage(usage: dict[str, int]) -> Any:
    from genai_prices import Usage

    return Usage(
        input_tokens=usage.get("input", 0)
        + usage.get("cache_read", 0)
        + usage.get("cache_write", 0)
        + usage.get("input_audio", 0),
        cache_read_tokens=usage.get("cache_read", 0),
        cache_write_tokens=usage.get("cache_write", 0),
        input_audio_tokens=usage.get("input_audio", 0),
        cache_audio_read_tokens=0,
        output_tokens=usage.get("output", 0) + usage.get("reasoning", 0) + usage.get("output_audio", 0),
        output_reasoning_tokens=usage.get("reasoning", 0),
        output_audio_tokens=usage.get("output_audio", 0),
    )


def per_call_us(fn: Callable[[int], None], calls: int) -> float:
    start = time.perf_counter()
    fn(calls)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="cost() calls per round (default: %(default)s)")
    parser.add_argument("--genai-calls", type=int, default=4_000, help="calc_price calls per round")
    parser.add_argument("--repeats", type=int, default=7, help="rounds; medians are reported (default: %(default)s)")
    args = parser.parse_args()

    start = time.perf_counter()
    import genai_prices
    from genai_prices import data_snapshot

    from collector.pricing import PriceTable

    data_snapshot.get_snapshot()
    load_ms = (time.perf_counter() - start) * 1e3

    table = PriceTable()
    n = len(MIX)
    known = [(model, provider, usage) for model, provider, usage in MIX if table.resolve(model, provider, at=AT)]

    # -- cached cost() ---------------------------------------------------------------------------------------
    def cost_loop(calls: int, at: datetime | None = AT) -> None:
        cost = table.cost
        mix = MIX
        for i in range(calls):
            model, provider, usage = mix[i % n]
            cost(usage, model, provider, "default", at)

    def loop_overhead(calls: int) -> None:
        mix = MIX
        for i in range(calls):
            _model, _provider, _usage = mix[i % n]

    cost_loop(n * 10)
    overhead = statistics.median(per_call_us(loop_overhead, args.calls) for _ in range(args.repeats))
    cached = statistics.median(per_call_us(cost_loop, args.calls) for _ in range(args.repeats))
    cached_now = statistics.median(
        per_call_us(lambda calls: cost_loop(calls, None), args.calls) for _ in range(args.repeats)
    )

    # -- cold resolve() --------------------------------------------------------------------------------------
    def cold_resolve(clear_genai_caches: bool) -> float:
        samples = []
        for _ in range(args.repeats):
            table.cache_clear()
            if clear_genai_caches:
                snapshot = data_snapshot.get_snapshot()
                snapshot._lookup_cache.clear()  # genai-prices' own memo of (provider, model) lookups
                snapshot._provider_cache.clear()
                snapshot._provider_misses.clear()
            start = time.perf_counter()
            for model, provider, _ in MIX:
                table.resolve(model, provider, at=AT)
            samples.append((time.perf_counter() - start) / n * 1e6)
        return statistics.median(samples)

    cold_ours = cold_resolve(False)
    cold_all = cold_resolve(True)

    # -- genai-prices calc_price on the same calls -----------------------------------------------------------
    refs = []
    for model, provider, usage in known:
        prices = table.resolve(model, provider, at=AT)
        try:  # genai-prices needs a name it knows: ours as sent when it can, else the matched model id
            genai_prices.calc_price(genai_usage(usage), model, provider_id=prices.provider, genai_request_timestamp=AT)
        except LookupError:
            model = prices.name
        refs.append((genai_usage(usage), model, prices.provider))

    def calc_loop(calls: int) -> None:
        calc = genai_prices.calc_price
        m = len(refs)
        for i in range(calls):
            usage, model, provider_id = refs[i % m]
            calc(usage, model, provider_id=provider_id, genai_request_timestamp=AT)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calc_loop(len(refs) * 5)
        calc = statistics.median(per_call_us(calc_loop, args.genai_calls) for _ in range(args.repeats))

    info = table.cache_info()
    print(f"python {platform.python_version()} on {platform.machine()}, genai-prices {genai_prices.__version__}")
    print(f"mix: {n} (model, provider) pairs, {len(known)} priced, {n - len(known)} unknown; {args.repeats} rounds")
    print(f"genai-prices data load (one-time)            {load_ms:10.1f} ms")
    print(f"PriceTable.cost(), cached, at=span time      {cached:10.2f} µs/call  (loop overhead {overhead:.2f} µs)")
    print(f"PriceTable.cost(), cached, at=None (now)     {cached_now:10.2f} µs/call")
    print(f"PriceTable.resolve(), cold (our cache clear) {cold_ours:10.1f} µs/call")
    print(f"PriceTable.resolve(), cold (+genai memo)     {cold_all:10.1f} µs/call")
    print(f"genai_prices.calc_price (same calls)         {calc:10.1f} µs/call  ({calc / cached:.0f}x cost())")
    print(f"cache: {info.currsize} keys, {info.hits} hits, {info.misses} misses")


if __name__ == "__main__":
    main()
