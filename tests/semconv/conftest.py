"""Helpers for dialect tests: map spans end to end through the real precedence chain."""

from __future__ import annotations

import json
from typing import Any

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
