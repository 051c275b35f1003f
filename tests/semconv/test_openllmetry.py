"""OpenLLMetry / Traceloop spans (early, legacy and current generations) -> observation rows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

import semconv.registry as registry
from semconv.dialects import genai, langfuse, openinference, openllmetry
from semconv.mapping import map_traces_request
from tests.otlp_helpers import kv, make_span, trace_request

JSON_COLUMNS = ("input", "output", "metadata", "model_parameters", "attributes")


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, list):
        return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=[kv("_", v).value for v in value])))
    return kv(key, value)


def _map(
    attrs: dict[str, Any], *, kind: int | None = None, name: str = "span", scope: str = "tests"
) -> tuple[dict, dict | None]:
    span = make_span(name=name)
    span.attributes.extend(_kv(k, v) for k, v in attrs.items())
    if kind is not None:
        span.kind = kind
    request = trace_request([span])
    request.resource_spans[0].scope_spans[0].scope.name = scope
    out = map_traces_request(request)
    assert out.warnings == 0  # the dialect never raised
    [row] = out.observations
    obs = {k: json.loads(v) if k in JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()}
    trace = out.traces[0] if out.traces else None
    if trace and trace["metadata"]:
        trace = {**trace, "metadata": json.loads(trace["metadata"])}
    return obs, trace


def _raw(obs: dict) -> dict:
    return obs["attributes"] or {}


def _call(call_id: str | None, name: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# ---- recognition and type -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"llm.request.type": "chat"}, "GENERATION"),
        ({"llm.request.type": "completion"}, "GENERATION"),
        ({"llm.request.type": "embedding"}, "EMBEDDING"),
        ({"llm.request.type": "rerank"}, "RETRIEVER"),
        ({"llm.request.type": "unknown"}, "SPAN"),
        ({"traceloop.span.kind": "workflow"}, "CHAIN"),
        ({"traceloop.span.kind": "task"}, "SPAN"),
        ({"traceloop.span.kind": "agent"}, "AGENT"),
        ({"traceloop.span.kind": "tool"}, "TOOL"),
        ({"traceloop.span.kind": "unknown"}, "SPAN"),
        ({"traceloop.span.kind": "task", "llm.request.type": "chat"}, "GENERATION"),
        ({"traceloop.span.kind": "task", "gen_ai.operation.name": "chat"}, "GENERATION"),
        ({"traceloop.span.kind": "workflow", "gen_ai.operation.name": "execute_task"}, "AGENT"),
        ({"traceloop.workflow.name": "w", "gen_ai.operation.name": "llm_request"}, "GENERATION"),
        ({"traceloop.workflow.name": "w", "gen_ai.operation.name": "vector_db_retrieve"}, "RETRIEVER"),
        ({"traceloop.workflow.name": "w", "gen_ai.operation.name": "invoke_agent"}, "AGENT"),
    ],
)
def test_type(attrs, expected):
    obs, _ = _map(attrs)
    assert obs["type"] == expected


@pytest.mark.parametrize(
    ("attrs", "scope", "recognised"),
    [
        ({"traceloop.entity.name": "x"}, "tests", True),
        ({}, "traceloop.tracer", True),
        ({"llm.usage.total_tokens": 5}, "tests", True),
        ({"llm.vendor": "OpenAI"}, "tests", True),
        ({"gen_ai.prompt.0.user": "hi"}, "tests", True),
        ({"gen_ai.completion.0.content": "hi"}, "tests", True),
        ({"gen_ai.request.model": "gpt-4o"}, "opentelemetry.instrumentation.openai_v2", False),
        ({"llm.model_name": "gpt-4o"}, "tests", False),
        ({"openinference.span.kind": "LLM", "llm.prompts.0.role": "user"}, "tests", False),
    ],
)
def test_recognition(attrs, scope, recognised):
    from semconv.encoded_span import from_message
    from semconv.extract import SpanView

    span = make_span(attributes=attrs)
    view = SpanView.of(attrs, {}, scope, "", from_message(span))
    assert openllmetry.DIALECT.matches(view) is recognised


# ---- early generation (≤ v0.16) -----------------------------------------------------------------

EARLY = {
    "llm.vendor": "OpenAI",
    "llm.request.type": "chat",
    "llm.request.model": "gpt-3.5-turbo",
    "llm.response.model": "gpt-3.5-turbo-0613",
    "llm.request.max_tokens": 100,
    "llm.temperature": 0.7,
    "llm.top_p": 1.0,
    "llm.frequency_penalty": 0.5,
    "llm.presence_penalty": 0.0,
    "llm.chat.stop_sequences": ["\n\n"],
    "llm.is_streaming": False,
    "llm.user": "end-user-9",
    "llm.headers": "{'X-Trace': '1'}",
    "llm.usage.prompt_tokens": 12,
    "llm.usage.completion_tokens": 8,
    "llm.usage.total_tokens": 20,
    "llm.prompts.0.role": "system",
    "llm.prompts.0.content": "You tell jokes.",
    "llm.prompts.1.role": "user",
    "llm.prompts.1.content": "Tell me a joke about OpenTelemetry",
    "llm.completions.0.role": "assistant",
    "llm.completions.0.content": "Why did the span break up with the trace?",
    "llm.completions.0.finish_reason": "stop",
}


def test_early_generation():
    obs, _ = _map(EARLY, name="openai.chat")
    assert obs["type"] == "GENERATION"
    assert (obs["model"], obs["provider"]) == ("gpt-3.5-turbo-0613", "OpenAI")
    assert obs["model_parameters"] == {
        "max_tokens": 100,
        "temperature": 0.7,
        "top_p": 1.0,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.0,
        "stop_sequences": ["\n\n"],
        "stream": False,
        "user": "end-user-9",
    }
    assert obs["usage_details"] == {"input": 12, "output": 8, "total": 20}
    assert obs["input"] == [
        {"role": "system", "content": "You tell jokes."},
        {"role": "user", "content": "Tell me a joke about OpenTelemetry"},
    ]
    assert obs["output"] == [
        {"role": "assistant", "content": "Why did the span break up with the trace?", "finish_reason": "stop"}
    ]
    assert set(_raw(obs)) == {"llm.request.type", "llm.headers", "llm.request.model"}  # the model not used stays


# ---- legacy indexed gen_ai.prompt.N (v0.17 - v0.54, still in many packages) -----------------------

LEGACY_OPENAI_TOOLS = {
    "gen_ai.system": "openai",
    "llm.request.type": "chat",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 512,
    "llm.is_streaming": True,
    "llm.request.functions.0.name": "get_weather",
    "llm.request.functions.0.parameters": '{"type": "object"}',
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "You are a weather bot.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "Weather in Paris and Rome?",
    "gen_ai.prompt.2.role": "assistant",
    "gen_ai.prompt.2.tool_calls.0.id": "call_1",
    "gen_ai.prompt.2.tool_calls.0.name": "get_weather",
    "gen_ai.prompt.2.tool_calls.0.arguments": '{"city": "Paris"}',
    "gen_ai.prompt.3.role": "tool",
    "gen_ai.prompt.3.content": "18C",
    "gen_ai.prompt.3.tool_call_id": "call_1",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.finish_reason": "tool_calls",
    "gen_ai.completion.0.tool_calls.0.id": "call_2",
    "gen_ai.completion.0.tool_calls.0.name": "get_weather",
    "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Rome"}',
    "gen_ai.usage.prompt_tokens": 1200,
    "gen_ai.usage.completion_tokens": 400,
    "llm.usage.total_tokens": 1600,
    "gen_ai.usage.cache_read_input_tokens": 1024,
    "llm.usage.reasoning_tokens": 256,
}


def test_legacy_openai_chat_with_tool_calls_cache_and_reasoning():
    obs, _ = _map(LEGACY_OPENAI_TOOLS, name="openai.chat")
    assert (obs["type"], obs["model"], obs["provider"]) == ("GENERATION", "gpt-4o-2024-08-06", "openai")
    assert obs["model_parameters"] == {"temperature": 0.2, "max_tokens": 512, "stream": True}
    # OpenAI-style numbers: prompt includes the cached tokens, completion includes reasoning
    assert obs["usage_details"] == {"input": 176, "cache_read": 1024, "output": 144, "reasoning": 256, "total": 1600}
    assert obs["input"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [_call("call_1", "get_weather", '{"city": "Paris"}')]},
        {"role": "tool", "content": "18C", "tool_call_id": "call_1"},
    ]
    assert obs["output"] == [
        {
            "role": "assistant",
            "content": None,
            "finish_reason": "tool_calls",
            "tool_calls": [_call("call_2", "get_weather", '{"city": "Rome"}')],
        }
    ]
    raw = _raw(obs)
    assert not any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.", "llm.usage.")) for k in raw)
    assert raw["llm.request.functions.0.name"] == "get_weather"


LEGACY_ANTHROPIC = {
    "gen_ai.system": "Anthropic",
    "llm.request.type": "chat",
    "gen_ai.request.model": "claude-3-7-sonnet-latest",
    "gen_ai.response.model": "claude-3-7-sonnet-20250219",
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "Be brief.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": json.dumps(
        [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "text", "text": "What is this?"},
        ]
    ),
    "gen_ai.prompt.2.role": "assistant",
    "gen_ai.prompt.2.content": "Let me look it up.",
    "gen_ai.prompt.2.tool_calls.0.id": "toolu_1",
    "gen_ai.prompt.2.tool_calls.0.name": "lookup",
    "gen_ai.prompt.2.tool_calls.0.arguments": '{"q": "cat"}',
    "gen_ai.prompt.3.role": "user",
    "gen_ai.prompt.3.content": json.dumps([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"}]),
    "gen_ai.completion.0.role": "thinking",
    "gen_ai.completion.0.content": "The tool says cat.",
    "gen_ai.completion.1.role": "assistant",
    "gen_ai.completion.1.content": "A cat.",
    "gen_ai.completion.0.finish_reason": "end_turn",
    # input = input_tokens + cache_read + cache_creation (OpenLLMetry Anthropic)
    "gen_ai.usage.input_tokens": 1520,
    "gen_ai.usage.output_tokens": 80,
    "llm.usage.total_tokens": 1600,
    "gen_ai.usage.cache_read_input_tokens": 1000,
    "gen_ai.usage.cache_creation_input_tokens": 500,
}


def test_legacy_anthropic_multimodal_tool_result_thinking_and_cache():
    obs, _ = _map(LEGACY_ANTHROPIC, name="anthropic.chat")
    assert (obs["model"], obs["provider"]) == ("claude-3-7-sonnet-20250219", "Anthropic")  # normalised by pricing
    assert obs["usage_details"] == {"input": 20, "cache_read": 1000, "cache_write": 500, "output": 80, "total": 1600}
    assert obs["input"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                {"type": "text", "text": "What is this?"},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look it up.",
            "tool_calls": [_call("toolu_1", "lookup", '{"q": "cat"}')],
        },
        {"role": "tool", "content": "a cat", "tool_call_id": "toolu_1"},
    ]
    assert obs["output"] == [{"role": "assistant", "content": "A cat.", "reasoning": "The tool says cat."}]


def test_anthropic_numbers_that_exclude_the_cache_are_trusted():
    attrs = {
        "gen_ai.system": "Anthropic",
        "llm.request.type": "chat",
        "gen_ai.usage.input_tokens": 20,
        "gen_ai.usage.output_tokens": 80,
        "llm.usage.total_tokens": 100,
        "gen_ai.usage.cache_read_input_tokens": 1000,
    }
    obs, _ = _map(attrs)
    assert obs["usage_details"] == {"input": 20, "cache_read": 1000, "output": 80, "total": 1100}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('"quoted text"', "quoted text"),  # json.dumps of a string
        ("[1, 2, 3]", "[1, 2, 3]"),  # JSON, but not content parts: the text stays
        ("plain text", "plain text"),
        ("{broken", "{broken"),
    ],
)
def test_legacy_content_decoding(content, expected):
    obs, _ = _map({"llm.request.type": "chat", "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": content})
    assert obs["input"] == [{"role": "user", "content": expected}]


def test_replicate_style_user_prompt_and_completion_api():
    obs, _ = _map(
        {
            "gen_ai.system": "Replicate",
            "llm.request.type": "completion",
            "gen_ai.request.model": "meta/llama-2-70b-chat",
            "gen_ai.prompt.0.user": "Write a haiku about tracing",
            "gen_ai.completion.0.content": "Spans fall like leaves",
        },
        name="replicate.run",
    )
    assert obs["input"] == [{"role": "user", "content": "Write a haiku about tracing"}]
    assert obs["output"] == "Spans fall like leaves"  # a bare completion text stays a string


def test_legacy_refusal_and_function_call():
    obs, _ = _map(
        {
            "llm.request.type": "chat",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.refusal": "I can't help with that.",
            "gen_ai.completion.1.role": "assistant",
            "gen_ai.completion.1.function_call.name": "lookup",
            "gen_ai.completion.1.function_call.arguments": "{}",
        }
    )
    assert obs["output"] == [
        {"role": "assistant", "content": "I can't help with that."},
        {"role": "assistant", "content": None, "tool_calls": [_call(None, "lookup", "{}")]},
    ]


def test_embedding_inputs_without_roles():
    obs, _ = _map(
        {
            "gen_ai.system": "openai",
            "llm.request.type": "embedding",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.prompt.0.content": "first text",
            "gen_ai.prompt.1.content": "second text",
            "gen_ai.usage.prompt_tokens": 6,
            "llm.usage.total_tokens": 6,
        },
        name="openai.embeddings",
    )
    assert obs["type"] == "EMBEDDING"
    assert obs["input"] == ["first text", "second text"]
    assert obs["usage_details"] == {"input": 6, "total": 6}


# ---- current generation: left to genai ------------------------------------------------------------


def test_current_generation_is_read_by_genai():
    attrs = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "llm.request.type": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.system_instructions": '[{"type": "text", "content": "Be nice."}]',
        "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]',
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}]
        ),
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 2,
        "gen_ai.usage.total_tokens": 12,
        "gen_ai.usage.reasoning_tokens": 1,
        "gen_ai.is_streaming": False,
    }
    obs, _ = _map(attrs, name="openai.chat")
    assert obs["input"] == [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"}]
    assert obs["output"] == [{"role": "assistant", "content": "Hello!", "finish_reason": "stop"}]
    assert obs["usage_details"] == {"input": 10, "output": 1, "reasoning": 1, "total": 12}
    assert obs["model_parameters"] == {"stream": False}


def test_aggregated_usage_on_an_in_process_agent_span_is_not_billed():
    obs, _ = _map(
        {
            "traceloop.span.kind": "agent",
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "llm.usage.total_tokens": 120,
        },
        kind=Span.SPAN_KIND_INTERNAL,
    )
    assert obs["usage_details"] is None
    assert obs["metadata"]["aggregated_usage"] == {"input": 100, "output": 20, "total": 120}


# ---- Traceloop decorators -----------------------------------------------------------------------


def test_workflow_span_with_entity_input_output_and_association_properties():
    obs, trace = _map(
        {
            "traceloop.span.kind": "workflow",
            "traceloop.entity.name": "joke_generation",
            "traceloop.workflow.name": "joke_generation",
            "traceloop.entity.path": "",
            "traceloop.entity.version": 2,
            "traceloop.entity.input": '{"args": ["OpenTelemetry"], "kwargs": {"style": "pun"}}',
            "traceloop.entity.output": '"Why did the span..."',
            "traceloop.association.properties.session_id": "sess-1",
            "traceloop.association.properties.user_id": "user-1",
            "traceloop.association.properties.tenant": "acme",
            "traceloop.association.properties.ls_model_name": "gpt-4o",
        },
        name="joke_generation.workflow",
        scope="traceloop.tracer",
    )
    assert (obs["type"], obs["name"]) == ("CHAIN", "joke_generation.workflow")
    assert obs["input"] == {"args": ["OpenTelemetry"], "kwargs": {"style": "pun"}}
    assert obs["output"] == "Why did the span..."
    assert obs["metadata"] == {"tenant": "acme", "ls_model_name": "gpt-4o"}
    assert trace["metadata"] == {"tenant": "acme", "ls_model_name": "gpt-4o"}
    assert (trace["session_id"], trace["user_id"], trace["name"]) == ("sess-1", "user-1", "joke_generation.workflow")
    raw = _raw(obs)
    assert raw["traceloop.workflow.name"] == "joke_generation" and raw["traceloop.entity.version"] == 2
    assert not any(k.startswith("traceloop.association.") for k in raw)
    assert "traceloop.entity.input" not in raw


@pytest.mark.parametrize(
    ("attrs", "name"),
    [
        ({"traceloop.span.kind": "tool", "traceloop.entity.name": "get_weather"}, "get_weather"),
        (
            {"traceloop.span.kind": "tool", "traceloop.entity.name": "get_weather", "gen_ai.tool.name": "weather"},
            "weather",
        ),
        ({"traceloop.span.kind": "task", "traceloop.entity.name": "parse"}, "parse.task"),
        ({"traceloop.span.kind": "agent", "traceloop.entity.name": "planner"}, "planner.agent"),
    ],
)
def test_names(attrs, name):
    span_name = f"{attrs['traceloop.entity.name']}.{attrs['traceloop.span.kind']}"
    obs, _ = _map({**attrs, "traceloop.entity.output": "[1, 2]"}, name=span_name)
    assert obs["name"] == name
    assert obs["output"] == [1, 2]


def test_messages_win_over_entity_input():
    obs, _ = _map(
        {
            "llm.request.type": "chat",
            "traceloop.entity.input": '{"inputs": {"question": "hi"}, "tags": [], "metadata": {}, "kwargs": {}}',
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hi",
        }
    )
    assert obs["input"] == [{"role": "user", "content": "hi"}]
    assert "traceloop.entity.input" in _raw(obs)


def test_langchain_entity_input_chat_messages_are_normalised():
    obs, _ = _map(
        {
            "traceloop.span.kind": "task",
            "traceloop.entity.output": '[{"role": "assistant", "content": [{"type": "text", "text": "ok"}]}]',
        }
    )
    assert obs["output"] == [{"role": "assistant", "content": "ok"}]


# ---- precedence with OpenInference ---------------------------------------------------------------


def test_openinference_llm_keys_are_not_read_as_openllmetry(monkeypatch):
    chain = (langfuse.DIALECT, openinference.DIALECT, openllmetry.DIALECT, genai.DIALECT)
    monkeypatch.setattr(registry, "DIALECTS", chain)
    obs, _ = _map(
        {
            "openinference.span.kind": "LLM",
            "llm.prompts.0.prompt.text": "Once upon a time",
            "llm.token_count.prompt": 4,
        }
    )
    assert (obs["type"], obs["input"], obs["usage_details"]) == (
        "GENERATION",
        "Once upon a time",
        {"input": 4, "total": 4},
    )


# ---- garbage --------------------------------------------------------------------------------------


def test_odd_values_still_map():
    obs, _ = _map(
        {
            "llm.request.type": 42,
            "traceloop.span.kind": "",
            "llm.usage.prompt_tokens": "many",
            "llm.usage.completion_tokens": -1,
            "llm.usage.total_tokens": "NaN",
            "llm.temperature": "hot",
            "traceloop.entity.input": "{not json",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "first",
            "gen_ai.prompt.3.role": ["not", "a", "string"],  # gap, odd role
            "gen_ai.prompt.3.content": "fourth",
            "gen_ai.prompt.4": "scalar",
            "gen_ai.prompt.99999999999.role": "user",  # hostile index: skipped
            "gen_ai.completion.0.tool_calls.0": "bad",
            "gen_ai.completion.0.tool_calls.1.name": "ok",
            "traceloop.association.properties.": "empty key",
        }
    )
    assert obs["type"] == "SPAN"
    assert obs["usage_details"] is None
    assert obs["model_parameters"] == {"temperature": "hot"}
    assert obs["input"] == [{"role": "user", "content": "first"}, {"role": "user", "content": "fourth"}]
    assert obs["output"] == [{"role": "assistant", "content": None, "tool_calls": [_call(None, "ok", None)]}]
    raw = _raw(obs)
    assert (raw["traceloop.entity.input"], raw["llm.usage.prompt_tokens"]) == ("{not json", "many")
