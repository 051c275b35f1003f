"""Langfuse SDK attributes (v3/v4/v5) -> observation and trace rows."""

from __future__ import annotations

import json

import pytest

from tests.semconv.conftest import map_one

V5 = ("langfuse-sdk", "5.0.4")
V3 = ("langfuse-sdk", "3.2.1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("span", "SPAN"),
        ("generation", "GENERATION"),
        ("event", "EVENT"),
        ("embedding", "EMBEDDING"),
        ("agent", "AGENT"),
        ("tool", "TOOL"),
        ("chain", "CHAIN"),
        ("retriever", "RETRIEVER"),
        ("guardrail", "GUARDRAIL"),
        ("evaluator", "EVALUATOR"),
        ("GENERATION", "GENERATION"),
        ("bogus", "SPAN"),
    ],
)
def test_observation_type(value, expected):
    observation, _ = map_one({"langfuse.observation.type": value}, scope=V5)
    assert observation["type"] == expected


def test_generation_fields():
    observation, _ = map_one(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.model.parameters": '{"temperature": 0.2, "max_tokens": 100}',
            "langfuse.observation.usage_details": '{"input": 10, "output": 5, "cache_read_input_tokens": 3}',
            "langfuse.observation.cost_details": '{"input": 0.001, "output": 0.002}',
            "langfuse.observation.completion_start_time": '"2025-11-20T10:00:00.250Z"',
            "langfuse.observation.prompt.name": "greeting",
            "langfuse.observation.prompt.version": 3,
            "langfuse.observation.level": "warn",
            "langfuse.observation.status_message": "slow",
            "langfuse.observation.input": '[{"role": "user", "content": "hi"}]',
            "langfuse.observation.output": "hello there",
        },
        scope=V5,
    )
    assert observation["model"] == "gpt-4o"
    assert observation["model_parameters"] == {"temperature": 0.2, "max_tokens": 100}
    # Langfuse's own usage keys are already disjoint.
    assert observation["usage_details"] == {"input": 10, "cache_read": 3, "output": 5, "total": 18}
    assert observation["cost_details"] == {"input": 0.001, "output": 0.002, "total": pytest.approx(0.003)}
    assert observation["total_cost"] == pytest.approx(0.003)
    assert observation["cost_source"] == "provided"
    assert observation["completion_start_time"] == 1_763_632_800_250_000
    assert (observation["prompt_name"], observation["prompt_version"]) == ("greeting", 3)
    assert (observation["level"], observation["status_message"]) == ("WARNING", "slow")
    assert observation["input"] == [{"role": "user", "content": "hi"}]
    assert observation["output"] == "hello there"  # a plain string stays a string
    assert observation["attributes"] is None  # every langfuse.* key was mapped


@pytest.mark.parametrize(
    ("details", "usage"),
    [
        # OpenAI usage object: totals include cached and reasoning tokens.
        (
            {
                "prompt_tokens": 1000,
                "completion_tokens": 300,
                "total_tokens": 1300,
                "prompt_tokens_details": {"cached_tokens": 800},
                "completion_tokens_details": {"reasoning_tokens": 200},
            },
            {"input": 200, "cache_read": 800, "output": 100, "reasoning": 200, "total": 1300},
        ),
        # Anthropic usage object: input excludes the cache.
        (
            {
                "input_tokens": 50,
                "output_tokens": 20,
                "cache_read_input_tokens": 900,
                "cache_creation_input_tokens": 100,
            },
            {"input": 50, "cache_read": 900, "cache_write": 100, "output": 20, "total": 1070},
        ),
        # Unknown keys are kept, outside the total.
        (
            {"input": 1, "output": 2, "web_search_queries": 4},
            {"input": 1, "output": 2, "total": 3, "web_search_queries": 4},
        ),
    ],
)
def test_usage_details_shapes(details, usage):
    observation, _ = map_one({"langfuse.observation.usage_details": json.dumps(details)}, scope=V5)
    assert observation["usage_details"] == usage


