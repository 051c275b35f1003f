"""Pydantic AI and Logfire spans -> observation rows, through the real precedence chain."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from semconv.mapping import map_traces_request
from tests.otlp_helpers import make_span, trace_request
from tests.semconv.conftest import decode, map_one

PYDANTIC = ("pydantic-ai", "1.0.0")
START_NS = 1_764_000_000_000_000_000


def one(attributes: dict, *, scope=PYDANTIC, kind: int = Span.SPAN_KIND_INTERNAL, **fields):
    span = make_span(attributes=attributes, **fields)
    span.kind = kind
    return map_one(scope=scope, span=span)


def map_spans(*spans: Span, scope=PYDANTIC):
    request = trace_request(list(spans))
    request.resource_spans[0].scope_spans[0].scope.name = scope[0]
    out = map_traces_request(request)
    assert out.warnings == 0
    return [decode(o) for o in out.observations], [decode(t) for t in out.traces]


ALL_MESSAGES = [
    {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
        "finish_reason": "tool_call",
    },
    {
        "role": "user",
        "parts": [{"type": "tool_call_response", "id": "call_1", "name": "get_weather", "result": "sunny"}],
    },
    {"role": "assistant", "parts": [{"type": "text", "content": "It is sunny."}], "finish_reason": "stop"},
]
EXPECTED_CONVERSATION = [
    {"role": "system", "content": "Be concise."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
        "finish_reason": "tool_call",
    },
    {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    {"role": "assistant", "content": "It is sunny.", "finish_reason": "stop"},
]
AGENT = {  # instrumentation v5 (default), capabilities/instrumentation.py
    "model_name": "gpt-4o",
    "agent_name": "weather_agent",
    "gen_ai.agent.name": "weather_agent",
    "gen_ai.agent.call.id": "run-1",
    "gen_ai.conversation.id": "conv-1",
    "gen_ai.operation.name": "invoke_agent",
    "logfire.msg": "weather_agent run",
    "final_result": "It is sunny.",
    "pydantic_ai.all_messages": json.dumps(ALL_MESSAGES),
    "gen_ai.system_instructions": '[{"type":"text","content":"Be concise."}]',
    "metadata": '{"customer":"acme","tier":2}',
    "gen_ai.aggregated_usage.input_tokens": 2000,
    "gen_ai.aggregated_usage.output_tokens": 80,
    "gen_ai.aggregated_usage.cache_read.input_tokens": 1500,
    "gen_ai.aggregated_usage.details.reasoning_tokens": 20,
    "pydantic_ai.cache.hit_ratio": 0.75,
    "logfire.json_schema": '{"type":"object"}',
}
MODEL = {  # _instrumentation.open_model_request_span
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "server.address": "api.openai.com",
    "model_request_parameters": json.dumps(
        {
            "function_tools": [{"name": "get_weather", "parameters_json_schema": {"type": "object"}}],
            "builtin_tools": [],
            "output_mode": "text",
            "output_object": None,
            "output_tools": [],
            "allow_text_output": True,
        }
    ),
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 500,
    "gen_ai.agent.name": "weather_agent",
    "gen_ai.conversation.id": "conv-1",
    "gen_ai.input.messages": json.dumps(ALL_MESSAGES[:1]),
    "gen_ai.output.messages": json.dumps([ALL_MESSAGES[1]]),
    "gen_ai.system_instructions": '[{"type":"text","content":"Be concise."}]',
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.response.finish_reasons": ["tool_call"],
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 40,
    "gen_ai.usage.cache_read.input_tokens": 800,
    "gen_ai.usage.details.cache_read_tokens": 800,
    "gen_ai.usage.details.reasoning_tokens": 10,
    "gen_ai.usage.details.accepted_prediction_tokens": 3,
    "operation.cost": 0.00123,
    "gen_ai.client.operation.time_to_first_chunk": 0.3,
}


def test_agent_span():
    observation, trace = one(AGENT, name="invoke_agent weather_agent")
    assert observation["type"] == "AGENT"
    assert observation["name"] == "weather_agent run"  # logfire.msg
    assert observation["input"] == EXPECTED_CONVERSATION
    assert observation["output"] == "It is sunny."  # a plain string stays a string
    assert observation["usage_details"] is None
    assert observation["metadata"] == {
        "customer": "acme",
        "tier": 2,
        "aggregated_usage": {"input": 500, "cache_read": 1500, "output": 60, "reasoning": 20, "total": 2080},
    }
    assert "cost_details" not in observation
    assert trace["session_id"] == "conv-1"
    assert trace["metadata"] == {"customer": "acme", "tier": 2}
    raw = observation["attributes"]
    for key in ("pydantic_ai.all_messages", "final_result", "metadata", "gen_ai.aggregated_usage.input_tokens"):
        assert key not in raw
    assert "model_name" in raw and "pydantic_ai.cache.hit_ratio" in raw


def test_model_span_usage_cost_parameters_and_timing():
    observation, _ = one(MODEL, kind=Span.SPAN_KIND_CLIENT, name="chat gpt-4o", parent=b"\x01" * 8, start_ns=START_NS)
    assert observation["type"] == "GENERATION"
    assert observation["name"] == "chat gpt-4o"
    assert (observation["model"], observation["provider"]) == ("gpt-4o-2024-08-06", "openai")
    # input 1000 counts the 800 cached and output 40 the 10 reasoning; details.cache_read_tokens is a repeat
    assert observation["usage_details"] == {
        "input": 200,
        "cache_read": 800,
        "output": 30,
        "reasoning": 10,
        "total": 1040,
    }
    assert observation["cost_details"] == {"total": 0.00123}
    assert observation["cost_source"] == "provided"
    assert observation["completion_start_time"] == START_NS // 1000 + 300_000
    assert observation["model_parameters"] == {
        "temperature": 0.2,
        "max_tokens": 500,
        "output_mode": "text",
        "allow_text_output": True,
        "tools": ["get_weather"],
    }
    assert observation["input"] == [
        {"role": "system", "content": "Be concise."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert observation["output"][0]["tool_calls"][0]["function"]["name"] == "get_weather"
    raw = observation["attributes"]
    assert "gen_ai.usage.details.accepted_prediction_tokens" in raw  # not a bucket: kept raw, never priced
    assert "model_request_parameters" in raw  # only summarised: the full object stays
    assert "operation.cost" not in raw and "gen_ai.usage.details.reasoning_tokens" not in raw


def test_agent_and_model_in_one_trace_bill_only_the_model_call():
    trace_id, agent_id, model_id = b"\x21" * 16, b"\x22" * 8, b"\x23" * 8
    agent = make_span(trace_id, agent_id, name="invoke_agent weather_agent", attributes=AGENT)
    agent.kind = Span.SPAN_KIND_INTERNAL
    model = make_span(trace_id, model_id, parent=agent_id, name="chat gpt-4o", attributes=MODEL)
    (agent_row, model_row), _ = map_spans(agent, model)
    assert agent_row["usage_details"] is None and agent_row.get("cost_details") is None
    assert model_row["usage_details"]["total"] == 1040


def test_v2_agent_run_span_with_plain_usage_keys_is_not_billed():
    """Before v3 the run's usage sat in gen_ai.usage.* with no operation name: genai alone would bill it."""
    observation, _ = one(
        {
            "model_name": "gpt-4o",
            "agent_name": "weather_agent",
            "logfire.msg": "weather_agent run",
            "final_result": '{"city": "Paris", "sunny": true}',
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.output_tokens": 80,
        },
        name="agent run",
    )
    assert observation["type"] == "AGENT"
    assert not observation["usage_details"]
    assert observation["metadata"]["aggregated_usage"] == {"input": 2000, "output": 80, "total": 2080}
    assert observation["output"] == {"city": "Paris", "sunny": True}


