"""The real Langfuse Python SDK (v5) writes and reads through Spanfuse, unmodified.

Writes: ``@observe`` functions, a generation with model and usage, ``propagate_attributes``,
``create_score``, ``flush()``. Reads: the SDK's own API client (``langfuse.api``) and plain HTTP.
"""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from collector.pricing import PriceTable
from tests.conftest import PK, SK, wait_until


@pytest.fixture
def langfuse_client(server, monkeypatch):
    from langfuse import Langfuse

    # Configured the way users do: environment variables pointing the SDK at Spanfuse.
    monkeypatch.setenv("LANGFUSE_MEDIA_UPLOAD_ENABLED", "false")
    monkeypatch.setenv("LANGFUSE_BASE_URL", f"http://127.0.0.1:{server.http_port}")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PK)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SK)
    client = Langfuse(
        tracer_provider=TracerProvider(),  # isolated from any global provider in the test process
        flush_at=10,
        flush_interval=0.2,
    )
    yield client
    client.shutdown()


def test_sdk_traces_scores_and_reads_back(server, langfuse_client):
    from langfuse import observe, propagate_attributes

    lf = langfuse_client
    assert lf.auth_check() is True

    @observe()
    def retrieve(question: str) -> list[str]:
        return ["Paris is the capital of France."]

    @observe(name="answer-question")
    def answer(question: str) -> str:
        retrieve(question)
        # v5's spelling of start_as_current_generation
        with lf.start_as_current_observation(
            name="llm-call",
            as_type="generation",
            model="gpt-4o",
            input=[{"role": "user", "content": question}],
            model_parameters={"temperature": 0.1},
        ) as generation:
            generation.update(output="Paris", usage_details={"input": 1200, "output": 30})
        return "Paris"

    with propagate_attributes(user_id="user-7", session_id="session-42", tags=["geo", "faq"]):
        answer("What is the capital of France?")
        trace_id = lf.get_current_trace_id()
    trace_id = trace_id or _latest_trace_id(lf)
    lf.create_score(name="correctness", value=0.9, trace_id=trace_id, comment="looks right")
    lf.flush()

    # Read back with the SDK's own API client (v2 observations, v3 scores).
    observations = wait_until(
        lambda: (lambda data: data if len(data) == 3 else None)(
            lf.api.observations.get_many(trace_id=trace_id, fields="core,basic,model,usage,io").data
        ),
        timeout=20,
    )
    by_name = {o.name: o for o in observations}
    assert set(by_name) == {"answer-question", "retrieve", "llm-call"}
    root, retriever, generation = by_name["answer-question"], by_name["retrieve"], by_name["llm-call"]
    assert root.parent_observation_id is None
    assert retriever.parent_observation_id == root.id
    assert generation.parent_observation_id == root.id
    assert generation.type == "GENERATION"
    assert generation.usage_details == {"input": 1200, "output": 30, "total": 1230}
    expected = PriceTable().cost({"input": 1200, "output": 30}, "gpt-4o").total_cost
    assert generation.total_cost == pytest.approx(expected)

    scores = wait_until(lambda: lf.api.scores.get_many(trace_id=trace_id).data, timeout=20)
    assert [(s.name, s.value) for s in scores] == [("correctness", 0.9)]

    # And over plain HTTP, the legacy trace view.
    trace = httpx.get(
        f"http://127.0.0.1:{server.http_port}/api/public/traces/{trace_id}", auth=(PK, SK), timeout=30
    ).json()
    assert trace["name"] == "answer-question"
    assert (trace["userId"], trace["sessionId"]) == ("user-7", "session-42")
    assert sorted(trace["tags"]) == ["faq", "geo"]
    assert trace["totalCost"] == pytest.approx(expected)
    assert {o["name"] for o in trace["observations"]} == {"answer-question", "retrieve", "llm-call"}
    assert [s["name"] for s in trace["scores"]] == ["correctness"]


def _latest_trace_id(lf) -> str:
    traces = wait_until(lambda: lf.api.observations.get_many(name="answer-question").data, timeout=20)
    return traces[0].trace_id
