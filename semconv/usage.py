"""Token usage as disjoint buckets, whatever counting convention the source used.

Buckets: ``input`` (without cache reads/writes and audio), ``cache_read``, ``cache_write``,
``input_audio``, ``output`` (without reasoning and audio), ``reasoning``, ``output_audio``,
and ``total`` (their sum). Each token is in exactly one bucket, so a price applies once per
token. Other counters a source reports (e.g. ``web_search_queries``) are kept under their own
names and are not part of ``total``.

Conventions differ: the OTel GenAI conventions (and OpenInference, OpenLLMetry, Pydantic AI)
count cache reads/writes *inside* input and reasoning *inside* output; Anthropic's and
Bedrock's own APIs report input *without* the cache. :func:`disjoint` takes the convention as
arguments and, when the numbers contradict it (a subset larger than its total), trusts the
numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from semconv.attrs import as_int

# Provider APIs whose own "input tokens" count excludes cached tokens (used for raw API usage).
_INPUT_EXCLUDES_CACHE = ("anthropic", "bedrock", "aws")


def provider_input_includes_cache(provider: str | None) -> bool:
    """Whether a provider's own API counts cached tokens inside its input tokens."""
    name = (provider or "").lower()
    return not any(marker in name for marker in _INPUT_EXCLUDES_CACHE)


def disjoint(
    *,
    input: Any = None,
    output: Any = None,
    cache_read: Any = None,
    cache_write: Any = None,
    reasoning: Any = None,
    input_audio: Any = None,
    output_audio: Any = None,
    total: Any = None,
    input_includes_cache: bool = True,
    output_includes_reasoning: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, int] | None:
    """Disjoint buckets (see module doc) from raw counts; None when nothing was reported."""
    # Plain locals rather than a dict per bucket: this runs for every span with usage.
    # Most buckets are absent (None): skip the conversion call for those.
    input = None if input is None else as_int(input)
    cache_read = None if cache_read is None else as_int(cache_read)
    cache_write = None if cache_write is None else as_int(cache_write)
    input_audio = None if input_audio is None else as_int(input_audio)
    output = None if output is None else as_int(output)
    reasoning = None if reasoning is None else as_int(reasoning)
    output_audio = None if output_audio is None else as_int(output_audio)
    reported_total = None if total is None else as_int(total)
    if input is None and output is None and reported_total is not None:
        input = reported_total  # e.g. embeddings report only a total
    cached = (cache_read or 0) + (cache_write or 0)
    input = _without_parts(input, input_audio, cached, input_includes_cache)
    output = _without_parts(output, output_audio, reasoning, output_includes_reasoning)
    # One call per bucket rather than a loop over (bucket, count) pairs: in the compiled build
    # such a loop boxes a tuple per pair and iterates generically. The total adds as native ints.
    usage: dict[str, int] = {}
    summed = (
        _put(usage, "input", input)
        + _put(usage, "cache_read", cache_read)
        + _put(usage, "cache_write", cache_write)
        + _put(usage, "input_audio", input_audio)
        + _put(usage, "output", output)
        + _put(usage, "reasoning", reasoning)
        + _put(usage, "output_audio", output_audio)
    )
    if not usage and reported_total is None and not extra:
        return None
    usage["total"] = summed
    if not extra:
        return usage
    for key, value in extra.items():
        number = as_int(value)
        if number is not None and key not in usage:
            usage[key] = number
    return usage


def disjoint_counts(
    counts: dict[str, Any],
    *,
    input_includes_cache: bool = True,
    output_includes_reasoning: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, int] | None:
    """:func:`disjoint` of raw counts keyed by its argument names (``input``, ``cache_read``…
    ``total``), as dialects gather them.

    Rather than ``disjoint(**counts)``: in the compiled build a call with ``**`` goes through
    generic keyword parsing, which cost several times the work of :func:`disjoint` itself.
    """
    return disjoint(
        input=counts.get("input"),
        output=counts.get("output"),
        cache_read=counts.get("cache_read"),
        cache_write=counts.get("cache_write"),
        reasoning=counts.get("reasoning"),
        input_audio=counts.get("input_audio"),
        output_audio=counts.get("output_audio"),
        total=counts.get("total"),
        input_includes_cache=input_includes_cache,
        output_includes_reasoning=output_includes_reasoning,
        extra=extra,
    )


def _put(usage: dict[str, int], bucket: str, count: int | None) -> int:
    """Put ``count`` (unless None) under ``bucket``; what it adds to the total."""
    if count is None:
        return 0
    usage[bucket] = count
    return count


def _without_parts(total: int | None, audio: int | None, inner: int | None, inclusive: bool) -> int | None:
    """``total`` without its sub-counts; a total smaller than its parts did not include them."""
    if total is None:
        return None
    subtract = (audio or 0) + ((inner or 0) if inclusive else 0)
    if total < subtract:
        subtract = audio or 0
    return total - subtract if total >= subtract else total
