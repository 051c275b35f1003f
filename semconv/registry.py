"""The attribute dialects and their precedence.

Highest precedence first: explicit ``langfuse.*``, then framework dialects, then plain OTel
GenAI. For every field the first dialect that states a value wins (see
:func:`semconv.extract.merge`); the shared trace context (session, user, tags…) comes last.
"""

from __future__ import annotations

from typing import Final

from semconv.dialects import genai, langfuse, mlflow, openinference, openlit, openllmetry, pydantic_ai, vercel
from semconv.encoded_span import NO_STATUS, SpanData
from semconv.extract import Dialect, SpanView, namespaces_of
from semconv.shapes import key_memo, key_set

DIALECTS: tuple[Dialect, ...] = (
    langfuse.DIALECT,
    openinference.DIALECT,
    vercel.DIALECT,
    openllmetry.DIALECT,
    mlflow.DIALECT,
    pydantic_ai.DIALECT,
    openlit.DIALECT,
    genai.DIALECT,
)


# What a skeleton view (see _candidates) holds for the span: by_keys reads none of it.
_NO_SPAN: Final = SpanData(b"", b"", b"", "", 0, 0, 0, {}, NO_STATUS)


def dialects_for(view: SpanView) -> list[Dialect]:
    """The dialects that recognise ``view``, highest precedence first."""
    known, candidates = _candidates.of(view.keys, view.scope_name)
    if known is not DIALECTS:  # DIALECTS was replaced since (tests do): work it out, not from the memo
        _, candidates = _find_candidates(view.keys.keys, view.scope_name)
    return [dialect for dialect, sure in candidates if sure or dialect.matches(view)]


Candidates = tuple[tuple[Dialect, ...], tuple[tuple[Dialect, bool], ...]]


def _find_candidates(keys: tuple[str, ...], scope_name: str) -> Candidates:
    """``DIALECTS`` (as it is now) and, of them, (dialect, True) for every dialect that the keys
    and scope name recognise, (dialect, False) for every one whose ``matches`` must see the
    span, highest precedence first: the dialects they rule out are left out.

    ``by_keys`` is asked on a skeleton view holding only what it may read: the keys (without
    values) and the scope name.
    """
    dialects = DIALECTS
    interned = key_set(keys)
    skeleton = SpanView(dict.fromkeys(keys), {}, scope_name, "", _NO_SPAN, interned, namespaces_of.of(interned))
    candidates = []
    for dialect in dialects:
        verdict = dialect.by_keys(skeleton) if dialect.by_keys is not None else None
        if verdict is not False:
            candidates.append((dialect, verdict is True))
    return dialects, tuple(candidates)


_candidates: Final = key_memo(_find_candidates)
