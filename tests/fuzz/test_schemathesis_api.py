"""Schemathesis against the REST API's own OpenAPI schema, over the real socket of a real server.

Every operation of ``/openapi.json`` is called with generated (valid and invalid) parameters and
bodies, authenticated with Basic auth. Checks: never a 5xx (``not_a_server_error``), and where
the schema declares a response, status code, content type and body conform to it.
``SPANFUSE_FUZZ_EXAMPLES`` raises the examples per operation for a longer campaign (the
``slow``-marked variant runs the wider set of checks with more examples).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from collector.server import Server
from tests.fuzz.campaign import count, examples
from tests.otlp_helpers import basic_auth, make_span, trace_request

AUTH = {"authorization": basic_auth()}
DEFAULT_CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance]
SCHEMA_CHECKS = [*DEFAULT_CHECKS, checks.response_schema_conformance]


@pytest.fixture
def api_schema(server: Server) -> Any:
    """The served OpenAPI document, with a trace stored so that reads find something."""
    import httpx

    body = trace_request([make_span(name="seed", attributes={"session.id": "s", "user.id": "u"})])
    answer = httpx.post(
        f"http://127.0.0.1:{server.http_port}/v1/traces",
        content=body.SerializeToString(),
        headers={**AUTH, "content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{server.http_port}/openapi.json")


def _campaign(schema: Any, name: str, check_list: list[Any], max_examples: int, headers: dict[str, str]) -> None:
    """Every operation of ``schema``, positive and negative cases, ``max_examples`` each.

    Drives schemathesis through its Python API (its pytest plugin does not run under this pytest).
    """
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def call(case: Any) -> None:
                response = case.call_and_validate(headers=headers, checks=check_list, timeout=60)
                count(name, f"http_{response.status_code}")

            try:
                call()
            except Unsatisfiable:  # e.g. no invalid input exists for an operation without parameters
                count(name, "unsatisfiable")


def test_api_never_5xx_and_answers_as_declared(api_schema: Any) -> None:
    _campaign(api_schema, "schemathesis:api", SCHEMA_CHECKS, examples(10), AUTH)


@pytest.mark.slow
def test_api_without_credentials_never_5xx(api_schema: Any) -> None:
    _campaign(api_schema, "schemathesis:unauthenticated", [checks.not_a_server_error], examples(10), {})