@pytest.mark.parametrize(
    ("attributes", "span_name", "expected_input", "expected_output"),
    [
        (  # v3+: gen_ai.tool.call.* (read by genai)
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": '{"city":"Paris"}',
                "gen_ai.tool.call.result": "sunny",
                "logfire.msg": "running tool: get_weather",
            },
            "execute_tool get_weather",
            {"city": "Paris"},
            "sunny",
        ),
        (  # v2: tool_arguments / tool_response
            {
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_1",
                "tool_arguments": '{"city":"Paris"}',
                "tool_response": "sunny",
                "logfire.msg": "running tool: get_weather",
            },
            "running tool",
            {"city": "Paris"},
            "sunny",
        ),
    ],
)
def test_tool_spans(attributes, span_name, expected_input, expected_output):
    observation, _ = one(attributes, name=span_name, parent=b"\x01" * 8)
    assert (observation["type"], observation["name"]) == ("TOOL", "get_weather")
    assert (observation["input"], observation["output"]) == (expected_input, expected_output)
    assert "logfire.msg" in observation["attributes"]  # not used as the name: kept


@pytest.mark.parametrize(
    ("suffixes", "expected"),
    [
        (  # older releases: Anthropic's raw names under details, input already includes the cache
            {
                "input_tokens": 3112,
                "output_tokens": 30,
                "details.input_tokens": 12,
                "details.cache_read_input_tokens": 3000,
                "details.cache_creation_input_tokens": 100,
            },
            {"input": 12, "cache_read": 3000, "cache_write": 100, "output": 30, "total": 3142},
        ),
        (
            {
                "input_tokens": 500,
                "output_tokens": 100,
                "details.input_audio_tokens": 200,
                "details.output_audio_tokens": 40,
            },
            {"input": 300, "input_audio": 200, "output": 60, "output_audio": 40, "total": 600},
        ),
        (
            {"input_tokens": 10, "cache_write.input_tokens": 4, "details.cache_write_tokens": 4},
            {"input": 6, "cache_write": 4, "total": 10},
        ),
    ],
)
def test_model_span_usage_details(suffixes, expected):
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
    attributes |= {"gen_ai.usage." + k: v for k, v in suffixes.items()}
    observation, _ = one(attributes, kind=Span.SPAN_KIND_CLIENT)
    assert observation["usage_details"] == expected


