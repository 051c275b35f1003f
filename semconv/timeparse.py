"""Timestamps in the shapes clients send them, as microseconds since the epoch (UTC)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from semconv.attrs import parse_json_any


def iso_to_micros(value: Any) -> int | None:
    """An ISO-8601 string (possibly JSON-quoted, ``Z`` or offset, naive = UTC) as µs; else None."""
    value = parse_json_any(value) if isinstance(value, str) and value.startswith('"') else value
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(text)
        # Only times that are years 1..9999 in UTC too: readers turn stored times back into datetimes.
        moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
