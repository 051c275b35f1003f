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

BUCKETS = ("input", "cache_read", "cache_write", "input_audio", "output", "reasoning", "output_audio")

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
    raw = {
        "input": input,
        "cache_read": cache_read,
        "cache_write": cache_write,
        "input_audio": input_audio,
        "output": output,
        "reasoning": reasoning,
        "output_audio": output_audio,
    }
    # Most buckets are absent (None): skip the conversion call for those, this runs for every span with usage.
    counts = {k: None if v is None else as_int(v) for k, v in raw.items()}
    reported_total = None if total is None else as_int(total)
    if reported_total is None and not extra and all(v is None for v in counts.values()):
        return None
    if counts["input"] is None and counts["output"] is None and reported_total is not None:
        counts["input"] = reported_total  # e.g. embeddings report only a total
    cached = (counts["cache_read"] or 0) + (counts["cache_write"] or 0)
    _subtract_parts(counts, "input", counts["input_audio"], cached, input_includes_cache)
    _subtract_parts(counts, "output", counts["output_audio"], counts["reasoning"], output_includes_reasoning)
    usage = {k: v for k, v in counts.items() if v is not None}
    usage["total"] = sum(usage.values())
    for key, value in (extra or {}).items():
        number = as_int(value)
        if number is not None and key not in usage:
            usage[key] = number
    return usage


def _subtract_parts(
    counts: dict[str, int | None], key: str, audio: int | None, inner: int | None, inclusive: bool
) -> None:
    """Remove sub-counts from ``counts[key]``; a total smaller than its parts did not include them."""
    total = counts[key]
    if total is None:
        return
    subtract = (audio or 0) + ((inner or 0) if inclusive else 0)
    if total < subtract:
        subtract = audio or 0
    if total >= subtract:
        counts[key] = total - subtract
