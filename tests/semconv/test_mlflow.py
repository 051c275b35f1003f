"""MLflow tracing spans (``mlflow.*``, values JSON-encoded) -> observation rows, through the real precedence chain."""

from __future__ import annotations

import json

import pytest

from tests.otlp_helpers import kv, make_span
from tests.semconv.conftest import map_one

SCOPE = ("mlflow.tracing", "3.4.0")
START_NS = 1_764_000_000_000_000_000


def enc(value) -> str:
    """MLflow JSON-encodes every attribute value."""
    return json.dumps(value)


def one(attributes: dict, **fields):
    return map_one(attributes, scope=SCOPE, **fields)


OPENAI_CHAT = {  # mlflow.openai autolog
    "mlflow.traceRequestId": enc("tr-0af7651916cd43dd8448eb211c80319c"),
    "mlflow.spanType": enc("CHAT_MODEL"),
    "mlflow.spanFunctionName": enc("create"),
    "mlflow.spanInputs": enc(
        {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
            "model": "gpt-4o-mini",
            "temperature": 0.1,
            "tools": [{"type": "function", "function": {"name": "weather"}}],
            "user": "end-user-1",
        }
    ),
    "mlflow.spanOutputs": enc(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1764000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                            }
                        ],
                    },
                }
            ],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 20, "total_tokens": 1220},
        }
    ),
    "mlflow.chat.tokenUsage": enc(
        {"input_tokens": 1200, "output_tokens": 20, "total_tokens": 1220, "cache_read_input_tokens": 1024}
    ),
    "mlflow.chat.tools": enc([{"type": "function", "function": {"name": "weather"}}]),
    "mlflow.llm.model": enc("gpt-4o-mini"),
    "mlflow.llm.provider": enc("openai"),
    "mlflow.message.format": enc("openai"),
    "mlflow.llm.cost": enc({"input_cost": 0.0001, "output_cost": 0.00002, "total_cost": 0.00012}),
}
ANTHROPIC_CHAT = {  # mlflow.anthropic autolog: raw Anthropic counts, input without the cache
    "mlflow.spanType": enc("CHAT_MODEL"),
    "mlflow.spanInputs": enc(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
        }
    ),
    "mlflow.spanOutputs": enc(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 12, "output_tokens": 30},
        }
    ),
    "mlflow.chat.tokenUsage": enc(
        {
            "input_tokens": 12,
            "output_tokens": 30,
            "total_tokens": 42,
            "cache_read_input_tokens": 3000,
            "cache_creation_input_tokens": 100,
        }
    ),
    "mlflow.llm.model": enc("claude-sonnet-4-5"),
    "mlflow.llm.provider": enc("anthropic"),
    "mlflow.message.format": enc("anthropic"),
}


@pytest.mark.parametrize(
    ("span_type", "expected"),
    [
        ("LLM", "GENERATION"),
        ("CHAT_MODEL", "GENERATION"),
        ("chat_model", "GENERATION"),
        ("EMBEDDING", "EMBEDDING"),
        ("CHAIN", "CHAIN"),
        ("AGENT", "AGENT"),
        ("TOOL", "TOOL"),
        ("RETRIEVER", "RETRIEVER"),
        ("RERANKER", "RETRIEVER"),
        ("PARSER", "SPAN"),
        ("MEMORY", "SPAN"),
        ("UNKNOWN", "SPAN"),
        ("GUARDRAIL", "GUARDRAIL"),
        ("MY_CUSTOM_STEP", "SPAN"),
    ],
)
def test_span_type(span_type, expected):
    observation, _ = one({"mlflow.spanType": enc(span_type)})
    assert observation["type"] == expected


def test_openai_chat_span():
    observation, _ = one(OPENAI_CHAT, name="Completions")
    assert observation["type"] == "GENERATION"
    assert observation["name"] == "Completions"
    assert (observation["model"], observation["provider"]) == ("gpt-4o-mini", "openai")
    assert observation["model_parameters"] == {"temperature": 0.1}
    assert observation["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert observation["output"] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert observation["usage_details"] == {"input": 176, "cache_read": 1024, "output": 20, "total": 1220}
    assert observation["cost_details"] == {"input": 0.0001, "output": 0.00002, "total": 0.00012}
    assert observation["total_cost"] == 0.00012
    assert observation["metadata"] == {
        "request": {"user": "end-user-1"},
        "tools": [{"type": "function", "function": {"name": "weather"}}],
    }
    raw = observation["attributes"]
    for key in ("mlflow.spanInputs", "mlflow.chat.tokenUsage", "mlflow.llm.cost", "mlflow.llm.model"):
        assert key not in raw
    assert "mlflow.spanOutputs" in raw  # the completion envelope was reshaped: the original stays
    assert "mlflow.spanType" in raw  # several span types map to SPAN: the original stays
    assert "mlflow.spanFunctionName" in raw and "mlflow.traceRequestId" in raw


def test_anthropic_chat_span_counts_input_without_the_cache():
    observation, _ = one(ANTHROPIC_CHAT)
    assert observation["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert observation["output"] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
            ],
            "finish_reason": "tool_use",
        }
    ]
    assert observation["model_parameters"] == {"max_tokens": 1024}
    assert observation["usage_details"] == {
        "input": 12,
        "cache_read": 3000,
        "cache_write": 100,
        "output": 30,
        "total": 3142,
    }


