"""OpenInference spans -> observation rows, through the real precedence chain (attributes in, record out)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from semconv.mapping import map_traces_request
from tests.otlp_helpers import kv, make_span, trace_request

JSON_COLUMNS = ("input", "output", "metadata", "model_parameters", "attributes")


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, list):
        return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=[kv("_", v).value for v in value])))
    return kv(key, value)


def _map(attrs: dict[str, Any], *, kind: int | None = None, name: str = "span") -> tuple[dict, dict | None]:
    span = make_span(name=name)
    span.attributes.extend(_kv(k, v) for k, v in attrs.items())
    if kind is not None:
        span.kind = kind
    out = map_traces_request(trace_request([span]))
    assert out.warnings == 0  # the dialect never raised
    [row] = out.observations
    obs = {k: json.loads(v) if k in JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()}
    trace = out.traces[0] if out.traces else None
    if trace and trace["metadata"]:
        trace = {**trace, "metadata": json.loads(trace["metadata"])}
    return obs, trace


def _raw(obs: dict) -> dict:
    return obs["attributes"] or {}


# ---- type ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("LLM", "GENERATION"),
        ("EMBEDDING", "EMBEDDING"),
        ("CHAIN", "CHAIN"),
        ("RETRIEVER", "RETRIEVER"),
        ("RERANKER", "RETRIEVER"),
        ("TOOL", "TOOL"),
        ("AGENT", "AGENT"),
        ("GUARDRAIL", "GUARDRAIL"),
        ("EVALUATOR", "EVALUATOR"),
        ("PROMPT", "SPAN"),
        ("UNKNOWN", "SPAN"),
        ("llm", "GENERATION"),  # case-insensitive
        ("SOMETHING_NEW", "SPAN"),
    ],
)
def test_span_kind_sets_the_type(kind, expected):
    obs, _ = _map({"openinference.span.kind": kind})
    assert obs["type"] == expected
    assert _raw(obs)["openinference.span.kind"] == kind  # the kind stays visible


def test_unknown_kind_falls_back_to_the_generic_rules():
    obs, _ = _map({"openinference.span.kind": "UNKNOWN", "gen_ai.request.model": "gpt-4o"})
    assert obs["type"] == "GENERATION"


# ---- model, provider, parameters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "model"),
    [
        ({"llm.model_name": "gpt-4o-2024-08-06"}, "gpt-4o-2024-08-06"),
        (
            {
                "llm.model_name": "gpt-4o",
                "llm.request.model_name": "gpt-4o",
                "llm.response.model_name": "gpt-4o-mini-2024-07-18",
            },
            "gpt-4o-mini-2024-07-18",
        ),
        ({"llm.request.model_name": "claude-sonnet-4"}, "claude-sonnet-4"),
        ({"embedding.model_name": "text-embedding-3-small"}, "text-embedding-3-small"),
        ({"reranker.model_name": "cross-encoder/ms-marco-MiniLM-L-6-v2"}, "cross-encoder/ms-marco-MiniLM-L-6-v2"),
        ({"llm.model_name": ""}, None),
    ],
)
def test_model_precedence(attrs, model):
    obs, _ = _map({"openinference.span.kind": "LLM", **attrs})
    assert obs["model"] == model


@pytest.mark.parametrize(
    ("attrs", "provider"),
    [
        ({"llm.provider": "azure", "llm.system": "openai"}, "azure"),
        ({"llm.system": "anthropic"}, "anthropic"),
        ({}, None),
    ],
)
def test_provider_precedence(attrs, provider):
    obs, _ = _map({"openinference.span.kind": "LLM", **attrs})
    assert obs["provider"] == provider
    if provider == "azure":
        assert _raw(obs)["llm.system"] == "openai"  # the unused one stays raw


def test_invocation_parameters_without_the_model():
    obs, _ = _map(
        {
            "openinference.span.kind": "LLM",
            "llm.invocation_parameters": '{"model": "gpt-4o", "temperature": 0.1, "max_tokens": 256, "stop": ["END"]}',
        }
    )
    assert obs["model_parameters"] == {"temperature": 0.1, "max_tokens": 256, "stop": ["END"]}
    assert "llm.invocation_parameters" not in _raw(obs)


def test_embedding_invocation_parameters():
    obs, _ = _map(
        {
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-small",
            "embedding.invocation_parameters": '{"model": "text-embedding-3-small", "encoding_format": "float"}',
        }
    )
    assert obs["model_parameters"] == {"encoding_format": "float"}


# ---- usage and cost -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "usage"),
    [
        (  # OpenAI: prompt includes cached, completion includes reasoning
            {
                "prompt": 1200,
                "completion": 500,
                "total": 1700,
                "prompt_details.cache_read": 1000,
                "completion_details.reasoning": 300,
            },
            {"input": 200, "cache_read": 1000, "output": 200, "reasoning": 300, "total": 1700},
        ),
        (  # Anthropic instrumentation: prompt = input + cache_read + cache_write
            {
                "prompt": 1520,
                "completion": 80,
                "total": 1600,
                "prompt_details.cache_read": 1000,
                "prompt_details.cache_write": 500,
            },
            {"input": 20, "cache_read": 1000, "cache_write": 500, "output": 80, "total": 1600},
        ),
        (  # audio on both sides
            {"prompt": 300, "completion": 150, "prompt_details.audio": 100, "completion_details.audio": 50},
            {"input": 200, "input_audio": 100, "output": 100, "output_audio": 50, "total": 450},
        ),
        (  # a prompt count that does not include its cache (contradiction): the numbers win
            {"prompt": 20, "completion": 80, "prompt_details.cache_read": 1000},
            {"input": 20, "cache_read": 1000, "output": 80, "total": 1100},
        ),
        ({"total": 42}, {"input": 42, "total": 42}),  # an embedding reporting only a total
    ],
)
def test_token_counts_become_disjoint_buckets(counts, usage):
    attrs = {"openinference.span.kind": "LLM", **{f"llm.token_count.{k}": v for k, v in counts.items()}}
    obs, _ = _map(attrs)
    assert obs["usage_details"] == usage
    assert not any(k.startswith("llm.token_count.") for k in _raw(obs))


def test_cache_input_is_left_raw():
    obs, _ = _map(
        {
            "openinference.span.kind": "LLM",
            "llm.token_count.prompt": 10,
            "llm.token_count.prompt_details.cache_input": 4,
        }
    )
    assert obs["usage_details"] == {"input": 10, "total": 10}
    assert _raw(obs)["llm.token_count.prompt_details.cache_input"] == 4


@pytest.mark.parametrize(
    ("costs", "expected"),
    [
        (
            {"prompt": 0.003, "completion": 0.006, "total": 0.009, "prompt_details.cache_read": 0.001},
            {"input": 0.002, "cache_read": 0.001, "output": 0.006, "total": 0.009},
        ),
        (
            {
                "prompt_details.input": 0.002,
                "prompt_details.cache_write": 0.0005,
                "completion_details.output": 0.004,
                "completion_details.reasoning": 0.002,
            },
            {"input": 0.002, "cache_write": 0.0005, "output": 0.004, "reasoning": 0.002, "total": 0.0085},
        ),
        ({"total": 0.5}, {"total": 0.5}),
    ],
)
def test_provided_cost(costs, expected):
    attrs = {"openinference.span.kind": "LLM", **{f"llm.cost.{k}": v for k, v in costs.items()}}
    obs, _ = _map(attrs)
    assert obs["cost_details"] == pytest.approx(expected)
    assert obs["total_cost"] == pytest.approx(expected["total"])
    assert obs["cost_source"] == "provided"


def test_agent_span_token_counts_are_aggregated_not_billed():
    obs, _ = _map(
        {
            "openinference.span.kind": "AGENT",
            "llm.token_count.prompt": 900,
            "llm.token_count.completion": 100,
            "llm.cost.total": 0.02,
        }
    )
    assert obs["usage_details"] is None and obs.get("cost_details") is None
    assert obs["metadata"]["aggregated_usage"] == {"input": 900, "output": 100, "total": 1000}
    assert obs["metadata"]["aggregated_cost"] == {"total": 0.02}


# ---- messages -----------------------------------------------------------------------------------

TOOL_CALL_TURN = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "gpt-4o-2024-08-06",
    "input.value": '{"messages": [{"role": "user", "content": "What\'s the weather in Boston?"}], "model": "gpt-4o"}',
    "input.mime_type": "application/json",
    "llm.input_messages.0.message.role": "system",
    "llm.input_messages.0.message.content": "You are a weather bot.",
    "llm.input_messages.1.message.role": "user",
    "llm.input_messages.1.message.content": "What's the weather in Boston?",
    "llm.input_messages.2.message.role": "assistant",
    "llm.input_messages.2.message.tool_calls.0.tool_call.id": "call_123",
    "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "get_weather",
    "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": '{"location": "Boston, MA"}',
    "llm.input_messages.3.message.role": "tool",
    "llm.input_messages.3.message.content": '{"temperature": 65, "condition": "cloudy"}',
    "llm.input_messages.3.message.tool_call_id": "call_123",
    "llm.input_messages.3.message.name": "get_weather",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_001",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"location": "New York"}',
    "llm.output_messages.0.message.tool_calls.1.tool_call.id": "call_002",
    "llm.output_messages.0.message.tool_calls.1.tool_call.function.name": "get_weather",
    "llm.output_messages.0.message.tool_calls.1.tool_call.function.arguments": '{"location": "London"}',
    "llm.tools.0.tool.json_schema": '{"type": "function", "function": {"name": "get_weather"}}',
}


def _call(call_id: str, name: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_flattened_messages_with_tool_calls():
    obs, trace = _map(TOOL_CALL_TURN)
    assert obs["input"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "What's the weather in Boston?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [_call("call_123", "get_weather", '{"location": "Boston, MA"}')],
        },
        {
            "role": "tool",
            "content": '{"temperature": 65, "condition": "cloudy"}',
            "name": "get_weather",
            "tool_call_id": "call_123",
        },
    ]
    assert obs["output"] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                _call("call_001", "get_weather", '{"location": "New York"}'),
                _call("call_002", "get_weather", '{"location": "London"}'),
            ],
        }
    ]
    raw = _raw(obs)
    assert not any(k.startswith(("llm.input_messages.", "llm.output_messages.")) for k in raw)
    assert "input.value" in raw  # not mapped (the flattened messages won), so kept
    assert "llm.tools.0.tool.json_schema" in raw
    assert json.loads(trace["input"]) == obs["input"]  # a root span: the trace shows the same


def test_multimodal_contents_and_reasoning_parts():
    obs, _ = _map(
        {
            "openinference.span.kind": "LLM",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.contents.0.message_content.type": "text",
            "llm.input_messages.0.message.contents.0.message_content.text": "What is in this image?",
            "llm.input_messages.0.message.contents.1.message_content.type": "image",
            "llm.input_messages.0.message.contents.1.message_content.image.image.url": "https://example.com/cat.png",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.contents.0.message_content.type": "reasoning",
            "llm.output_messages.0.message.contents.0.message_content.text": "Looks feline.",
            "llm.output_messages.0.message.contents.1.message_content.type": "text",
            "llm.output_messages.0.message.contents.1.message_content.text": "A cat.",
        }
    )
    assert obs["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    assert obs["output"] == [{"role": "assistant", "content": "A cat.", "reasoning": "Looks feline."}]


def test_request_body_in_input_value_gives_its_messages_system_first():
    obs, _ = _map(
        {
            "openinference.span.kind": "LLM",
            "input.value": json.dumps(
                {
                    "model": "claude-sonnet-4",
                    "max_tokens": 1024,
                    "system": "Be terse.",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                }
            ),
            "input.mime_type": "application/json",
            "output.value": json.dumps(
                {
                    "id": "chatcmpl-1",
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello."}}
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
                }
            ),
            "output.mime_type": "application/json",
        }
    )
    assert obs["input"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
    assert obs["output"] == [{"role": "assistant", "content": "Hello.", "finish_reason": "stop"}]
    assert "input.value" not in _raw(obs) and "output.mime_type" not in _raw(obs)


def test_anthropic_response_body_in_output_value():
    obs, _ = _map(
        {
            "openinference.span.kind": "LLM",
            "output.value": json.dumps(
                {
                    "type": "message",
                    "role": "assistant",
                    "stop_reason": "tool_use",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    ],
                }
            ),
        }
    )
    assert obs["output"] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "finish_reason": "tool_use",
            "tool_calls": [_call("toolu_1", "get_weather", '{"city":"Paris"}')],
        }
    ]


@pytest.mark.parametrize(
    ("value", "mime", "expected"),
    [
        ("What is the capital of France?", "text/plain", "What is the capital of France?"),
        ("What is the capital of France?", None, "What is the capital of France?"),
        ('{"question": "capital of France?"}', None, {"question": "capital of France?"}),
        ('{"question": "capital of France?"}', "text/plain", {"question": "capital of France?"}),
        ("42", "application/json", 42),
        ("42", None, "42"),
        ("{not json", "application/json", "{not json"),
        ('[{"role": "user", "content": "hi"}]', "application/json", [{"role": "user", "content": "hi"}]),
    ],
)
def test_input_value_json_or_plain_text(value, mime, expected):
    attrs = {"openinference.span.kind": "CHAIN", "input.value": value}
    if mime:
        attrs["input.mime_type"] = mime
    obs, _ = _map(attrs)
    assert obs["input"] == expected


def test_chain_input_with_messages_key_is_kept_whole():
    state = {"messages": [{"role": "user", "content": "hi"}], "step": 3}
    obs, _ = _map({"openinference.span.kind": "CHAIN", "input.value": json.dumps(state)})
    assert obs["input"] == state


def test_completions_api_prompts_and_choices():
    obs, _ = _map(
        {
            "openinference.span.kind": "LLM",
            "llm.prompts.0.prompt.text": "Once upon a time",
            "llm.choices.0.completion.text": " there was a cat.",
            "llm.choices.1.completion.text": " there was a dog.",
        }
    )
    assert obs["input"] == "Once upon a time"
    assert obs["output"] == [" there was a cat.", " there was a dog."]


def test_older_prompts_string_list():
    obs, _ = _map({"openinference.span.kind": "LLM", "llm.prompts": ["Say hi"]})
    assert obs["input"] == "Say hi"


# ---- tool, retriever, reranker, embedding -------------------------------------------------------


def test_tool_span():
    obs, _ = _map(
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "get_weather",
            "tool.description": "Get current weather",
            "tool.parameters": '{"type": "object"}',
            "input.value": '{"location": "Boston, MA"}',
            "input.mime_type": "application/json",
            "output.value": "65F and cloudy",
        },
        name="ToolCall",
    )
    assert (obs["type"], obs["name"]) == ("TOOL", "get_weather")
    assert obs["input"] == {"location": "Boston, MA"}
    assert obs["output"] == "65F and cloudy"
    assert _raw(obs)["tool.description"] == "Get current weather"


def test_retriever_documents_become_the_output():
    obs, _ = _map(
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": "what is openinference?",
            "retrieval.documents.0.document.id": "doc-1",
            "retrieval.documents.0.document.content": "OpenInference is a set of conventions.",
            "retrieval.documents.0.document.score": 0.92,
            "retrieval.documents.0.document.metadata": '{"source": "README.md"}',
            "retrieval.documents.1.document.id": "doc-2",
            "retrieval.documents.1.document.content": "It complements OpenTelemetry.",
        }
    )
    assert obs["input"] == "what is openinference?"
    assert obs["output"] == [
        {
            "id": "doc-1",
            "content": "OpenInference is a set of conventions.",
            "score": 0.92,
            "metadata": {"source": "README.md"},
        },
        {"id": "doc-2", "content": "It complements OpenTelemetry."},
    ]
    assert not any(k.startswith("retrieval.documents.") for k in _raw(obs))


def test_retriever_output_value_wins_over_documents():
    obs, _ = _map(
        {
            "openinference.span.kind": "RETRIEVER",
            "output.value": "two documents",
            "retrieval.documents.0.document.content": "d",
        }
    )
    assert obs["output"] == "two documents"
    assert "retrieval.documents.0.document.content" in _raw(obs)


def test_reranker_input_and_output_documents():
    obs, _ = _map(
        {
            "openinference.span.kind": "RERANKER",
            "reranker.model_name": "rerank-english-v3.0",
            "reranker.query": "cats",
            "reranker.top_k": 1,
            "reranker.input_documents.0.document.content": "dogs",
            "reranker.input_documents.1.document.content": "cats",
            "reranker.output_documents.0.document.content": "cats",
            "reranker.output_documents.0.document.score": 0.99,
        }
    )
    assert (obs["type"], obs["model"]) == ("RETRIEVER", "rerank-english-v3.0")
    assert obs["input"] == {"query": "cats", "documents": [{"content": "dogs"}, {"content": "cats"}], "top_k": 1}
    assert obs["output"] == [{"content": "cats", "score": 0.99}]


def test_embedding_texts_become_the_input_vectors_stay_raw():
    obs, _ = _map(
        {
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-small",
            "embedding.embeddings.0.embedding.text": "hello",
            "embedding.embeddings.0.embedding.vector": [0.1, 0.2],
            "embedding.embeddings.1.embedding.text": "world",
            "llm.token_count.total": 2,
        }
    )
    assert (obs["type"], obs["input"]) == ("EMBEDDING", ["hello", "world"])
    assert obs["usage_details"] == {"input": 2, "total": 2}
    assert _raw(obs)["embedding.embeddings.0.embedding.vector"] == [0.1, 0.2]


# ---- metadata and context -----------------------------------------------------------------------


def test_metadata_session_user_and_tags():
    obs, trace = _map(
        {
            "openinference.span.kind": "CHAIN",
            "session.id": "sess-42",
            "user.id": "user-7",
            "tag.tags": ["prod", "beta"],
            "metadata": '{"tenant": "acme", "experiment": {"arm": "b"}}',
        }
    )
    assert obs["metadata"] == {"tenant": "acme", "experiment": {"arm": "b"}}
    assert trace["metadata"] == {"tenant": "acme", "experiment": {"arm": "b"}}
    assert (trace["session_id"], trace["user_id"], trace["tags"]) == ("sess-42", "user-7", ["prod", "beta"])
    assert "metadata" not in _raw(obs)


def test_non_object_metadata_stays_raw():
    obs, _ = _map({"openinference.span.kind": "CHAIN", "metadata": "[1, 2]"})
    assert obs["metadata"] is None
    assert _raw(obs)["metadata"] == "[1, 2]"


# ---- garbage ------------------------------------------------------------------------------------


def test_odd_values_still_map():
    obs, _ = _map(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": 12345,
            "llm.token_count.prompt": "lots",
            "llm.token_count.completion": -5,
            "llm.token_count.total": "NaN",
            "llm.cost.total": "free",
            "llm.invocation_parameters": "{temperature: 0.1",
            "metadata": "{broken",
            "input.value": "{oops",
            "input.mime_type": "application/json",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "first",
            "llm.input_messages.5.message.role": 7,  # a gap and a non-string role
            "llm.input_messages.5.message.content": "sixth",
            "llm.input_messages.6": "not a message",
            "llm.input_messages.x.message.role": "ignored",
            "llm.output_messages.99999999999.message.role": "assistant",  # hostile index: skipped
            "llm.output_messages.0.message.contents.0.message_content.type": "image",
            "llm.output_messages.0.message.tool_calls.0": "bad",
            "retrieval.documents.0": 5,
        }
    )
    assert obs["type"] == "GENERATION"
    assert obs["model"] == "12345"
    assert obs["usage_details"] is None and obs.get("cost_details") is None
    assert obs["model_parameters"] is None and obs["metadata"] is None
    assert obs["input"] == [{"role": "user", "content": "first"}, {"role": "user", "content": "sixth"}]
    assert obs["output"] == [{"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": None}}]}]
    raw = _raw(obs)
    assert (raw["llm.token_count.prompt"], raw["llm.cost.total"]) == ("lots", "free")  # unusable: kept raw
    assert raw["metadata"] == "{broken" and raw["llm.invocation_parameters"] == "{temperature: 0.1"


def test_bare_kind_only_span():
    obs, trace = _map({"openinference.span.kind": ""}, name="plain")
    assert (obs["type"], obs["name"], obs["input"], obs["output"]) == ("SPAN", "plain", None, None)
    assert trace["name"] == "plain"
