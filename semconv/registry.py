"""The attribute dialects and their precedence.

Highest precedence first: explicit ``langfuse.*``, then framework dialects, then plain OTel
GenAI. For every field the first dialect that states a value wins (see
:func:`semconv.extract.merge`); the shared trace context (session, user, tags…) comes last.
"""

from __future__ import annotations

from semconv.dialects import genai, langfuse, mlflow, openinference, openlit, openllmetry, pydantic_ai, vercel
from semconv.extract import Dialect, SpanView

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


def dialects_for(view: SpanView) -> list[Dialect]:
    """The dialects that recognise ``view``, highest precedence first."""
    return [dialect for dialect in DIALECTS if dialect.matches(view)]
