"""OpenLIT spans (current OTel-style and the older flattened-string style) -> observation rows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from semconv.dialects import openlit
from semconv.encoded_span import from_message
from semconv.extract import SpanView
from semconv.mapping import map_traces_request
from tests.otlp_helpers import kv, make_span, trace_request

JSON_COLUMNS = ("input", "output", "metadata", "model_parameters", "attributes")
START_NS = 1_764_000_000_000_000_000


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, list):
        return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=[kv("_", v).value for v in value])))
    return kv(key, value)


def _map(
    attrs: dict[str, Any],
    *,
    events: tuple[tuple[str, dict[str, Any]], ...] = (),
    scope: str = "openlit.otel.tracing",
    resource: dict[str, Any] | None = None,
    name: str = "span",
) -> tuple[dict, dict | None]:
    span = make_span(name=name, start_ns=START_NS)
    span.attributes.extend(_kv(k, v) for k, v in attrs.items())
    for event_name, event_attrs in events:
        span.events.add(name=event_name, time_unix_nano=START_NS).attributes.extend(
            _kv(k, v) for k, v in event_attrs.items()
        )
    request = trace_request([span])
    request.resource_spans[0].scope_spans[0].scope.name = scope
    if resource is not None:
        request.resource_spans[0].resource.attributes.extend(_kv(k, v) for k, v in resource.items())
    out = map_traces_request(request)
    assert out.warnings == 0  # the dialect never raised
    [row] = out.observations
    obs = {k: json.loads(v) if k in JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()}
    return obs, (out.traces[0] if out.traces else None)


def _raw(obs: dict) -> dict:
    return obs["attributes"] or {}


# ---- recognition --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "scope", "resource", "recognised"),
    [
        ({"telemetry.sdk.name": "openlit"}, "tests", {}, True),
        ({}, "openlit.otel.tracing", {}, True),
        ({}, "tests", {"telemetry.sdk.name": "openlit"}, True),
        ({"gen_ai.usage.cost": 0.1, "gen_ai.sdk.version": "1.34.0"}, "tests", {}, True),
        ({"gen_ai.usage.cost": 0.1}, "tests", {}, False),
        ({"telemetry.sdk.name": "opentelemetry"}, "opentelemetry.instrumentation.openai_v2", {}, False),
    ],
)
def test_recognition(attrs, scope, resource, recognised):
    view = SpanView.of(attrs, resource, scope, "", from_message(make_span()))
    assert openlit.DIALECT.matches(view) is recognised


# ---- a current OpenLIT chat span ----------------------------------------------------------------

CURRENT_OPENAI = {
    "telemetry.sdk.name": "openlit",
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "server.address": "api.openai.com",
    "server.port": 443,
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 512,
    "gen_ai.request.seed": 7,
    "gen_ai.request.user": "end-user-3",
    "gen_ai.request.is_stream": True,
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.output.type": "text",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 400,
    "gen_ai.usage.total_tokens": 1600,
    "gen_ai.usage.prompt_tokens_details.cached_tokens": 1024,
    "gen_ai.usage.completion_tokens_details.reasoning_tokens": 256,
    "gen_ai.usage.cost": 0.0042,
    "gen_ai.server.time_to_first_token": 0.25,
    "gen_ai.server.time_per_output_token": 0.01,
    "gen_ai.sdk.version": "1.35.2",
    "deployment.environment": "production",
    "service.name": "rag-app",
    "gen_ai.system_instructions": '[{"type": "text", "content": "You are helpful."}]',
    "gen_ai.input.messages": json.dumps(
        [
            {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
            },
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18C"}]},
        ]
    ),
    "gen_ai.output.messages": json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "It is 18C."}], "finish_reason": "stop"}]
    ),
    "gen_ai.content.reasoning": "The tool said 18C.",
}


def test_current_chat_span():
    obs, _ = _map(CURRENT_OPENAI, name="chat gpt-4o")
    assert (obs["type"], obs["model"], obs["provider"]) == ("GENERATION", "gpt-4o-2024-08-06", "openai")
    assert obs["model_parameters"] == {
        "temperature": 0.2,
        "max_tokens": 512,
        "seed": 7,
        "user": "end-user-3",
        "is_stream": True,
    }
    # OpenAI counts the cache inside input and reasoning inside output
    assert obs["usage_details"] == {"input": 176, "cache_read": 1024, "output": 144, "reasoning": 256, "total": 1600}
    assert (obs["cost_details"], obs["total_cost"], obs["cost_source"]) == ({"total": 0.0042}, 0.0042, "provided")
    assert obs["completion_start_time"] == START_NS // 1000 + 250_000
    assert obs["environment"] == "production"
    assert obs["input"] == [
        {"role": "system", "content": "You are helpful."},
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
        {"role": "tool", "content": "18C", "tool_call_id": "call_1"},
    ]
    assert obs["output"] == [
        {"role": "assistant", "content": "It is 18C.", "finish_reason": "stop", "reasoning": "The tool said 18C."}
    ]
    raw = _raw(obs)
    assert "gen_ai.content.reasoning" not in raw and "gen_ai.usage.cost" not in raw
    assert raw["gen_ai.sdk.version"] == "1.35.2"


@pytest.mark.parametrize(
    ("provider", "usage"),
    [
        # Anthropic's own input_tokens exclude the cache; OpenLIT passes them through
        ("anthropic", {"input": 3000, "cache_read": 1000, "cache_write": 200, "output": 50, "total": 4250}),
        ("aws.bedrock", {"input": 3000, "cache_read": 1000, "cache_write": 200, "output": 50, "total": 4250}),
        # OpenAI's include it
        ("openai", {"input": 1800, "cache_read": 1000, "cache_write": 200, "output": 50, "total": 3050}),
    ],
)
def test_cache_convention_follows_the_provider(provider, usage):
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.usage.input_tokens": 3000,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 200,
        }
    )
    assert obs["usage_details"] == usage


def test_usage_detail_keys():
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.usage.input_tokens": 500,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.prompt_tokens_details.cached_tokens": 100,
            "gen_ai.usage.prompt_tokens_details.cache_creation_tokens": 50,
            "gen_ai.usage.completion_tokens_details.reasoning_tokens": 120,
            "gen_ai.usage.completion_tokens_details.audio_tokens": 30,
        }
    )
    assert obs["usage_details"] == {
        "input": 350,
        "cache_read": 100,
        "cache_write": 50,
        "output": 150,
        "reasoning": 120,
        "output_audio": 30,
        "total": 800,
    }


# ---- older OpenLIT: flattened strings and content events ----------------------------------------


def test_legacy_flattened_prompt_strings_stay_strings():
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-3.5-turbo",
            "gen_ai.environment": "staging",
            "gen_ai.application_name": "demo",
            "gen_ai.prompt": "system: You are helpful.\nuser: What is LLM observability?",
            "gen_ai.completion": "LLM observability is the practice of ...",
            "gen_ai.usage.input_tokens": 20,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.total_tokens": 30,
            "gen_ai.usage.cost": 0.00004,
        },
        scope="openlit.otel.tracing",
    )
    assert obs["input"] == "system: You are helpful.\nuser: What is LLM observability?"
    assert obs["output"] == "LLM observability is the practice of ..."
    assert obs["usage_details"] == {"input": 20, "output": 10, "total": 30}
    assert obs["environment"] == "staging"  # old span-level gen_ai.environment
    assert "gen_ai.environment" not in _raw(obs)


def test_legacy_content_span_events():
    obs, _ = _map(
        {"telemetry.sdk.name": "openlit", "gen_ai.system": "anthropic", "gen_ai.operation.name": "chat"},
        events=(
            ("gen_ai.content.prompt", {"gen_ai.prompt": "user: Hello"}),
            ("gen_ai.content.completion", {"gen_ai.completion": "Hi there!"}),
        ),
    )
    assert (obs["input"], obs["output"]) == ("user: Hello", "Hi there!")


def test_standard_environment_key_wins_over_the_legacy_one():
    obs, _ = _map({"telemetry.sdk.name": "openlit", "deployment.environment": "prod", "gen_ai.environment": "x"})
    assert obs["environment"] == "prod"
    assert _raw(obs)["gen_ai.environment"] == "x"


# ---- operation names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"gen_ai.operation.name": "chat"}, "GENERATION"),
        ({"gen_ai.operation.name": "embeddings"}, "EMBEDDING"),
        ({"gen_ai.operation.name": "image", "gen_ai.request.model": "dall-e-3"}, "GENERATION"),
        ({"gen_ai.operation.name": "audio", "gen_ai.request.model": "tts-1"}, "GENERATION"),
        ({"gen_ai.operation.name": "translate"}, "GENERATION"),
        ({"gen_ai.operation.name": "speech_to_text"}, "GENERATION"),
        ({"gen_ai.operation.name": "vectordb", "db.operation.name": "QUERY"}, "RETRIEVER"),
        ({"gen_ai.operation.name": "vectordb", "db.operation.name": "search"}, "RETRIEVER"),
        ({"gen_ai.operation.name": "vectordb", "db.operation.name": "UPSERT"}, "SPAN"),
        ({"gen_ai.operation.name": "vectordb"}, "SPAN"),
        ({"gen_ai.operation.name": "retrieve"}, "RETRIEVER"),
        ({"gen_ai.operation.name": "retrieval"}, "RETRIEVER"),
        ({"gen_ai.operation.name": "execute_task"}, "AGENT"),
        ({"gen_ai.operation.name": "agent"}, "AGENT"),
        ({"gen_ai.operation.name": "invoke_agent"}, "AGENT"),
        ({"gen_ai.operation.name": "workflow"}, "CHAIN"),
        ({"gen_ai.operation.name": "framework"}, "CHAIN"),
        ({"gen_ai.operation.name": "graph_execution"}, "CHAIN"),
        ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}, "TOOL"),
        ({"gen_ai.operation.name": "memory"}, "SPAN"),
        ({"gen_ai.operation.name": "fine_tuning", "gen_ai.request.model": "gpt-4o-mini"}, "GENERATION"),
    ],
)
def test_operation_names(attrs, expected):
    obs, _ = _map({"telemetry.sdk.name": "openlit", **attrs})
    assert obs["type"] == expected


# ---- agent spans, cost, tools, retrieval --------------------------------------------------------


def test_agent_run_usage_and_cost_are_aggregated_not_billed():
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "execute_task",
            "gen_ai.provider.name": "ag2",
            "gen_ai.agent.name": "assistant",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 900,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cost": 0.01,
        },
        name="execute_task assistant",
    )
    assert obs["type"] == "AGENT"
    assert not obs["usage_details"] and not obs.get("cost_details")
    assert obs["metadata"] == {
        "aggregated_usage": {"input": 900, "output": 100, "total": 1000},
        "aggregated_cost": 0.01,
    }


def test_agent_cost_without_usage_is_not_billed():
    obs, _ = _map({"telemetry.sdk.name": "openlit", "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.cost": 0.5})
    assert obs.get("cost_details") is None and obs["usage_details"] is None
    assert obs["metadata"] == {"aggregated_cost": 0.5}


def test_client_invoke_agent_span_is_not_billed_either():
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
        }
    )
    assert not obs["usage_details"]
    assert obs["metadata"]["aggregated_usage"] == {"input": 10, "output": 5, "total": 15}


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        (0, None),  # "not in OpenLIT's price list": the collector prices it
        (0.0, None),
        (0.002, {"total": 0.002}),
    ],
)
def test_zero_cost_with_tokens_is_not_a_provided_cost(cost, expected):
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "my-finetune",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.usage.cost": cost,
        }
    )
    assert obs.get("cost_details") == expected
    if expected is None:
        assert _raw(obs)["gen_ai.usage.cost"] == cost


def test_tool_span_with_openlit_keys():
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "web_search",
            "gen_ai.tool.call.id": "call_9",
            "gen_ai.tool.args": '{"query": "otel"}',
            "gen_ai.tool.output": "3 results",
        },
        name="execute_tool web_search",
    )
    assert (obs["type"], obs["name"]) == ("TOOL", "web_search")
    assert (obs["input"], obs["output"]) == ({"query": "otel"}, "3 results")


def test_tool_span_standard_keys_win():
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "web_search",
            "gen_ai.tool.call.arguments": '{"query": "standard"}',
            "gen_ai.tool.call.result": '"ok"',
            "gen_ai.tool.args": '{"query": "custom"}',
        }
    )
    assert (obs["input"], obs["output"]) == ({"query": "standard"}, "ok")
    assert _raw(obs)["gen_ai.tool.args"] == '{"query": "custom"}'


def test_retrieval_query_and_documents():
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "retrieve",
            "gen_ai.retrieval.query": "what is openlit?",
            "gen_ai.retrieval.documents": '[{"id": "d1", "content": "OpenLIT is..."}]',
        }
    )
    assert obs["input"] == "what is openlit?"
    assert obs["output"] == [{"id": "d1", "content": "OpenLIT is..."}]


def test_reasoning_is_not_overwritten():
    attrs = {
        "telemetry.sdk.name": "openlit",
        "gen_ai.operation.name": "chat",
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "reasoning", "content": "mine"}, {"type": "text", "content": "A"}],
                }
            ]
        ),
        "gen_ai.content.reasoning": "theirs",
    }
    obs, _ = _map(attrs)
    assert obs["output"] == [{"role": "assistant", "content": "A", "reasoning": "mine"}]
    assert _raw(obs)["gen_ai.content.reasoning"] == "theirs"


# ---- garbage ------------------------------------------------------------------------------------


def test_odd_values_still_map():
    obs, _ = _map(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": 17,
            "gen_ai.provider.name": ["not", "a", "string"],
            "gen_ai.usage.input_tokens": "a few",
            "gen_ai.usage.output_tokens": -3,
            "gen_ai.usage.cost": "cheap",
            "gen_ai.server.time_to_first_token": "soon",
            "gen_ai.output.messages": "{broken",
            "gen_ai.content.reasoning": 5,
            "gen_ai.environment": "",
            "db.operation.name": None,
        },
        name="chat ???",
    )
    assert obs["type"] == "SPAN"
    assert obs["usage_details"] is None and obs.get("cost_details") is None
    assert obs["completion_start_time"] is None
    assert obs["output"] == "{broken"


def test_aggregating_span_without_usage_keeps_genai_defaults():
    obs, _ = _map({"telemetry.sdk.name": "openlit", "gen_ai.operation.name": "workflow"}, name="workflow run")
    assert (obs["type"], obs["usage_details"], obs["metadata"]) == ("CHAIN", None, None)
    assert obs["name"] == "workflow run"
