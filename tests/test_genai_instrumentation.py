"""Real GenAI instrumentations -> collector -> typed, priced observations with content.

The ``openai`` client talks to a local fake OpenAI server; the spans and log events come from
the real instrumentation packages, exported with the real OTLP exporters.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from collector.pricing import PriceTable
from tests.conftest import ROOT, wait_until
from tests.fake_openai import ANSWER, FakeOpenAI
from tests.otlp_helpers import basic_auth

SYSTEM = {"role": "system", "content": "You are a weather bot."}
USER = {"role": "user", "content": "Weather in Paris?"}


@pytest.fixture(scope="module")
def fake_openai():
    with FakeOpenAI() as fake:
        yield fake


def _run_instrumented_app(mode: str, server, fake_openai) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.genai_client",
            mode,
            f"http://127.0.0.1:{server.http_port}",
            fake_openai.base_url,
            basic_auth(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("mode", ["openai-v2", "openai-v2-latest", "openinference"])
def test_instrumented_chat_call_becomes_a_priced_generation(server, fake_openai, mode):
    trace_id = _run_instrumented_app(mode, server, fake_openai)

    def generation():
        rows = [r for r in server.query.observations("default", trace_id) if r["type"] == "GENERATION"]
        return rows[0] if rows and rows[0]["input"] and rows[0]["output"] else None

    row = wait_until(generation, timeout=15)
    assert row["model"] == "gpt-4o-2024-08-06"
    assert row["provider"] == "openai"
    assert row["parent_observation_id"] is not None  # nested under the app's own span
    import json

    messages = json.loads(row["input"])
    assert messages[-2:] == [SYSTEM, USER] or messages == [SYSTEM, USER]
    output = json.loads(row["output"])
    assert output[0]["role"] == "assistant" and output[0]["content"] == ANSWER

    # The fake reports 1200 prompt tokens (1000 of them cached) and 50 completion tokens. Not every
    # instrumentation passes the cached count on; whichever buckets arrive are disjoint and priced.
    usage = row["usage_details"]
    assert usage["total"] == 1250
    assert usage["output"] == 50
    assert usage["input"] + usage.get("cache_read", 0) == 1200
    expected = PriceTable().cost(usage, "gpt-4o-2024-08-06", "openai")
    assert row["cost_source"] == "computed"
    assert row["total_cost"] == pytest.approx(expected.total_cost)
    assert row["total_cost"] > 0
    assert row["matched_model"] == "gpt-4o"
    params = json.loads(row["model_parameters"])
    assert params["temperature"] == pytest.approx(0.2)