def test_langchain_counts_include_the_cache_whatever_the_provider():
    observation, _ = one(
        {
            "mlflow.spanType": enc("CHAT_MODEL"),
            "mlflow.spanInputs": enc(
                [[{"type": "system", "content": "Be brief."}, {"type": "human", "content": "Hi"}]]
            ),
            "mlflow.spanOutputs": enc({"generations": [[{"text": "Hello"}]]}),
            "mlflow.chat.tokenUsage": enc(
                {
                    "input_tokens": 3112,
                    "output_tokens": 30,
                    "total_tokens": 3142,
                    "cache_read_input_tokens": 3000,
                    "cache_creation_input_tokens": 100,
                }
            ),
            "mlflow.llm.provider": enc("anthropic"),
            "mlflow.message.format": enc("langchain"),
        }
    )
    assert observation["input"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert observation["output"] == {"generations": [[{"text": "Hello"}]]}  # not chat: kept as it came
    assert observation["usage_details"] == {
        "input": 12,
        "cache_read": 3000,
        "cache_write": 100,
        "output": 30,
        "total": 3142,
    }


@pytest.mark.parametrize("span_type", ["AGENT", "CHAIN", "UNKNOWN", "TOOL"])
def test_usage_outside_model_spans_is_aggregated_and_never_billed(span_type):
    observation, _ = one(
        {
            "mlflow.spanType": enc(span_type),
            "mlflow.chat.tokenUsage": enc({"input_tokens": 1500, "output_tokens": 50, "total_tokens": 1550}),
            "mlflow.llm.cost": enc({"input_cost": 0.01, "output_cost": 0.02, "total_cost": 0.03}),
        }
    )
    assert observation["usage_details"] is None
    assert observation["metadata"]["aggregated_usage"] == {"input": 1500, "output": 50, "total": 1550}
    assert "cost_details" not in observation
    assert "mlflow.llm.cost" in observation["attributes"]  # not mapped: kept


def test_tool_span_keeps_plain_values():
    observation, _ = one(
        {
            "mlflow.spanType": enc("TOOL"),
            "mlflow.spanInputs": enc({"city": "Paris"}),
            "mlflow.spanOutputs": enc("sunny"),
        },
        name="get_weather",
    )
    assert (observation["type"], observation["name"]) == ("TOOL", "get_weather")
    assert (observation["input"], observation["output"]) == ({"city": "Paris"}, "sunny")
    assert observation["attributes"] == {"mlflow.spanType": enc("TOOL")}  # everything else was mapped


def test_retriever_documents_are_kept():
    documents = [{"page_content": "Paris is sunny.", "metadata": {"source": "wiki"}, "id": "d1"}]
    observation, _ = one(
        {
            "mlflow.spanType": enc("RETRIEVER"),
            "mlflow.spanInputs": enc("weather paris"),
            "mlflow.spanOutputs": enc(documents),
        }
    )
    assert (observation["type"], observation["input"], observation["output"]) == (
        "RETRIEVER",
        "weather paris",
        documents,
    )


def test_embedding_span():
    observation, _ = one(
        {
            "mlflow.spanType": enc("EMBEDDING"),
            "mlflow.spanInputs": enc({"input": ["sunny day", "rainy day"], "model": "text-embedding-3-small"}),
            "mlflow.chat.tokenUsage": enc({"input_tokens": 6, "total_tokens": 6}),
            "mlflow.llm.model": enc("text-embedding-3-small"),
        }
    )
    assert observation["type"] == "EMBEDDING"
    assert observation["input"] == {"input": ["sunny day", "rainy day"], "model": "text-embedding-3-small"}
    assert observation["usage_details"] == {"input": 6, "total": 6}
    assert observation["model"] == "text-embedding-3-small"


def test_model_from_inputs_when_no_model_attribute():
    attributes = {k: v for k, v in OPENAI_CHAT.items() if k != "mlflow.llm.model"}
    observation, _ = one(attributes)
    assert observation["model"] == "gpt-4o-mini"


def test_trace_tags_user_session_and_name():
    observation, trace = one(
        {
            "mlflow.spanType": enc("AGENT"),
            "mlflow.spanInputs": enc({"question": "Weather?"}),
            "mlflow.spanOutputs": enc("Sunny."),
            "mlflow.traceTag.mlflow.traceName": "weather-agent",
            "mlflow.traceTag.team": "search",
            "mlflow.traceTag.release": "2026.08",
            "user.id": "u-1",
            "session.id": "s-1",
        },
        name="run_agent",
    )
    assert observation["name"] == "run_agent"
    assert trace["name"] == "weather-agent"
    assert trace["metadata"] == {"team": "search", "release": "2026.08"}
    assert (trace["user_id"], trace["session_id"]) == ("u-1", "s-1")
    assert (trace["input"], trace["output"]) == ({"question": "Weather?"}, "Sunny.")
    assert set(observation["attributes"]) == {"mlflow.spanType"}


def test_linked_prompt_only_on_generations():
    linked = {"mlflow.linkedPrompts": enc([{"name": "weather-prompt", "version": "3"}])}
    generation, _ = one({**OPENAI_CHAT, **linked})
    chain, _ = one({"mlflow.spanType": enc("CHAIN"), **linked})
    assert (generation["prompt_name"], generation["prompt_version"]) == ("weather-prompt", 3)
    assert (chain["prompt_name"], chain["prompt_version"]) == (None, None)
    assert "mlflow.linkedPrompts" in chain["attributes"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (enc(10), "DEBUG"),
        (enc(20), "DEFAULT"),
        (enc(30), "WARNING"),
        (enc(40), "ERROR"),
        (enc(50), "ERROR"),
        (enc("WARNING"), "WARNING"),
        ("error", "ERROR"),
    ],
)
def test_span_log_level(value, expected):
    observation, _ = one({"mlflow.spanType": enc("CHAIN"), "mlflow.spanLogLevel": value})
    assert observation["level"] == expected


