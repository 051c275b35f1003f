"""Our processor in a real application: the real ``openai`` client instrumented by
``opentelemetry-instrumentation-openai-v2``, a local fake OpenAI server, and a Spanfuse collector
over real sockets, read back through the Langfuse REST API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from exporters import LangfuseSpanProcessor, is_default_export_span, observe, propagate_attributes
from tests.conftest import PK, SK, wait_until
from tests.fake_openai import FakeOpenAI

HTTP_SCOPE = "opentelemetry.instrumentation.requests"
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def app(server, fake_openai) -> Iterator[Callable[..., tuple[LangfuseSpanProcessor, TracerProvider, object]]]:
    """``app(**processor_kwargs)``: a provider with our processor and an instrumented OpenAI client."""
    from openai import OpenAI
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    providers: list[TracerProvider] = []

    def make(**kwargs):
        processor = LangfuseSpanProcessor(PK, SK, f"http://127.0.0.1:{server.http_port}/", flush_interval=0.2, **kwargs)
        provider = TracerProvider(resource=Resource.create({"service.name": "client-e2e"}))
        provider.add_span_processor(processor)
        instrumentor.instrument(tracer_provider=provider)  # patches openai globally: undone below
        providers.append(provider)
        client = OpenAI(base_url=fake_openai.base_url, api_key="sk-fake", max_retries=0)
        return processor, provider, client

    yield make
    instrumentor.uninstrument()
    for provider in providers:
        provider.shutdown()


@pytest.fixture
def rest(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", auth=(PK, SK), timeout=30) as client:
        yield client


def _observations(rest: httpx.Client, trace_id: str, count: int) -> dict[str, dict]:
    def read():
        data = rest.get("/api/public/observations", params={"traceId": trace_id}).json()["data"]
        return data if len(data) >= count else None

    return {o["name"]: o for o in wait_until(read, timeout=15)}


def _ask(provider: TracerProvider, client) -> tuple[str, str]:
    """An HTTP server span (filtered by default) around a propagated block with one chat call."""
    http = provider.get_tracer(HTTP_SCOPE)
    with (
        http.start_as_current_span("POST /ask", attributes={"http.method": "POST", "http.route": "/ask"}) as span,
        propagate_attributes(user_id="user-e2e", session_id="session-e2e", tags=["e2e", "weather"]),
    ):
        client.chat.completions.create(model="gpt-4o", messages=QUESTION, temperature=0.2)
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def test_openai_call_arrives_as_a_generation_and_http_spans_are_filtered(app, rest):
    processor, provider, client = app()
    trace_id, http_span_id = _ask(provider, client)
    assert processor.force_flush()

    (generation,) = _observations(rest, trace_id, 1).values()
    assert generation["type"] == "GENERATION"
    assert generation["model"] == "gpt-4o-2024-08-06"
    assert generation["usageDetails"]["output"] == 50
    assert generation["calculatedTotalCost"] > 0
    # Its real parent (the HTTP span) was filtered out: the id stays, and the span is marked as the app's root.
    assert generation["parentObservationId"] == http_span_id
    assert processor.stats["filtered"] == 1 and processor.stats["exported"] == 1

    trace = wait_until(lambda: (r := rest.get(f"/api/public/traces/{trace_id}")).status_code == 200 and r.json())
    assert trace["userId"] == "user-e2e"
    assert trace["sessionId"] == "session-e2e"
    assert sorted(trace["tags"]) == ["e2e", "weather"]


def test_a_custom_predicate_keeps_the_http_span(app, rest):
    def keep_http(span):
        return is_default_export_span(span) or "http.method" in (span.attributes or {})

    processor, provider, client = app(should_export_span=keep_http)
    trace_id, http_span_id = _ask(provider, client)
    assert processor.force_flush()

    observations = _observations(rest, trace_id, 2)
    request = observations["POST /ask"]
    generation = next(o for o in observations.values() if o["type"] == "GENERATION")
    assert request["type"] == "SPAN" and request["id"] == http_span_id
    assert generation["parentObservationId"] == http_span_id


def test_observe_and_masking_keep_a_secret_out_of_storage(app, rest):
    secret = "sk-live-do-not-store"

    def mask(value):
        return value.replace(secret, "***") if isinstance(value, str) else value

    processor, provider, client = app(mask=mask)

    @observe(name="support-agent", as_type="agent", tracer_provider=provider)
    def agent(question: str, api_key: str) -> str:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        return f"answered with {api_key}"

    with provider.get_tracer("app").start_as_current_span("job") as root:  # plain span: filtered out
        agent("Weather in Paris?", api_key=secret)
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert processor.force_flush()

    observations = _observations(rest, trace_id, 2)
    agent_obs = observations["support-agent"]
    generation = next(o for o in observations.values() if o["type"] == "GENERATION")
    assert agent_obs["type"] == "AGENT"
    assert generation["parentObservationId"] == agent_obs["id"]
    assert agent_obs["input"] == {"args": ["Weather in Paris?"], "kwargs": {"api_key": "***"}}
    assert agent_obs["output"] == "answered with ***"
    raw = rest.get(f"/api/public/traces/{trace_id}").text + str(observations)
    assert secret not in raw
