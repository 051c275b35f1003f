"""propagate_attributes stamps trace facts on every span started inside, third-party spans included."""

from __future__ import annotations

import logging

from opentelemetry import baggage, context

from exporters import propagate_attributes
from tests.exporters.conftest import attributes

GENAI = {"gen_ai.operation.name": "chat"}


def test_values_reach_third_party_spans_started_inside(sink, make_processor):
    processor, provider = make_processor()
    openai = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with propagate_attributes(
        user_id="user-1",
        session_id="session-1",
        tags=["beta", "eu"],
        metadata={"tenant": "acme", "plan": {"seats": 3}},
        trace_name="support-bot",
        version="2.0",
    ):
        openai.start_span("chat gpt-4o", attributes=GENAI).end()
    openai.start_span("outside", attributes=GENAI).end()
    assert processor.force_flush()
    inside, outside = (attributes(s) for s in sink.spans())
    assert inside["langfuse.user.id"] == "user-1"
    assert inside["langfuse.session.id"] == "session-1"
    assert inside["langfuse.trace.tags"] == ["beta", "eu"]
    assert inside["langfuse.trace.metadata.tenant"] == "acme"
    assert inside["langfuse.trace.metadata.plan"] == '{"seats": 3}'
    assert inside["langfuse.trace.name"] == "support-bot"
    assert inside["langfuse.version"] == "2.0"
    assert not any(key.startswith(("langfuse.user", "langfuse.session", "langfuse.trace")) for key in outside)


def test_nested_blocks_merge(sink, make_processor):
    processor, provider = make_processor()
    tracer = provider.get_tracer("app")
    with propagate_attributes(user_id="outer", tags=["a"], metadata={"x": "1"}):
        with propagate_attributes(user_id="inner", tags=["b", "a"], metadata={"y": "2"}):
            tracer.start_span("nested", attributes=GENAI).end()
        tracer.start_span("after inner", attributes=GENAI).end()
    assert processor.force_flush()
    nested, after = (attributes(s) for s in sink.spans())
    assert nested["langfuse.user.id"] == "inner"
    assert nested["langfuse.trace.tags"] == ["a", "b"]
    assert (nested["langfuse.trace.metadata.x"], nested["langfuse.trace.metadata.y"]) == ("1", "2")
    assert after["langfuse.user.id"] == "outer" and after["langfuse.trace.tags"] == ["a"]


def test_the_current_span_gets_the_values_too_and_explicit_attributes_win(sink, make_processor):
    processor, provider = make_processor()
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("already running", attributes=GENAI), propagate_attributes(session_id="s-9"):
        tracer.start_span("own", attributes={**GENAI, "langfuse.session.id": "explicit"}).end()
    assert processor.force_flush()
    own, running = (attributes(s) for s in sink.spans())
    assert running["langfuse.session.id"] == "s-9"
    assert own["langfuse.session.id"] == "explicit"


def test_baggage_carries_the_values_across_services(sink, make_processor):
    processor, provider = make_processor()
    tracer = provider.get_tracer("app")
    with (
        tracer.start_as_current_span("upstream", attributes=GENAI) as upstream,
        propagate_attributes(user_id="u-7", tags=["x", "y"], metadata={"team": "ml"}, as_baggage=True),
    ):
        carried = dict(baggage.get_all())
    trace_hex = format(upstream.get_span_context().trace_id, "032x")
    assert carried == {
        "langfuse_user_id": "u-7",
        "langfuse_tags": "x,y",
        "langfuse_metadata_team": "ml",
        "langfuse_trace_id": trace_hex,
    }
    # Downstream: only the baggage arrives (as a propagator would extract it from headers).
    incoming = context.Context()
    for key, value in carried.items():
        incoming = baggage.set_baggage(key, value, context=incoming)
    token = context.attach(incoming)
    try:
        tracer.start_span("downstream", attributes=GENAI).end()
    finally:
        context.detach(token)
    assert processor.force_flush()
    downstream = attributes(sink.spans()[-1])
    assert downstream["langfuse.user.id"] == "u-7"
    assert downstream["langfuse.trace.tags"] == ["x", "y"]
    assert downstream["langfuse.trace.metadata.team"] == "ml"
    assert "langfuse_trace_id" not in downstream


def test_too_long_values_are_not_propagated(sink, make_processor, caplog):
    processor, provider = make_processor()
    with caplog.at_level(logging.WARNING, logger="exporters"), propagate_attributes(user_id="u" * 201):
        provider.get_tracer("app").start_span("x", attributes=GENAI).end()
    assert processor.force_flush()
    assert "langfuse.user.id" not in attributes(sink.spans()[0])
    assert "longer than 200" in caplog.text


def test_block_leaves_the_context_as_it_was():
    before = context.get_current()
    with propagate_attributes(user_id="u", as_baggage=True):
        assert context.get_current() != before
    assert context.get_current() == before