@pytest.mark.parametrize("log_level", [None, enc(20), enc("WARNING"), enc(10)])
def test_error_status_is_never_masked_by_a_milder_level(log_level):
    attributes = {"mlflow.spanType": enc("TOOL")} | ({"mlflow.spanLogLevel": log_level} if log_level else {})
    observation, _ = one(attributes, error="boom")
    assert (observation["level"], observation["status_message"]) == ("ERROR", "boom")


def test_first_stream_chunk_is_the_completion_start():
    span = make_span(attributes=ANTHROPIC_CHAT, start_ns=START_NS)
    for index, offset_ms in ((1, 450), (0, 300)):
        event = span.events.add(name=f"mlflow.chunk.item.{index}", time_unix_nano=START_NS + offset_ms * 1_000_000)
        event.attributes.append(kv("mlflow.chunk.value", enc({"delta": "x"})))
    observation, _ = map_one(scope=SCOPE, span=span)
    assert observation["completion_start_time"] == START_NS // 1000 + 300_000


@pytest.mark.parametrize(
    "garbage",
    [
        {"mlflow.spanType": "not json"},
        {"mlflow.spanType": enc(42)},
        {"mlflow.spanType": enc(None)},
        {"mlflow.spanInputs": "{broken", "mlflow.spanOutputs": "[1,"},
        {"mlflow.spanInputs": enc({"messages": "x"}), "mlflow.spanOutputs": enc({"choices": [1, None]})},
        {"mlflow.spanInputs": enc({"messages": [1, {"no": "role"}]}), "mlflow.spanOutputs": enc({"choices": []})},
        {"mlflow.spanInputs": enc([[]]), "mlflow.spanOutputs": enc({"role": 5, "content": None})},
        {"mlflow.chat.tokenUsage": "nope"},
        {"mlflow.chat.tokenUsage": enc([1, 2]), "mlflow.chat.tools": enc("x")},
        {"mlflow.chat.tokenUsage": enc({"input_tokens": "many", "output_tokens": -1})},
        {"mlflow.llm.cost": enc({"total_cost": "free"})},
        {"mlflow.llm.cost": enc([1, 2])},
        {"mlflow.linkedPrompts": enc([{"name": None}])},
        {"mlflow.linkedPrompts": "[{"},
        {"mlflow.spanLogLevel": enc("LOUD")},
        {"mlflow.spanLogLevel": enc([1])},
        {"mlflow.llm.model": enc({"a": 1}), "mlflow.llm.provider": enc(None)},
        {"mlflow.message.format": enc(7)},
    ],
)
def test_garbage_values_still_map(garbage):
    observation, _ = one({"mlflow.spanType": enc("LLM"), **garbage})
    assert observation["id"]


def test_unmapped_garbage_usage_stays_in_the_raw_attributes():
    observation, _ = one({"mlflow.spanType": enc("LLM"), "mlflow.chat.tokenUsage": "nope"})
    assert observation["usage_details"] is None
    assert observation["attributes"]["mlflow.chat.tokenUsage"] == "nope"


def test_non_chat_llm_input_stays_a_string():
    observation, _ = one(
        {"mlflow.spanType": enc("LLM"), "mlflow.spanInputs": enc("Tell me a joke"), "mlflow.spanOutputs": enc("No.")}
    )
    assert (observation["input"], observation["output"]) == ("Tell me a joke", "No.")