def test_v5_metadata_values_are_json_decoded():
    observation, trace = map_one(
        {
            "langfuse.observation.metadata.region": '"eu"',
            "langfuse.observation.metadata.retries": "2",
            "langfuse.observation.metadata.flags.beta": "true",
            "langfuse.trace.metadata.team": '"search"',
        },
        scope=V5,
    )
    assert observation["metadata"] == {"region": "eu", "retries": 2, "flags": {"beta": True}}
    assert trace["metadata"] == {"team": "search"}


def test_v3_metadata_strings_stay_raw():
    observation, _ = map_one(
        {
            "langfuse.observation.metadata.region": '"eu"',
            "langfuse.observation.metadata.count": 2,
            "langfuse.observation.metadata.obj": '{"a": 1}',
        },
        scope=V3,
    )
    assert observation["metadata"] == {"region": '"eu"', "count": 2, "obj": {"a": 1}}


def test_trace_attributes_and_context():
    observation, trace = map_one(
        {
            "langfuse.trace.name": "checkout",
            "langfuse.trace.tags": ["prod", "beta"],
            "langfuse.trace.public": True,
            "user.id": "u-1",
            "session.id": "s-1",
            "langfuse.release": "r42",
            "langfuse.version": "v2",
            "langfuse.environment": "Staging",
        },
        scope=V5,
        parent=b"\x01" * 8,
    )
    assert trace["name"] == "checkout"
    assert (trace["user_id"], trace["session_id"]) == ("u-1", "s-1")
    assert trace["tags"] == ["prod", "beta"]
    assert trace["public"] is True
    assert (trace["release"], trace["version"], trace["environment"]) == ("r42", "v2", "staging")
    assert trace["input"] is None  # a non-root span only sets trace I/O explicitly
    assert observation["version"] == "v2"


def test_root_span_sets_trace_name_and_io():
    _, trace = map_one(
        {"langfuse.observation.input": '{"q": 1}', "langfuse.observation.output": '"done"'}, scope=V5, name="handler"
    )
    assert trace["name"] == "handler"
    assert trace["input"] == {"q": 1}
    assert trace["output"] == "done"


def test_app_root_under_a_filtered_parent_acts_as_root():
    _, trace = map_one({"langfuse.internal.is_app_root": True}, scope=V5, parent=b"\x02" * 8, name="agent")
    assert trace is not None and trace["name"] == "agent"


def test_old_python_sdk_generation_marked_as_span():
    observation, _ = map_one(
        {"langfuse.observation.type": "span", "langfuse.observation.model.name": "gpt-4o"},
        scope=("langfuse-sdk", "3.3.0"),
        resource={"telemetry.sdk.language": "python"},
    )
    assert observation["type"] == "GENERATION"


def test_langfuse_wins_over_genai_attributes():
    observation, _ = map_one(
        {
            "langfuse.observation.type": "agent",
            "langfuse.observation.model.name": "claude-sonnet-4",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
        },
        scope=V5,
    )
    assert observation["type"] == "AGENT"
    assert observation["model"] == "claude-sonnet-4"
    assert observation["usage_details"] == {"input": 100, "output": 10, "total": 110}  # filled by genai


@pytest.mark.parametrize(
    "attributes",
    [
        {"langfuse.observation.usage_details": "{not json"},
        {"langfuse.observation.usage_details": '{"input": "many", "output": -3}'},
        {"langfuse.observation.cost_details": "[1, 2]"},
        {"langfuse.observation.completion_start_time": "yesterday"},
        {"langfuse.observation.model.parameters": "7"},
        {"langfuse.trace.tags": 12},
        {"langfuse.observation.metadata.0": "x", "langfuse.observation.metadata.1": "y"},
    ],
)
def test_garbage_values_still_map(attributes):
    observation, _ = map_one(attributes, scope=V5, name="odd")
    assert observation["name"] == "odd"
