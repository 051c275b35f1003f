"""Helpers for dialect tests: map spans end to end through the real precedence chain."""

from __future__ import annotations

import json
from typing import Any

import pytest

import semconv.registry as registry
from semconv.extract import Dialect
from semconv.mapping import map_traces_request
from tests.otlp_helpers import make_span, trace_request


def map_one(
    attributes: dict[str, Any] | None = None,
    *,
    resource: dict[str, Any] | None = None,
    scope: tuple[str, str] = ("tests", ""),
    span=None,
    **span_fields: Any,
) -> tuple[dict, dict | None]:
    """Map one span; returns (observation row, trace row or None) with JSON columns decoded."""
    span = span if span is not None else make_span(attributes=attributes, **span_fields)
    request = trace_request([span])
    scope_message = request.resource_spans[0].scope_spans[0].scope
    scope_message.name, scope_message.version = scope
    if resource is not None:
        from tests.otlp_helpers import kv

        del request.resource_spans[0].resource.attributes[:]
        request.resource_spans[0].resource.attributes.extend(kv(k, v) for k, v in resource.items())
    out = map_traces_request(request)
    [observation] = out.observations
    return decode(observation), decode(out.traces[0]) if out.traces else None


def decode(row: dict[str, Any]) -> dict[str, Any]:
    json_columns = ("input", "output", "metadata", "model_parameters", "attributes", "events", "links")
    return {k: json.loads(v) if k in json_columns and isinstance(v, str) else v for k, v in row.items()}


@pytest.fixture(autouse=True)
def strict_dialects(monkeypatch):
    """Run the real registry, but let any exception inside a dialect fail the test.

    The mapper deliberately swallows dialect errors (the span is kept, a warning counted), which
    would let a broken dialect pass its tests unnoticed.
    """
    errors: list[BaseException] = []

    def strict(dialect: Dialect) -> Dialect:
        def extract(view):
            try:
                return dialect.extract(view)
            except Exception as exc:
                errors.append(exc)
                raise

        return Dialect(dialect.name, dialect.matches, extract)

    monkeypatch.setattr(registry, "DIALECTS", tuple(strict(d) for d in registry.DIALECTS))
    yield
    assert not errors, errors
