"""OTel GenAI semantic conventions, every generation -> observation rows."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from semconv.dialects.genai import log_content
from tests.otlp_helpers import kv, make_span
from tests.semconv.conftest import map_one


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("chat", "GENERATION"),
        ("text_completion", "GENERATION"),
        ("generate_content", "GENERATION"),
        ("embeddings", "EMBEDDING"),
        ("retrieval", "RETRIEVER"),
        ("create_agent", "AGENT"),
        ("invoke_agent", "AGENT"),
        ("execute_tool", "TOOL"),
        ("invoke_workflow", "CHAIN"),
        ("apply_guardrail", "GUARDRAIL"),
        ("something_new", "SPAN"),
    ],
)
def test_operation_name_sets_the_type(operation, expected):
    observation, _ = map_one({"gen_ai.operation.name": operation, "gen_ai.provider.name": "openai"})
    assert observation["type"] == expected


def test_unknown_operation_with_a_model_is_a_generation():
    observation, _ = map_one({"gen_ai.operation.name": "something_new", "gen_ai.request.model": "m"})
    assert observation["type"] == "GENERATION"


def test_tool_keys_without_operation_make_a_tool():
    observation, _ = map_one(
        {
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.id": "c1",
            "gen_ai.tool.call.arguments": '{"city": "Paris"}',
            "gen_ai.tool.call.result": "sunny",
        },
        name="running tool",
    )
    assert (observation["type"], observation["name"]) == ("TOOL", "get_weather")
    assert observation["input"] == {"city": "Paris"}
    assert observation["output"] == "sunny"


def test_model_provider_and_parameters():
    observation, _ = map_one(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.request.temperature": 0.3,
            "gen_ai.request.max_tokens": 256,
            "gen_ai.request.stop_sequences": ["END"],
            "gen_ai.openai.request.response_format": "json_object",
        }
    )
    assert observation["model"] == "gpt-4o-2024-08-06"  # the model that answered
    assert observation["provider"] == "openai"
    assert observation["model_parameters"] == {
        "temperature": 0.3,
        "max_tokens": 256,
        "stop_sequences": ["END"],
        "response_format": "json_object",
    }


# The cache / reasoning matrix: semconv counts cache inside input and reasoning inside output.
USAGE_CASES = {
    "openai cached + reasoning": (
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 500,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.reasoning.output_tokens": 300,
        },
        {"input": 200, "cache_read": 1000, "output": 200, "reasoning": 300, "total": 1700},
    ),
    "anthropic per semconv (input includes cache)": (
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.usage.input_tokens": 1150,
            "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 100,
        },
        {"input": 50, "cache_read": 1000, "cache_write": 100, "output": 40, "total": 1190},
    ),
    "anthropic raw numbers (input excludes cache)": (
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.usage.input_tokens": 50,
            "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_write.input_tokens": 100,
        },
        {"input": 50, "cache_read": 1000, "cache_write": 100, "output": 40, "total": 1190},
    ),
    "gemini with thoughts": (
        {
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.usage.input_tokens": 250_000,
            "gen_ai.usage.output_tokens": 900,
            "gen_ai.usage.cache_read.input_tokens": 200_000,
            "gen_ai.usage.reasoning.output_tokens": 600,
        },
        {"input": 50_000, "cache_read": 200_000, "output": 300, "reasoning": 600, "total": 250_900},
    ),
    "bedrock claude": (
        {
            "gen_ai.provider.name": "aws.bedrock",
            "gen_ai.usage.input_tokens": 300,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 200,
        },
        {"input": 100, "cache_read": 200, "output": 20, "total": 320},
    ),
    "old names": (
        {"gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 5},
        {"input": 10, "output": 5, "total": 15},
    ),
    "openlit details": (
        {
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.total_tokens": 150,
            "gen_ai.usage.prompt_tokens_details.cached_tokens": 60,
            "gen_ai.usage.completion_tokens_details.reasoning_tokens": 10,
        },
        {"input": 40, "cache_read": 60, "output": 40, "reasoning": 10, "total": 150},
    ),
    "non-numeric counts are ignored": (
        {"gen_ai.usage.input_tokens": "lots", "gen_ai.usage.output_tokens": "7"},
        {"output": 7, "total": 7},
    ),
}


@pytest.mark.parametrize(("attributes", "usage"), USAGE_CASES.values(), ids=USAGE_CASES.keys())
def test_usage_buckets_are_disjoint(attributes, usage):
    observation, _ = map_one({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", **attributes})
    assert observation["usage_details"] == usage
    assert "gen_ai.usage.input_tokens" not in (observation["attributes"] or {})


def test_messages_with_system_instructions_and_tool_calls():
    observation, _ = map_one(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
            "gen_ai.input.messages": json.dumps(
                [
                    {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
                        ],
                    },
                    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]},
                ]
            ),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}]
            ),
        }
    )
    assert observation["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ]
    assert observation["output"] == [{"role": "assistant", "content": "Sunny.", "finish_reason": "stop"}]


def test_multimodal_parts_are_kept():
    observation, _ = map_one(
        {
            "gen_ai.input.messages": json.dumps(
                [
                    {
                        "role": "user",
                        "parts": [
                            {"type": "text", "content": "What is this?"},
                            {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
                        ],
                    }
                ]
            ),
        }
    )
    assert observation["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
            ],
        }
    ]


def _span_with_events(*events: tuple[str, dict]) -> Span:
    span = make_span(attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "openai"})
    for name, attributes in events:
        event = span.events.add(name=name, time_unix_nano=span.start_time_unix_nano)
        event.attributes.extend(kv(k, v) for k, v in attributes.items())
    return span


def test_old_content_span_events():
    span = _span_with_events(
        ("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps([{"role": "user", "content": "hi"}])}),
        ("gen_ai.content.completion", {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "yo"}])}),
    )
    observation, _ = map_one(span=span)
    assert observation["input"] == [{"role": "user", "content": "hi"}]
    assert observation["output"] == [{"role": "assistant", "content": "yo"}]


def test_per_message_span_events():
    span = _span_with_events(
        ("gen_ai.system.message", {"content": "Be nice."}),
        ("gen_ai.user.message", {"content": "hi"}),
        ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hey"}}),
    )
    observation, _ = map_one(span=span)
    assert observation["input"] == [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "hi"}]
    assert observation["output"] == [{"role": "assistant", "content": "hey"}]


def test_operation_details_span_event():
    span = _span_with_events(
        (
            "gen_ai.client.inference.operation.details",
            {
                "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
                "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}],
            },
        )
    )
    observation, _ = map_one(span=span)
    assert observation["input"] == [{"role": "user", "content": "hi"}]
    assert observation["output"] == [{"role": "assistant", "content": "yo"}]


def test_in_process_agent_usage_is_shown_but_not_billed():
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "planner",
        "gen_ai.usage.input_tokens": 500,
        "gen_ai.usage.output_tokens": 50,
    }
    span = make_span(attributes=attributes)
    span.kind = Span.SPAN_KIND_INTERNAL  # an in-process agent: its model calls are its children
    internal, _ = map_one(span=span)
    assert internal["usage_details"] is None
    assert internal["metadata"]["aggregated_usage"] == {"input": 500, "output": 50, "total": 550}
    remote = make_span(attributes=attributes)  # make_span builds CLIENT spans: a remote agent bills itself
    observation, _ = map_one(span=remote)
    assert observation["usage_details"] == {"input": 500, "output": 50, "total": 550}


def test_pydantic_aggregated_usage_is_not_billed():
    observation, _ = map_one(
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.aggregated_usage.input_tokens": 70,
            "gen_ai.aggregated_usage.output_tokens": 7,
        }
    )  # even on a CLIENT span
    assert observation["usage_details"] is None
    assert observation["metadata"]["aggregated_usage"] == {"input": 70, "output": 7, "total": 77}


def test_provided_cost_and_time_to_first_chunk():
    observation, _ = map_one(
        {"gen_ai.operation.name": "chat", "gen_ai.usage.cost": 0.0123, "gen_ai.response.time_to_first_chunk": 0.25},
        start_ns=1_000_000_000_000,
    )
    assert observation["cost_details"] == {"total": 0.0123}
    assert observation["cost_source"] == "provided"
    assert observation["completion_start_time"] == 1_000_000_000 + 250_000


def test_error_type_explains_an_error_without_message():
    span = make_span(attributes={"gen_ai.operation.name": "chat", "error.type": "RateLimitError"})
    span.status.code = 2
    observation, _ = map_one(span=span)
    assert (observation["level"], observation["status_message"]) == ("ERROR", "RateLimitError")


def test_conversation_id_is_the_session():
    _, trace = map_one({"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "conv-9"})
    assert trace["session_id"] == "conv-9"


@pytest.mark.parametrize(
    ("event", "body", "attributes", "expected"),
    [
        ("gen_ai.user.message", {"content": "hi"}, {}, ([{"role": "user", "content": "hi"}], None)),
        ("gen_ai.system.message", {"content": "rules"}, {}, ([{"role": "system", "content": "rules"}], None)),
        (
            "gen_ai.assistant.message",
            {"tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {},
            (
                [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    }
                ],
                None,
            ),
        ),
        (
            "gen_ai.tool.message",
            {"content": "42", "id": "c"},
            {},
            ([{"role": "tool", "content": "42", "tool_call_id": "c"}], None),
        ),
        (
            "gen_ai.choice",
            {"index": 0, "finish_reason": "stop", "message": {"content": "yo"}},
            {},
            (None, [{"role": "assistant", "content": "yo", "finish_reason": "stop"}]),
        ),
        (
            "gen_ai.client.inference.operation.details",
            None,
            {
                "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "a"}]}],
                "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "b"}]}],
            },
            ([{"role": "user", "content": "a"}], [{"role": "assistant", "content": "b"}]),
        ),
        ("some.other.event", {"x": 1}, {}, (None, None)),
    ],
)
def test_log_record_content(event, body, attributes, expected):
    assert log_content(event, body, attributes) == expected
