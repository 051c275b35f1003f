"""Masking applies to content attributes at export, on a copy, and fails closed."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from exporters import FAILED_MASK_PLACEHOLDER
from exporters.masking import is_masked_key
from tests.exporters.conftest import attributes

SECRET = "sk-live-4242"


def redact(value):
    return value.replace(SECRET, "[REDACTED]") if isinstance(value, str) else value


def test_mask_rewrites_content_attributes_of_every_dialect(sink, make_processor):
    processor, provider = make_processor(mask=redact)
    content = {
        "langfuse.observation.input": json.dumps({"args": [SECRET]}),
        "langfuse.observation.output": f"the key is {SECRET}",
        "langfuse.observation.metadata.note": SECRET,
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": SECRET}]}]),
        "gen_ai.system_instructions": SECRET,
        "input.value": SECRET,
        "llm.input_messages.0.message.content": SECRET,
    }
    span = provider.get_tracer("app").start_span("x", attributes={**content, "gen_ai.request.model": SECRET})
    span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": SECRET})
    span.end()
    assert processor.force_flush()
    (exported,) = sink.spans()
    sent = attributes(exported)
    for key in content:
        assert SECRET not in sent[key] and "[REDACTED]" in sent[key], key
    assert sent["gen_ai.request.model"] == SECRET  # not content: untouched
    assert {kv.key: kv.value.string_value for kv in exported.events[0].attributes} == {"gen_ai.prompt": "[REDACTED]"}


def test_failing_mask_sends_a_placeholder_and_logs_once(sink, make_processor, caplog):
    def broken(value):
        raise RuntimeError("mask bug")

    processor, provider = make_processor(mask=broken)
    with caplog.at_level(logging.ERROR, logger="exporters"):
        for _ in range(3):
            provider.get_tracer("app").start_span("x", attributes={"input.value": SECRET, "gen_ai.system": "o"}).end()
        assert processor.force_flush()
    assert [attributes(s)["input.value"] for s in sink.spans()] == [FAILED_MASK_PLACEHOLDER] * 3
    assert all(attributes(s)["gen_ai.system"] == "o" for s in sink.spans())
    assert processor.stats["mask_failures"] == 3
    assert len([r for r in caplog.records if "mask function raised" in r.getMessage()]) == 1


def test_mask_results_that_are_not_attribute_values_are_sent_as_text(sink, make_processor):
    processor, provider = make_processor(mask=lambda value: {"masked": True})
    provider.get_tracer("app").start_span("x", attributes={"output.value": SECRET, "gen_ai.system": "o"}).end()
    assert processor.force_flush()
    assert attributes(sink.spans()[0])["output.value"] == "{'masked': True}"


def test_other_processors_still_see_the_original_values(sink, make_processor):
    memory = InMemorySpanExporter()
    processor, provider = make_processor(mask=redact)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("app").start_span("x", attributes={"input.value": SECRET, "gen_ai.system": "o"}).end()
    assert processor.force_flush()
    assert attributes(sink.spans()[0])["input.value"] == "[REDACTED]"
    assert memory.get_finished_spans()[0].attributes["input.value"] == SECRET


def test_masked_keys():
    for key in ("langfuse.trace.input", "langfuse.trace.metadata.k", "gen_ai.output.messages", "output.value"):
        assert is_masked_key(key)
    for key in ("gen_ai.request.model", "gen_ai.usage.input_tokens", "http.url", "langfuse.user.id"):
        assert not is_masked_key(key)