def test_v1_events_attribute():
    events = [
        {"event.name": "gen_ai.system.message", "content": "Be brief.", "role": "system", "gen_ai.message.index": 0},
        {"event.name": "gen_ai.user.message", "content": "Hi", "role": "user", "gen_ai.message.index": 0},
        {
            "event.name": "gen_ai.tool.message",
            "content": "sunny",
            "role": "tool",
            "id": "call_1",
            "name": "get_weather",
        },
        {"event.name": "gen_ai.choice", "index": 0, "message": {"role": "assistant", "content": "Hello"}},
    ]
    observation, _ = one(
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "events": json.dumps(events)}
    )
    assert observation["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "tool", "content": "sunny", "name": "get_weather", "tool_call_id": "call_1"},
    ]
    assert observation["output"] == [{"role": "assistant", "content": "Hello"}]
    assert "events" not in observation["attributes"]


# --- Logfire ---------------------------------------------------------------------------------------------

LOGFIRE_OPENAI = {
    "logfire.msg_template": "Chat Completion with {request_data[model]!r}",
    "logfire.msg": "Chat Completion with 'gpt-4o-mini'",
    "logfire.span_type": "span",
    "logfire.tags": ["LLM"],
    "request_data": json.dumps(
        {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "model": "gpt-4o-mini",
            "temperature": 0.5,
            "stream": False,
        }
    ),
    "gen_ai.provider.name": "openai",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.request.temperature": 0.5,
    "async": False,
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-9",
    "operation.cost": 0.000012,
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 20,
    "response_data": json.dumps(
        {
            "message": {
                "content": "Hello!",
                "refusal": None,
                "role": "assistant",
                "annotations": [],
                "audio": None,
                "function_call": None,
                "tool_calls": None,
            },
            "usage": {
                "completion_tokens": 20,
                "prompt_tokens": 1200,
                "total_tokens": 1220,
                "completion_tokens_details": {"audio_tokens": 0, "reasoning_tokens": 0},
                "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 1024},
            },
        }
    ),
}
LOGFIRE_ANTHROPIC = {
    "logfire.msg_template": "Message with {request_data[model]!r}",
    "logfire.msg": "Message with 'claude-3-5-sonnet-latest'",
    "logfire.span_type": "span",
    "request_data": json.dumps(
        {
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "model": "claude-3-5-sonnet-latest",
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        }
    ),
    "gen_ai.system": "anthropic",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "claude-3-5-sonnet-latest",
    "gen_ai.request.max_tokens": 1024,
    "gen_ai.response.model": "claude-3-5-sonnet-20241022",
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.output_tokens": 30,
    "response_data": json.dumps(
        {
            "message": {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {"id": "toolu_1", "function": {"arguments": '{"input":{"city":"Paris"}}', "name": "weather"}}
                ],
            },
            "usage": {
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 3000,
                "input_tokens": 12,
                "output_tokens": 30,
                "service_tier": "standard",
            },
        }
    ),
}


