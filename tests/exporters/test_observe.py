"""@observe for functions, coroutines, generators and async generators, with Langfuse's attributes."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from exporters import observe

TYPE, INPUT, OUTPUT = "langfuse.observation.type", "langfuse.observation.input", "langfuse.observation.output"


@pytest.fixture
def memory():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider
    yield exporter
    provider.shutdown()


def test_bare_decorator_records_input_output_and_type(memory):
    @observe(tracer_provider=memory.provider)
    def add(a, b, *, scale=1):
        return {"sum": (a + b) * scale}

    assert add(1, 2, scale=10) == {"sum": 30}
    (span,) = memory.get_finished_spans()
    assert span.name == "add"
    assert span.instrumentation_scope.name == "spanfuse.observe"
    assert span.attributes[TYPE] == "span"
    assert json.loads(span.attributes[INPUT]) == {"args": [1, 2], "kwargs": {"scale": 10}}
    assert json.loads(span.attributes[OUTPUT]) == {"sum": 30}


def test_without_parentheses_uses_the_global_provider():
    @observe
    def plain():
        return "ok"

    assert plain() == "ok"  # the global provider may be the no-op one: the call still works
    assert plain.__name__ == "plain"


def test_name_type_and_nesting(memory):
    @observe(name="llm-call", as_type="generation", tracer_provider=memory.provider)
    def call_model(prompt):
        return "answer"

    @observe(as_type="agent", tracer_provider=memory.provider)
    def agent(question):
        return call_model(question)

    agent("q")
    child, parent = memory.get_finished_spans()
    assert (child.name, child.attributes[TYPE]) == ("llm-call", "generation")
    assert (parent.name, parent.attributes[TYPE]) == ("agent", "agent")
    assert child.parent.span_id == parent.context.span_id
    assert child.attributes[OUTPUT] == "answer"  # strings are sent as they are


def test_methods_leave_self_out_of_the_input(memory):
    class Bot:
        @observe(tracer_provider=memory.provider)
        def reply(self, text):
            return text.upper()

    Bot().reply("hi")
    assert json.loads(memory.get_finished_spans()[0].attributes[INPUT]) == {"args": ["hi"], "kwargs": {}}


def test_capture_can_be_turned_off(memory):
    @observe(capture_input=False, capture_output=False, tracer_provider=memory.provider)
    def secret(password):
        return password

    secret("hunter2")
    attrs = memory.get_finished_spans()[0].attributes
    assert INPUT not in attrs and OUTPUT not in attrs


def test_exception_is_recorded_and_reraised(memory):
    @observe(tracer_provider=memory.provider)
    def fails():
        raise KeyError("missing")

    with pytest.raises(KeyError):
        fails()
    (span,) = memory.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["langfuse.observation.level"] == "ERROR"
    assert "KeyError" in span.attributes["langfuse.observation.status_message"]
    assert span.events[0].name == "exception"


def test_async_function(memory):
    @observe(tracer_provider=memory.provider)
    async def fetch(x):
        await asyncio.sleep(0)
        return [x, x]

    assert asyncio.run(fetch(2)) == [2, 2]
    assert json.loads(memory.get_finished_spans()[0].attributes[OUTPUT]) == [2, 2]


def test_async_exception(memory):
    @observe(tracer_provider=memory.provider)
    async def boom():
        raise ValueError("bad")

    with pytest.raises(ValueError):
        asyncio.run(boom())
    assert memory.get_finished_spans()[0].status.status_code is StatusCode.ERROR


def test_generator_output_is_the_joined_chunks_and_children_nest(memory):
    @observe(tracer_provider=memory.provider)
    def step(i):
        return i

    @observe(name="stream", tracer_provider=memory.provider)
    def stream(n):
        for i in range(n):
            step(i)
            yield f"tok{i} "

    gen = stream(3)
    assert memory.get_finished_spans() == ()  # the span lasts as long as the iteration
    assert list(gen) == ["tok0 ", "tok1 ", "tok2 "]
    spans = memory.get_finished_spans()
    outer = spans[-1]
    assert outer.name == "stream" and outer.attributes[OUTPUT] == "tok0 tok1 tok2 "
    assert all(s.parent.span_id == outer.context.span_id for s in spans[:-1])


def test_generator_with_non_string_items_and_early_stop(memory):
    @observe(tracer_provider=memory.provider)
    def numbers():
        yield from range(100)

    gen = numbers()
    assert [next(gen), next(gen)] == [0, 1]
    gen.close()
    (span,) = memory.get_finished_spans()
    assert json.loads(span.attributes[OUTPUT]) == [0, 1]
    assert span.status.status_code is not StatusCode.ERROR


def test_generator_exception(memory):
    @observe(tracer_provider=memory.provider)
    def broken():
        yield 1
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError):
        list(broken())
    assert memory.get_finished_spans()[0].status.status_code is StatusCode.ERROR


def test_async_generator(memory):
    @observe(as_type="tool", tracer_provider=memory.provider)
    async def chunks():
        for word in ("a", "b"):
            await asyncio.sleep(0)
            yield word

    async def consume():
        return [c async for c in chunks()]

    assert asyncio.run(consume()) == ["a", "b"]
    (span,) = memory.get_finished_spans()
    assert span.attributes[TYPE] == "tool" and span.attributes[OUTPUT] == "ab"


def test_unserializable_values_fall_back_to_text(memory):
    class Opaque:
        def __str__(self):
            return "<opaque>"

    @observe(tracer_provider=memory.provider)
    def f(value):
        return {"when": value, "set": {1}}

    import datetime

    f(Opaque())
    attrs = memory.get_finished_spans()[0].attributes
    assert json.loads(attrs[INPUT]) == {"args": ["<opaque>"], "kwargs": {}}
    f(datetime.date(2026, 1, 2))
    assert json.loads(memory.get_finished_spans()[1].attributes[OUTPUT]) == {"when": "2026-01-02", "set": [1]}


def test_unknown_type_is_an_error():
    with pytest.raises(ValueError, match="as_type"):
        observe(as_type="banana")  # type: ignore[arg-type]


def test_observe_spans_pass_the_default_filter(sink, make_processor):
    processor, provider = make_processor()

    @observe(tracer_provider=provider)
    def no_genai_attributes():
        return 1

    no_genai_attributes()
    assert processor.force_flush()
    assert [s.name for s in sink.spans()] == ["no_genai_attributes"]
