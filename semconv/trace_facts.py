"""One trace-fact row per trace for the rows mapped from one request.

Every span that carries trace facts (a root span, a session or user id, ``langfuse.trace.*``)
gives the ``traces`` table a row; with propagated attributes that is every span. Storage merges a
trace's rows when it reads them: for each field the newest non-null value, newest by
``(ingested_at, ingest_seq, timestamp, observation_id)``; tags unioned; the earliest timestamp;
metadata objects merged key by key (``storage.reads.traces``).

The rows of one request are stored with the same ``ingested_at`` and ``ingest_seq``. Among them
"newest" is therefore ``(timestamp, observation_id)`` alone, and no row of another request sorts
between them, so they can be replaced by one row per trace that reads back exactly the same.
Metadata is the exception that needs the read's JSON merge: a trace whose rows carry different
metadata texts keeps its rows as they are (equal texts, the usual propagated case, fold).
"""

from __future__ import annotations

from typing import Any, Final

from semconv.mapping import TRACE_ROW

# Columns with rules of their own; every other column of a trace row is "the newest non-null value".
OWN_RULES: Final = ("id", "observation_id", "timestamp", "tags", "metadata")
_LATEST: Final = tuple(column for column in TRACE_ROW if column not in OWN_RULES)
FOLDED_ID_PREFIX: Final = "folded-"
_DIGEST_MASK: Final = (1 << 64) - 1


def fold_request_facts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trace-fact rows of one request, one per trace where they read back the same.

    A folded row's ``observation_id`` names the set of rows it stands for (the sum of their span
    ids, modulo 2**64): replaying the same request replaces it, and a later request carrying only
    some of those spans adds a row beside it rather than replacing the others' facts.
    """
    count = len(rows)
    if count < 2:
        return rows
    by_trace: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        group = by_trace.get(row["id"])
        if group is None:
            by_trace[row["id"]] = [row]
        else:
            group.append(row)
    if len(by_trace) == count:
        return rows
    folded: list[dict[str, Any]] = []
    for group in by_trace.values():
        one = _fold(group) if len(group) > 1 else None
        if one is None:
            folded.extend(group)
        else:
            folded.append(one)
    return folded


def _newer(row: dict[str, Any], than: dict[str, Any]) -> bool:
    """Whether ``row`` is newer than ``than`` among rows of one request: later start, then greater id."""
    started, other = row["timestamp"], than["timestamp"]
    return bool(started > other or (started == other and row["observation_id"] > than["observation_id"]))


def _fold(group: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One row for ``group`` (rows of one trace), or None where folding could change what reads back."""
    newest = group[0]
    earliest = newest["timestamp"]
    metadata: Any = None
    tagged = False
    digest = 0
    for row in group:
        started, observation_id = row["timestamp"], row["observation_id"]
        if started is None or not isinstance(observation_id, str):
            return None  # no order to fold by
        text = row["metadata"]
        if text is not None:
            if metadata is None:
                metadata = text
            elif text != metadata:
                return None  # merging differing metadata is the read's JSON rule: leave it to the read
        if row["tags"] is not None:
            tagged = True
        if _newer(row, newest):
            newest = row
        if started < earliest:
            earliest = started
        try:  # span ids are hex; a sum is the same whatever order the rows come in
            digest += int(observation_id, 16)
        except ValueError:
            return None
    folded = dict(newest)
    for column in _LATEST:
        if newest[column] is None:
            source: dict[str, Any] | None = None
            for row in group:
                if row[column] is not None and (source is None or _newer(row, source)):
                    source = row
            if source is not None:
                folded[column] = source[column]
    folded["timestamp"] = earliest
    folded["metadata"] = metadata
    if tagged:
        folded["tags"] = _union_tags(group)
    folded["observation_id"] = f"{FOLDED_ID_PREFIX}{digest & _DIGEST_MASK:016x}"
    return folded


def _union_tags(rows: list[dict[str, Any]]) -> list[str]:
    union: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for tag in row["tags"] or ():
            if tag not in seen:
                seen.add(tag)
                union.append(tag)
    return union