def test_logfire_openai_span():
    observation, _ = one(LOGFIRE_OPENAI, scope=("logfire.openai", "4.0.0"), kind=Span.SPAN_KIND_INTERNAL)
    assert observation["type"] == "GENERATION"
    assert observation["name"] == "Chat Completion with 'gpt-4o-mini'"
    assert observation["model"] == "gpt-4o-mini-2024-07-18"
    assert observation["input"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert observation["output"] == [{"role": "assistant", "content": "Hello!"}]
    # the raw usage knows the 1024 cached tokens the GenAI keys do not report
    assert observation["usage_details"] == {
        "input": 176,
        "cache_read": 1024,
        "input_audio": 0,
        "output": 20,
        "reasoning": 0,
        "output_audio": 0,
        "total": 1220,
    }
    assert observation["cost_details"] == {"total": 0.000012}
    assert observation["model_parameters"] == {"temperature": 0.5, "stream": False}


def test_logfire_anthropic_span_counts_input_without_the_cache():
    observation, _ = one(LOGFIRE_ANTHROPIC, scope=("logfire.anthropic", "4.0.0"))
    assert observation["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert observation["output"] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"input":{"city":"Paris"}}'},
                }
            ],
        }
    ]
    assert observation["usage_details"] == {
        "input": 12,
        "cache_read": 3000,
        "cache_write": 100,
        "output": 30,
        "total": 3142,
    }
    assert observation["model_parameters"] == {"max_tokens": 1024}


def test_logfire_anthropic_gen_ai_usage_without_raw_keeps_the_provider_convention():
    observation, _ = one(
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude",
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 1000,
        },
        scope=("logfire.anthropic", ""),
    )
    assert observation["usage_details"] == {"input": 5000, "cache_read": 1000, "output": 10, "total": 6010}


def test_logfire_streaming_response_log_carries_the_output():
    observation, _ = one(
        {
            "logfire.span_type": "log",
            "logfire.msg": "streaming response from 'gpt-4o' took 1.20s",
            "logfire.level_num": 9,
            "request_data": '{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"stream":true}',
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "duration": 1.2,
            "response_data": '{"combined_chunk_content": "Hello", "chunk_count": 2}',
        },
        scope=("logfire.openai", ""),
    )
    assert observation["type"] == "GENERATION"
    assert observation["input"] == [{"role": "user", "content": "Hi"}]
    assert observation["output"] == [{"role": "assistant", "content": "Hello"}]
    assert observation["level"] == "DEFAULT"


@pytest.mark.parametrize(
    ("template", "expected"),
    [("Chat Completion with {request_data[model]!r}", "GENERATION"), ("Embedding Creation with {x}", "EMBEDDING")],
)
def test_older_logfire_without_gen_ai_keys(template, expected):
    observation, _ = one(
        {"logfire.msg_template": template, "request_data": '{"model":"text-embedding-3-small","input":"hello"}'},
        scope=("logfire.openai", ""),
    )
    assert (observation["type"], observation["model"], observation["input"]) == (
        expected,
        "text-embedding-3-small",
        "hello",
    )


