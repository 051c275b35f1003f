"""The seam for attribute dialects and the order in which they apply.

A dialect recognises spans (``matches``) and refines the generic rows (``apply``). Dialects
run from the lowest precedence to the highest, so a later one overwrites what an earlier one
set: plain OTel GenAI first, framework dialects next, explicit ``langfuse.*`` last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SpanView:
    """A span as dialects see it: decoded attributes plus the raw protobuf message."""

    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    span: Any


class Dialect(Protocol):
    name: str

    def matches(self, view: SpanView) -> bool: ...

    def apply(self, view: SpanView, observation: dict[str, Any], trace: dict[str, Any] | None) -> dict[str, Any] | None:
        """Refine ``observation`` in place; return the trace fact (possibly new, or None)."""
        ...


# Lowest precedence first. The GenAI dialects are added here by the mapping issue.
DIALECTS: tuple[Dialect, ...] = ()


def dialects_for(view: SpanView) -> list[Dialect]:
    """The dialects that recognise ``view``, lowest precedence first."""
    return [dialect for dialect in DIALECTS if dialect.matches(view)]
