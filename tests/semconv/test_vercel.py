"""Vercel AI SDK spans (legacy ``ai.*`` and v7 ``gen_ai``) -> observation rows, through the real precedence chain."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from semconv.mapping import map_traces_request
from tests.otlp_helpers import make_span, trace_request
from tests.semconv.conftest import decode, map_one

LEGACY = ("ai", "")
V7 = ("gen_ai", "")
START_NS = 1_764_000_000_000_000_000


def legacy(attributes: dict, **fields):
    return map_one(attributes, scope=LEGACY, **fields)


def map_spans(*spans: Span, scope: tuple[str, str] = LEGACY):
    request = trace_request(list(spans))
    request.resource_spans[0].scope_spans[0].scope.name = scope[0]
    out = map_traces_request(request)
    assert out.warnings == 0
    return [decode(o) for o in out.observations], [decode(t) for t in out.traces]


# Realistic attribute sets (AI SDK v5, generateText with one tool round trip, OpenAI).
OUTER = {
    "operation.name": "ai.generateText weather-agent",
    "resource.name": "weather-agent",
    "ai.operationId": "ai.generateText",
    "ai.telemetry.functionId": "weather-agent",
    "ai.model.id": "gpt-4o",
    "ai.model.provider": "openai.chat",
    "ai.settings.maxRetries": 2,
    "ai.settings.maxOutputTokens": 500,
    "ai.prompt": json.dumps({"system": "You are a weather bot.", "prompt": "Weather in Paris?"}),
    "ai.response.text": "It is sunny in Paris.",
    "ai.response.finishReason": "stop",
    "ai.usage.inputTokens": 2400,
    "ai.usage.outputTokens": 60,
    "ai.usage.totalTokens": 2460,
    "ai.usage.cachedInputTokens": 1024,
    "ai.telemetry.metadata.userId": "user-7",
    "ai.telemetry.metadata.sessionId": "chat-42",
    "ai.telemetry.metadata.tags": '["prod", "weather"]',
    "ai.telemetry.metadata.tenant": "acme",
}
DO_GENERATE = {
    "operation.name": "ai.generateText.doGenerate weather-agent",
    "ai.operationId": "ai.generateText.doGenerate",
    "ai.telemetry.functionId": "weather-agent",
    "ai.model.id": "gpt-4o",
    "ai.model.provider": "openai.chat",
    "ai.settings.maxRetries": 2,
    "ai.settings.maxOutputTokens": 500,
    "ai.prompt.messages": json.dumps(
        [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool-call", "toolCallId": "call_1", "toolName": "weather", "input": {"city": "Paris"}}
                ],
            },
            {
                "role": "tool",
                "content": [
                    {
                        "type": "tool-result",
                        "toolCallId": "call_1",
                        "toolName": "weather",
                        "output": {"type": "text", "value": "sunny"},
                    }
                ],
            },
        ]
    ),
    "ai.prompt.tools": ['{"type":"function","name":"weather","inputSchema":{"type":"object"}}'],
    "ai.prompt.toolChoice": '{"type":"auto"}',
    "gen_ai.system": "openai.chat",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.request.max_tokens": 500,
    "gen_ai.request.temperature": 0.2,
    "ai.response.text": "It is sunny in Paris.",
    "ai.response.finishReason": "stop",
    "ai.response.id": "chatcmpl-1",
    "ai.response.model": "gpt-4o-2024-08-06",
    "ai.response.providerMetadata": json.dumps({"openai": {"reasoningTokens": 0, "cachedPromptTokens": 1024}}),
    "ai.response.msToFirstChunk": 412.5,
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.response.finish_reasons": ["stop"],
    "ai.usage.inputTokens": 1300,
    "ai.usage.outputTokens": 40,
    "ai.usage.totalTokens": 1340,
    "ai.usage.cachedInputTokens": 1024,
    "gen_ai.usage.input_tokens": 1300,
    "gen_ai.usage.output_tokens": 40,
}


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("ai.generateText", "AGENT"),
        ("ai.streamText", "AGENT"),
        ("ai.generateObject", "AGENT"),
        ("ai.streamObject", "AGENT"),
        ("ai.embed", "CHAIN"),
        ("ai.embedMany", "CHAIN"),
        ("ai.rerank", "CHAIN"),
        ("ai.generateText.doGenerate", "GENERATION"),
        ("ai.streamText.doStream", "GENERATION"),
        ("ai.generateObject.doGenerate", "GENERATION"),
        ("ai.streamObject.doStream", "GENERATION"),
        ("ai.embed.doEmbed", "EMBEDDING"),
        ("ai.embedMany.doEmbed", "EMBEDDING"),
        ("ai.rerank.doRerank", "RETRIEVER"),
        ("ai.toolCall", "TOOL"),
    ],
)
def test_operation_id_sets_the_type(operation, expected):
    observation, _ = legacy({"ai.operationId": operation, "ai.model.id": "m"})
    assert observation["type"] == expected


@pytest.mark.parametrize(
    ("attributes", "span_name"),
    [
        ({"operation.name": "ai.streamText.doStream my-fn"}, "whatever"),  # operation.name = "{op} {functionId}"
        ({}, "ai.streamText.doStream"),  # scope ai: the span name is the operation id
    ],
)
def test_operation_without_operation_id(attributes, span_name):
    observation, _ = legacy({**attributes, "ai.model.id": "gpt-4o"}, name=span_name)
    assert (observation["type"], observation["name"]) == ("GENERATION", "ai.streamText.doStream")


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (
            {"ai.operationId": "ai.generateText", "ai.telemetry.functionId": "weather-agent"},
            "weather-agent:ai.generateText",
        ),
        ({"ai.operationId": "ai.generateText"}, "ai.generateText"),
        ({"ai.operationId": "ai.toolCall", "ai.toolCall.name": "weather", "ai.telemetry.functionId": "f"}, "weather"),
    ],
)
def test_name_rules(attributes, expected):
    observation, _ = legacy(attributes, name="span")
    assert observation["name"] == expected


def test_model_provider_and_parameters_of_a_provider_call():
    observation, _ = legacy(DO_GENERATE)
    assert observation["model"] == "gpt-4o"  # ai.model.id before ai.response.model
    assert observation["provider"] == "openai.chat"
    assert observation["model_parameters"] == {
        "max_tokens": 500,  # gen_ai.request.max_tokens and ai.settings.maxOutputTokens: one key
        "temperature": 0.2,
        "maxRetries": 2,
        "tool_choice": {"type": "auto"},
    }


def test_response_model_when_no_model_id():
    observation, _ = legacy({"ai.operationId": "ai.generateText.doGenerate", "ai.response.model": "claude-x-1"})
    assert observation["model"] == "claude-x-1"


def test_provider_call_content_usage_and_timing():
    observation, trace = legacy(DO_GENERATE, start_ns=START_NS)
    assert observation["type"] == "GENERATION"
    assert observation["name"] == "weather-agent:ai.generateText.doGenerate"
    assert observation["input"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "content": '{"type":"text","value":"sunny"}', "tool_call_id": "call_1"},
    ]
    assert observation["output"] == [{"role": "assistant", "content": "It is sunny in Paris.", "finish_reason": "stop"}]
    # OpenAI counts the cache inside input: 1300 = 276 uncached + 1024 cached.
    assert observation["usage_details"] == {
        "input": 276,
        "cache_read": 1024,
        "output": 40,
        "reasoning": 0,
        "total": 1340,
    }
    assert observation["completion_start_time"] == START_NS // 1000 + 412_500
    assert observation["metadata"]["tools"] == [
        {"type": "function", "name": "weather", "inputSchema": {"type": "object"}}
    ]
    assert trace is not None and trace["id"] == observation["trace_id"]  # root span -> trace row


def test_mapped_keys_leave_the_raw_attributes_but_identifiers_stay():
    observation, _ = legacy(DO_GENERATE)
    raw = observation["attributes"]
    for key in (
        "ai.prompt.messages",
        "ai.response.text",
        "ai.usage.inputTokens",
        "ai.settings.maxRetries",
        "ai.model.id",
        "ai.prompt.tools",
        "ai.response.msToFirstChunk",
        "gen_ai.usage.input_tokens",
    ):
        assert key not in raw
    for key in ("ai.operationId", "operation.name", "ai.response.providerMetadata", "ai.response.id"):
        assert key in raw


def test_outer_call_usage_is_aggregated_not_billed_and_the_provider_call_is():
    trace_id, root_id, child_id = b"\x01" * 16, b"\x02" * 8, b"\x03" * 8
    outer = make_span(trace_id, root_id, name="ai.generateText", attributes=OUTER)
    child = make_span(trace_id, child_id, parent=root_id, name="ai.generateText.doGenerate", attributes=DO_GENERATE)
    (root, call), traces = map_spans(outer, child)
    assert root["type"] == "AGENT"
    assert root["usage_details"] is None
    assert root["metadata"]["aggregated_usage"] == {"input": 1376, "cache_read": 1024, "output": 60, "total": 2460}
    assert call["usage_details"]["total"] == 1340
    assert root["input"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    trace = next(t for t in traces if t["observation_id"] == root_id.hex())
    assert trace["name"] == "weather-agent:ai.generateText"
    assert (trace["user_id"], trace["session_id"], trace["tags"]) == ("user-7", "chat-42", ["prod", "weather"])
    assert trace["metadata"] == {"tenant": "acme"}
    assert trace["output"] == [{"role": "assistant", "content": "It is sunny in Paris.", "finish_reason": "stop"}]


def test_outer_call_with_gen_ai_usage_keys_still_bills_nothing():
    """A higher-precedence "not billed" must beat genai's reading of the same span's gen_ai.usage.* keys."""
    observation, _ = legacy({**OUTER, "gen_ai.usage.input_tokens": 2400, "gen_ai.usage.output_tokens": 60})
    assert not observation["usage_details"]
    assert observation["metadata"]["aggregated_usage"]["total"] == 2460


ANTHROPIC_META = {
    "anthropic": {
        "usage": {
            "input_tokens": 7,
            "cache_creation_input_tokens": 2089,
            "cache_read_input_tokens": 16399,
            "cache_creation": {"ephemeral_5m_input_tokens": 2089, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 445,
        },
        "cacheCreationInputTokens": 2089,
        "stopSequence": None,
    }
}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(  # AI SDK v5: Anthropic's input excludes the cache; cache write only in provider metadata
            {
                "ai.model.provider": "anthropic.messages",
                "ai.usage.inputTokens": 7,
                "ai.usage.outputTokens": 445,
                "ai.usage.totalTokens": 452,
                "ai.usage.cachedInputTokens": 16399,
                "ai.response.providerMetadata": json.dumps(ANTHROPIC_META),
            },
            {"input": 7, "cache_read": 16399, "cache_write": 2089, "output": 445, "total": 18940},
            id="anthropic-v5-exclusive",
        ),
        pytest.param(  # same without the raw provider usage: the provider rule decides
            {
                "ai.model.provider": "anthropic.messages",
                "ai.usage.promptTokens": 7,
                "ai.usage.completionTokens": 445,
                "ai.response.providerMetadata": json.dumps(
                    {"anthropic": {"cacheCreationInputTokens": 2089, "cacheReadInputTokens": 16399}}
                ),
            },
            {"input": 7, "cache_read": 16399, "cache_write": 2089, "output": 445, "total": 18940},
            id="anthropic-v4-provider-metadata",
        ),
        pytest.param(  # small cache, large uncached input: still not subtracted for Anthropic
            {
                "ai.model.provider": "anthropic.messages",
                "ai.usage.inputTokens": 5000,
                "ai.usage.outputTokens": 100,
                "ai.usage.cachedInputTokens": 1000,
            },
            {"input": 5000, "cache_read": 1000, "output": 100, "total": 6100},
            id="anthropic-small-cache",
        ),
        pytest.param(  # AI SDK v6+: input normalised to include the cache, details give the exact split
            {
                "ai.model.provider": "anthropic.messages",
                "ai.usage.inputTokens": 18495,
                "ai.usage.outputTokens": 445,
                "ai.usage.cachedInputTokens": 16399,
                "ai.usage.inputTokenDetails.noCacheTokens": 7,
                "ai.usage.inputTokenDetails.cacheReadTokens": 16399,
                "ai.usage.inputTokenDetails.cacheWriteTokens": 2089,
            },
            {"input": 7, "cache_read": 16399, "cache_write": 2089, "output": 445, "total": 18940},
            id="anthropic-v6-details",
        ),
        pytest.param(  # v7 legacy object step: no details, but the raw Anthropic count shows input is inclusive
            {
                "ai.model.provider": "anthropic.messages",
                "ai.usage.inputTokens": 18495,
                "ai.usage.outputTokens": 445,
                "ai.usage.cachedInputTokens": 16399,
                "ai.response.providerMetadata": json.dumps(ANTHROPIC_META),
            },
            {"input": 7, "cache_read": 16399, "cache_write": 2089, "output": 445, "total": 18940},
            id="anthropic-inclusive-by-raw-count",
        ),
        pytest.param(  # OpenAI counts the cache inside input
            {
                "ai.model.provider": "openai.responses",
                "ai.usage.inputTokens": 5000,
                "ai.usage.outputTokens": 300,
                "ai.usage.totalTokens": 5300,
                "ai.usage.cachedInputTokens": 1000,
                "ai.usage.reasoningTokens": 200,
            },
            {"input": 4000, "cache_read": 1000, "output": 100, "reasoning": 200, "total": 5300},
            id="openai-inclusive",
        ),
        pytest.param(  # Bedrock: input excludes the cache; cache counts in provider metadata
            {
                "ai.model.provider": "amazon-bedrock",
                "ai.usage.inputTokens": 50,
                "ai.usage.outputTokens": 20,
                "ai.response.providerMetadata": json.dumps(
                    {"bedrock": {"usage": {"cacheReadInputTokens": 4482, "cacheWriteInputTokens": 0}}}
                ),
            },
            {"input": 50, "cache_read": 4482, "cache_write": 0, "output": 20, "total": 4552},
            id="bedrock-exclusive",
        ),
        pytest.param(  # Google before v6: reasoning (thoughts) counted beside the output, as the total shows
            {
                "ai.model.provider": "google.generative-ai",
                "ai.usage.inputTokens": 100,
                "ai.usage.outputTokens": 50,
                "ai.usage.reasoningTokens": 300,
                "ai.usage.totalTokens": 450,
            },
            {"input": 100, "output": 50, "reasoning": 300, "total": 450},
            id="google-reasoning-beside-output",
        ),
        pytest.param(  # v6 output details: text tokens are the exact non-reasoning output
            {
                "ai.model.provider": "openai.responses",
                "ai.usage.inputTokens": 100,
                "ai.usage.outputTokens": 350,
                "ai.usage.outputTokenDetails.textTokens": 50,
                "ai.usage.outputTokenDetails.reasoningTokens": 300,
            },
            {"input": 100, "output": 50, "reasoning": 300, "total": 450},
            id="v6-output-details",
        ),
    ],
)
def test_usage_buckets_follow_each_providers_counting(attributes, expected):
    observation, _ = legacy({"ai.operationId": "ai.streamText.doStream", "ai.model.id": "m", **attributes})
    assert observation["usage_details"] == expected


def test_embedding_usage_and_values():
    observation, _ = legacy(
        {
            "ai.operationId": "ai.embedMany.doEmbed",
            "ai.model.id": "text-embedding-3-small",
            "ai.model.provider": "openai.embedding",
            "ai.values": ['"sunny day"', '"rainy day"'],
            "ai.embeddings": ["[0.1,0.2]", "[0.3,0.4]"],
            "ai.usage.tokens": 6,
        }
    )
    assert observation["type"] == "EMBEDDING"
    assert observation["input"] == ["sunny day", "rainy day"]
    assert observation["usage_details"] == {"input": 6, "total": 6}
    assert "ai.embeddings" in observation["attributes"]  # vectors are not mapped


def test_outer_embed_is_not_billed():
    observation, _ = legacy(
        {"ai.operationId": "ai.embed", "ai.model.id": "e", "ai.value": '"hi"', "ai.usage.tokens": 3}
    )
    assert observation["input"] == "hi"
    assert observation["usage_details"] is None
    assert observation["metadata"]["aggregated_usage"] == {"input": 3, "total": 3}


def test_tool_call_span():
    observation, trace = legacy(
        {
            "operation.name": "ai.toolCall weather-agent",
            "ai.operationId": "ai.toolCall",
            "ai.telemetry.functionId": "weather-agent",
            "ai.toolCall.name": "weather",
            "ai.toolCall.id": "call_1",
            "ai.toolCall.args": '{"city":"Paris"}',
            "ai.toolCall.result": '"sunny"',
        },
        parent=b"\x09" * 8,
    )
    assert (observation["type"], observation["name"]) == ("TOOL", "weather")
    assert observation["input"] == {"city": "Paris"}
    assert observation["output"] == "sunny"  # a plain string stays a string
    assert observation["usage_details"] is None
    assert trace is None  # not a root, no trace facts


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            {"system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}]},
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        ),
        (  # v7 legacy: instructions as system messages
            {"system": [{"role": "system", "content": "A"}, {"role": "system", "content": "B"}], "messages": []},
            [{"role": "system", "content": "A\nB"}],
        ),
        (
            {"prompt": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
            [{"role": "user", "content": "Hi"}],
        ),
        ({"system": None, "prompt": "Hi", "messages": None}, [{"role": "user", "content": "Hi"}]),
        ({"other": 1}, {"other": 1}),  # not a prompt: kept as it came
    ],
)
def test_outer_prompt_becomes_chat_with_system_first(prompt, expected):
    observation, _ = legacy({"ai.operationId": "ai.streamText", "ai.prompt": json.dumps(prompt)})
    assert observation["input"] == expected


def test_plain_string_prompt_stays_a_string():
    observation, _ = legacy({"ai.operationId": "ai.generateText", "ai.prompt": "just words"})
    assert observation["input"] == "just words"


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (  # v5+ tool calls: input is an object
            {
                "ai.response.text": "Checking.",
                "ai.response.toolCalls": '[{"toolCallId":"c1","toolName":"weather","input":{"city":"Paris"}}]',
            },
            [
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                }
            ],
        ),
        (  # ≤v4: args is a JSON string, no text
            {"ai.response.toolCalls": '[{"toolCallType":"function","toolCallId":"c1","toolName":"w","args":"{}"}]'},
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
                }
            ],
        ),
        (
            {"ai.response.text": "Yes.", "ai.response.reasoning": "User wants yes."},
            [{"role": "assistant", "content": "Yes.", "reasoning": "User wants yes."}],
        ),
        ({"ai.result.text": "old"}, [{"role": "assistant", "content": "old"}]),
        ({"ai.response.object": '{"city":"Paris","temp":21}'}, {"city": "Paris", "temp": 21}),
        ({"ai.result.object": '{"a":1}'}, {"a": 1}),
    ],
)
def test_outputs(attributes, expected):
    observation, _ = legacy({"ai.operationId": "ai.generateText.doGenerate", **attributes})
    assert observation["output"] == expected


def test_prompt_link_only_on_generations():
    prompt = {"ai.telemetry.metadata.langfusePrompt": '{"name":"weather-prompt","version":3}'}
    call, _ = legacy({"ai.operationId": "ai.generateText.doGenerate", **prompt})
    outer, _ = legacy({"ai.operationId": "ai.generateText", **prompt})
    assert (call["prompt_name"], call["prompt_version"]) == ("weather-prompt", 3)
    assert (outer["prompt_name"], outer["prompt_version"]) == (None, None)
    assert "ai.telemetry.metadata.langfusePrompt" not in call["attributes"]
    assert outer["metadata"] is None  # reserved keys are never metadata


def test_metadata_and_runtime_context():
    observation, trace = legacy(
        {
            "ai.operationId": "ai.generateText",
            "ai.telemetry.metadata.tenant": "acme",
            "ai.telemetry.metadata.plan": 3,
            "ai.telemetry.metadata.userId": "u1",
            "ai.settings.runtimeContext.requestId": "r-9",
        }
    )
    assert observation["metadata"] == {"tenant": "acme", "plan": 3, "context": {"requestId": "r-9"}}
    assert trace["metadata"] == {"tenant": "acme", "plan": 3}
    assert trace["user_id"] == "u1"
    assert "runtimeContext.requestId" not in (observation["model_parameters"] or {})


def test_stream_first_chunk_time():
    observation, _ = legacy(
        {"ai.operationId": "ai.streamText.doStream", "ai.stream.msToFirstChunk": 120}, start_ns=START_NS
    )
    assert observation["completion_start_time"] == START_NS // 1000 + 120_000


@pytest.mark.parametrize(
    "garbage",
    [
        {"ai.prompt": "{not json"},
        {"ai.prompt.messages": "garbage"},
        {"ai.prompt.messages": '[1, "two", null]'},
        {"ai.prompt": '{"system": 5, "prompt": 7, "messages": "x"}'},
        {"ai.response.providerMetadata": "nope"},
        {"ai.response.providerMetadata": '{"anthropic": "x", "openai": [1], "bedrock": {"usage": 3}}'},
        {"ai.usage.inputTokens": "abc", "ai.usage.outputTokens": -5, "ai.usage.totalTokens": "NaN"},
        {"ai.telemetry.metadata.langfusePrompt": "not-json"},
        {"ai.telemetry.metadata.langfusePrompt": '{"name": 5, "version": "x"}'},
        {"ai.response.msToFirstChunk": "soon"},
        {"ai.response.msToFirstChunk": -1},
        {"ai.response.toolCalls": "[broken"},
        {"ai.response.toolCalls": '[1, null, {"toolName": 5}]'},
        {"ai.toolCall.args": "{", "ai.toolCall.result": ""},
        {"ai.values": 42, "ai.prompt.tools": 7},
        {"ai.operationId": "ai."},
        {"ai.operationId": 12},
    ],
)
def test_garbage_values_still_map(garbage):
    attributes = {"ai.operationId": "ai.streamText.doStream", "ai.model.id": "m", **garbage}
    span = make_span(attributes=attributes)
    (observation,), _ = map_spans(span)
    assert observation["id"] == span.span_id.hex()


def test_garbage_gets_no_completion_start_and_keeps_text():
    observation, _ = legacy(
        {
            "ai.operationId": "ai.streamText.doStream",
            "ai.response.msToFirstChunk": "soon",
            "ai.prompt.messages": "garbage",
        }
    )
    assert observation["completion_start_time"] is None
    assert observation["input"] == "garbage"


# --- v7 OpenTelemetry integration (scope gen_ai) ---------------------------------------------------------


def _v7_span(attributes: dict, kind: int, **fields) -> Span:
    span = make_span(attributes=attributes, **fields)
    span.kind = kind
    return span


def test_v7_agent_root_usage_is_aggregated_and_chat_call_is_billed():
    trace_id, root_id, step_id, chat_id = b"\x11" * 16, b"\x12" * 8, b"\x13" * 8, b"\x14" * 8
    root = _v7_span(
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.agent.name": "weather-agent",
            "gen_ai.usage.input_tokens": 18495,
            "gen_ai.usage.output_tokens": 445,
            "gen_ai.usage.cache_read.input_tokens": 16399,
            "gen_ai.usage.cache_creation.input_tokens": 2089,
            "ai.usage.inputTokenDetails.noCacheTokens": 7,
        },
        Span.SPAN_KIND_INTERNAL,
        trace_id=trace_id,
        span_id=root_id,
        name="invoke_agent claude-sonnet-4-5",
    )
    step = _v7_span(
        {
            "gen_ai.operation.name": "agent_step",
            "ai.usage.inputTokenDetails.noCacheTokens": 7,
            "ai.usage.outputTokenDetails.textTokens": 400,
            "ai.usage.outputTokenDetails.reasoningTokens": 45,
        },
        Span.SPAN_KIND_INTERNAL,
        trace_id=trace_id,
        span_id=step_id,
        parent=root_id,
        name="step 1",
    )
    chat = _v7_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 18495,
            "gen_ai.usage.output_tokens": 445,
            "gen_ai.usage.cache_read.input_tokens": 16399,
            "gen_ai.usage.cache_creation.input_tokens": 2089,
            "ai.usage.outputTokenDetails.reasoningTokens": 45,
            "gen_ai.client.operation.time_to_first_chunk": 0.25,
        },
        Span.SPAN_KIND_CLIENT,
        trace_id=trace_id,
        span_id=chat_id,
        parent=step_id,
        name="chat claude-sonnet-4-5",
        start_ns=START_NS,
    )
    (root_row, step_row, chat_row), _ = map_spans(root, step, chat, scope=V7)
    assert root_row["type"] == "AGENT"
    assert root_row["usage_details"] is None
    assert root_row["metadata"]["aggregated_usage"] == {
        "input": 7,
        "cache_read": 16399,
        "cache_write": 2089,
        "output": 445,
        "total": 18940,
    }
    assert step_row["usage_details"] is None
    assert step_row["metadata"]["aggregated_usage"] == {"input": 7, "output": 400, "reasoning": 45, "total": 452}
    assert chat_row["type"] == "GENERATION"
    assert chat_row["usage_details"] == {
        "input": 7,
        "cache_read": 16399,
        "cache_write": 2089,
        "output": 400,
        "reasoning": 45,
        "total": 18940,
    }
    assert chat_row["completion_start_time"] == START_NS // 1000 + 250_000


def test_v7_agent_root_without_details_is_left_to_genai():
    span = _v7_span(
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2},
        Span.SPAN_KIND_INTERNAL,
    )
    (row,), _ = map_spans(span, scope=V7)
    assert row["usage_details"] is None
    assert row["metadata"]["aggregated_usage"] == {"input": 10, "output": 2, "total": 12}


def test_v7_rerank_is_a_retriever():
    span = _v7_span(
        {
            "gen_ai.operation.name": "rerank",
            "gen_ai.provider.name": "cohere",
            "gen_ai.request.model": "rerank-v3.5",
            "ai.documents": ['"a"', '"b"'],
        },
        Span.SPAN_KIND_CLIENT,
        name="rerank rerank-v3.5",
    )
    (row,), _ = map_spans(span, scope=V7)
    assert (row["type"], row["model"]) == ("RETRIEVER", "rerank-v3.5")


def test_v7_runtime_context_is_metadata():
    span = _v7_span({"gen_ai.operation.name": "chat", "ai.settings.context.tenant": "acme"}, Span.SPAN_KIND_CLIENT)
    (row,), _ = map_spans(span, scope=V7)
    assert row["metadata"] == {"context": {"tenant": "acme"}}


def test_v7_legacy_rerank_provider_call():
    observation, _ = legacy(
        {
            "ai.operationId": "ai.rerank.doRerank",
            "ai.model.id": "rerank-v3.5",
            "ai.documents": ['"doc a"', '{"text":"doc b"}'],
            "ai.ranking": ['{"originalIndex":1,"score":0.9}', '{"originalIndex":0,"score":0.1}'],
        }
    )
    assert observation["type"] == "RETRIEVER"
    assert observation["input"] == ["doc a", {"text": "doc b"}]
    assert observation["output"] == [{"originalIndex": 1, "score": 0.9}, {"originalIndex": 0, "score": 0.1}]


def test_foreign_span_with_an_ai_key_is_untouched():
    observation, _ = map_one({"ai.something": "x", "gen_ai.request.model": "gpt-4o"})
    assert (observation["type"], observation["name"], observation["model"]) == ("GENERATION", "span", "gpt-4o")