@pytest.mark.parametrize(
    ("level_num", "expected"),
    [(1, "DEBUG"), (5, "DEBUG"), (9, "DEFAULT"), (10, "DEFAULT"), (13, "WARNING"), (17, "ERROR"), (21, "ERROR")],
)
def test_logfire_levels(level_num, expected):
    observation, _ = one(
        {"logfire.span_type": "log", "logfire.msg": "user logged in", "logfire.level_num": level_num},
        scope=("logfire", "4.0.0"),
    )
    assert (observation["type"], observation["name"], observation["level"]) == ("EVENT", "user logged in", expected)


@pytest.mark.parametrize("level_num", [None, 9, 13, 5])
def test_logfire_error_status_is_never_masked_by_a_milder_level(level_num):
    attributes = {"logfire.span_type": "span", "logfire.msg": "boom"}
    attributes |= {"logfire.level_num": level_num} if level_num is not None else {}
    observation, _ = one(attributes, scope=("logfire", ""), error="bad")
    assert (observation["type"], observation["level"]) == ("SPAN", "ERROR")


def test_pending_span_is_kept_as_a_debug_placeholder():
    attributes = {
        **{k: v for k, v in AGENT.items() if not k.startswith("gen_ai.aggregated_usage")},
        "logfire.span_type": "pending_span",
        "logfire.pending_parent_id": "0000000000000001",
    }
    observation, _ = one(attributes, name="invoke_agent weather_agent", parent=b"\x05" * 8)
    assert (observation["type"], observation["level"], observation["name"]) == ("SPAN", "DEBUG", "weather_agent run")
    assert observation["usage_details"] is None
    assert observation["attributes"]["logfire.span_type"] == "pending_span"


def test_logfire_other_scope_with_logfire_keys_gets_name():
    observation, _ = one(
        {"logfire.msg": "GET /users", "http.method": "GET"}, scope=("opentelemetry.instrumentation.httpx", "")
    )
    assert observation["name"] == "GET /users"


@pytest.mark.parametrize(
    "garbage",
    [
        {"pydantic_ai.all_messages": "nope", "final_result": ""},
        {"pydantic_ai.all_messages": "[1, 2]", "gen_ai.system_instructions": "{"},
        {"metadata": "[1, 2]"},
        {"metadata": "{broken"},
        {"gen_ai.aggregated_usage.input_tokens": "x", "gen_ai.usage.output_tokens": -3},
        {"operation.cost": "free"},
        {"request_data": "{", "response_data": "[]"},
        {"request_data": '{"messages": "x", "model": 5}', "response_data": '{"message": 3}'},
        {"events": "[1, 2, {}]"},
        {"all_messages_events": '[{"event.name": "gen_ai.choice", "message": 7}]'},
        {"logfire.level_num": "high"},
        {"logfire.span_type": 5},
        {"model_request_parameters": '{"function_tools": 5, "output_tools": [3, {"name": 4}]}'},
        {"gen_ai.client.operation.time_to_first_chunk": "soon"},
        {"gen_ai.usage.raw": '{"prompt_tokens": "a", "prompt_tokens_details": 4}'},
        {"tool_arguments": "{", "tool_response": ""},
    ],
)
@pytest.mark.parametrize("scope", [PYDANTIC, ("logfire.openai", "")])
def test_garbage_values_still_map(garbage, scope):
    span = make_span(attributes={"gen_ai.operation.name": "chat", **garbage})
    (observation,), _ = map_spans(span, scope=scope)
    assert observation["id"] == span.span_id.hex()


def test_garbage_metadata_is_wrapped_not_lost():
    observation, _ = one({"gen_ai.operation.name": "invoke_agent", "metadata": "[1, 2]"})
    assert observation["metadata"] == {"metadata": [1, 2]}
