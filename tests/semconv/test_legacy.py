"""Langfuse score bodies and legacy ingestion events in, table rows out (semconv.legacy, pure)."""

from __future__ import annotations

import json

import pytest

from semconv import legacy
from semconv.legacy import InvalidBody, map_events, validate_batch, validate_event, validate_score
from semconv.timeparse import iso_to_micros

T0 = iso_to_micros("2025-03-01T12:00:00Z")


def score(**body):
    return validate_score(
        {"name": "quality", "traceId": "t1", "value": 1.0, **body}, default_timestamp=T0, public_api=True
    )


def envelope(event_type: str, body: dict, *, id: str = "e1", ts: str = "2025-03-01T12:00:00.000Z") -> dict:
    return {"id": id, "type": event_type, "timestamp": ts, "body": body}


def rows_of(*envelopes, bases=None):
    validated = validate_batch(list(envelopes))
    assert validated.errors == []
    return map_events(validated.events, bases)


# ------------------------------------------------------------------------------------ scores
def test_number_means_numeric_and_string_means_categorical():
    numeric = score(value=0.75)
    assert (numeric["data_type"], numeric["value"], numeric["string_value"]) == ("NUMERIC", 0.75, None)
    categorical = score(value="good")
    assert (categorical["data_type"], categorical["value"], categorical["string_value"]) == (
        "CATEGORICAL",
        None,
        "good",
    )


def test_boolean_reads_true_or_false():
    assert (score(value=1, dataType="BOOLEAN")["string_value"], score(value=1.0, dataType="BOOLEAN")["value"]) == (
        "True",
        1.0,
    )
    assert score(value=0, dataType="BOOLEAN")["string_value"] == "False"
    with pytest.raises(InvalidBody, match="0 or 1"):
        score(value=0.5, dataType="BOOLEAN")
    with pytest.raises(InvalidBody, match="0 or 1"):
        score(value="true", dataType="BOOLEAN")


def test_text_is_one_to_five_hundred_characters():
    assert score(value="fine answer", dataType="TEXT")["string_value"] == "fine answer"
    with pytest.raises(InvalidBody, match="1 to 500"):
        score(value="", dataType="TEXT")
    with pytest.raises(InvalidBody, match="1 to 500"):
        score(value="x" * 501, dataType="TEXT")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"value": "high", "dataType": "NUMERIC"}, "NUMERIC score needs a number"),
        ({"value": 3, "dataType": "CATEGORICAL"}, "CATEGORICAL score needs a string"),
        ({"value": True}, "number or a string"),
        ({"value": None}, "number or a string"),
        ({"value": 1, "dataType": "PERCENT"}, "dataType"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"source": "EVAL"}, "source"),
        ({"source": "ANNOTATION"}, "configId is required"),
        ({"environment": "Prod"}, "environment"),
        ({"environment": "langfuse-internal"}, "environment"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"id": "a\rb"}, "carriage return"),
    ],
)
def test_invalid_scores_are_refused_with_a_message(body, message):
    with pytest.raises(InvalidBody, match=message):
        score(**body)


@pytest.mark.parametrize(
    "subject",
    [
        {"traceId": None},
        {"sessionId": "s1"},
        {"datasetRunId": "r1"},
        {"traceId": None, "observationId": "o1"},
        {"traceId": None, "sessionId": "s1", "observationId": "o1"},
    ],
)
def test_exactly_one_subject(subject):
    with pytest.raises(InvalidBody, match="exactly one"):
        score(**subject)


def test_session_dataset_run_and_observation_scores():
    assert score(traceId=None, sessionId="s1")["session_id"] == "s1"
    assert score(traceId=None, datasetRunId="r1")["dataset_run_id"] == "r1"
    row = score(observationId="o1")
    assert (row["trace_id"], row["observation_id"]) == ("t1", "o1")


def test_defaults_and_everything_kept():
    row = score()
    assert row["environment"] == "default" and row["source"] == "API" and row["timestamp"] == T0
    assert len(row["id"]) == 36  # a UUID, as Langfuse generates
    full = score(
        id="abcdef0123456789",
        comment="checked",
        metadata={"reviewer": "bob"},
        configId="cfg",
        queueId="q",
        environment="prod-eu",
        timestamp="2025-03-02T00:00:00Z",
        source="ANNOTATION",
    )
    assert full["id"] == "abcdef0123456789" and full["comment"] == "checked"
    assert json.loads(full["metadata"]) == {"reviewer": "bob"}
    assert (full["config_id"], full["queue_id"], full["environment"], full["source"]) == (
        "cfg",
        "q",
        "prod-eu",
        "ANNOTATION",
    )
    assert full["timestamp"] == iso_to_micros("2025-03-02T00:00:00Z")


def test_eval_is_allowed_outside_the_public_endpoint():
    row = validate_score(
        {"name": "judge", "traceId": "t", "value": 1, "source": "EVAL"}, default_timestamp=T0, public_api=False
    )
    assert row["source"] == "EVAL"


def test_correction_is_text_named_output_without_config():
    row = score(value="the corrected answer", dataType="CORRECTION")
    assert (row["name"], row["string_value"], row["data_type"]) == ("output", "the corrected answer", "CORRECTION")
    with pytest.raises(InvalidBody, match="CORRECTION"):
        score(value="x", dataType="CORRECTION", configId="c")


def test_scores_with_the_same_id_fold_into_one():
    first = score(id="s", value=0.1, comment="first")
    second = score(id="s", value=0.9)
    (folded,) = legacy.fold_scores([first, second])
    assert folded["value"] == 0.9 and folded["comment"] == "first"
    (relabelled,) = legacy.fold_scores([first, score(id="s", value="great")])
    assert (relabelled["data_type"], relabelled["value"], relabelled["string_value"]) == ("CATEGORICAL", None, "great")


# ------------------------------------------------------------------------------------ batch validation
def test_batch_answers_per_envelope_and_drops_sdk_logs():
    result = validate_batch(
        [
            envelope("trace-create", {"id": "t1"}, id="a"),
            envelope("sdk-log", {"log": {"msg": "hello"}}, id="b"),
            envelope("span-create", {"traceId": "t1"}, id="c"),  # no observation id
            {"type": "trace-create", "body": {}},  # no envelope id / timestamp
            envelope("dataset-run-item-create", {"id": "x"}, id="d"),
            envelope("span-create", {"id": "s1", "level": "LOUD"}, id="e"),
        ]
    )
    assert result.successes == [{"id": "a", "status": 201}]
    assert [(e["id"], e["status"]) for e in result.errors] == [("c", 400), ("unknown", 400), ("d", 400), ("e", 400)]
    assert all(e["message"] == "Invalid request data" for e in result.errors)
    assert "body.id" in result.errors[0]["error"] and "level" in result.errors[3]["error"]


def test_scores_access_level_may_only_write_scores():
    result = validate_batch(
        [
            envelope("score-create", {"name": "q", "traceId": "t", "value": 1}, id="s"),
            envelope("trace-create", {"id": "t"}, id="t"),
        ],
        scores_only=True,
    )
    assert result.successes == [{"id": "s", "status": 201}]
    assert result.errors == [
        {"id": "t", "status": 401, "message": "Authentication error", "error": "Access Scope Denied"}
    ]


def test_events_are_ordered_creates_first_then_updates_each_by_timestamp():
    result = validate_batch(
        [
            envelope("generation-update", {"id": "g"}, id="u2", ts="2025-03-01T12:00:03Z"),
            envelope("generation-update", {"id": "g"}, id="u1", ts="2025-03-01T12:00:02Z"),
            envelope("generation-create", {"id": "g"}, id="c2", ts="2025-03-01T12:00:05Z"),
            envelope("trace-create", {"id": "t"}, id="c1", ts="2025-03-01T12:00:01Z"),
        ]
    )
    assert [e["id"] for e in result.events] == ["c1", "c2", "u1", "u2"]


def test_prompt_name_and_version_go_together():
    with pytest.raises(InvalidBody, match="promptName and promptVersion"):
        validate_event(envelope("generation-create", {"id": "g", "promptName": "p"}))
    event = validate_event(envelope("generation-create", {"id": "g", "promptName": "p", "promptVersion": 3}))
    assert (event["fields"]["prompt_name"], event["fields"]["prompt_version"]) == ("p", 3)


# ------------------------------------------------------------------------------------ mapping
def test_trace_create_is_one_trace_fact():
    out = rows_of(
        envelope(
            "trace-create",
            {
                "id": "t1",
                "name": "chat",
                "userId": "u",
                "sessionId": "s",
                "tags": ["b", "a", "b"],
                "metadata": {"k": "v"},
                "input": {"q": 1},
                "release": "r1",
                "version": "v1",
                "public": True,
                "environment": "prod",
                "timestamp": "2025-03-01T11:00:00Z",
            },
        )
    )
    (trace,) = out.traces
    assert trace["id"] == "t1" and trace["observation_id"] == "ingestion:e1"
    assert (trace["name"], trace["user_id"], trace["session_id"], trace["tags"]) == ("chat", "u", "s", ["a", "b"])
    assert json.loads(trace["metadata"]) == {"k": "v"} and json.loads(trace["input"]) == {"q": 1}
    assert (trace["release"], trace["version"], trace["public"], trace["environment"]) == ("r1", "v1", True, "prod")
    assert trace["timestamp"] == iso_to_micros("2025-03-01T11:00:00Z")


def test_tags_only_trace_event_leaves_the_environment_alone():
    (trace,) = rows_of(envelope("trace-create", {"id": "t1", "tags": ["x"]})).traces
    assert trace["environment"] is None and trace["timestamp"] == T0  # envelope time


def test_trace_events_of_one_request_merge():
    out = rows_of(
        envelope("trace-create", {"id": "t1", "name": "a", "tags": ["x"], "metadata": {"a": 1}}, id="1"),
        envelope("trace-create", {"id": "t1", "tags": ["y"], "metadata": {"b": 2}}, id="2", ts="2025-03-01T12:00:01Z"),
    )
    (trace,) = out.traces
    assert trace["name"] == "a" and trace["tags"] == ["x", "y"] and json.loads(trace["metadata"]) == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("span-create", "SPAN"),
        ("event-create", "EVENT"),
        ("generation-create", "GENERATION"),
        ("agent-create", "AGENT"),
        ("tool-create", "TOOL"),
        ("chain-create", "CHAIN"),
        ("retriever-create", "RETRIEVER"),
        ("evaluator-create", "EVALUATOR"),
        ("embedding-create", "EMBEDDING"),
        ("guardrail-create", "GUARDRAIL"),
    ],
)
def test_observation_type_comes_from_the_event_type(event_type, kind):
    (row,) = rows_of(envelope(event_type, {"id": "o1", "traceId": "t1"})).observations
    assert row["type"] == kind and row["level"] == "DEFAULT" and row["environment"] == "default"
    assert row["start_time"] == T0  # envelope time when the body has none


def test_legacy_observation_create_takes_its_type_from_the_body():
    (row,) = rows_of(envelope("observation-create", {"id": "o1", "traceId": "t", "type": "GENERATION"})).observations
    assert row["type"] == "GENERATION"
    with pytest.raises(InvalidBody, match="type"):
        validate_event(envelope("observation-create", {"id": "o1", "type": "TOOL"}))


def test_generation_fields_are_mapped():
    (row,) = rows_of(
        envelope(
            "generation-create",
            {
                "id": "g1",
                "traceId": "t1",
                "parentObservationId": "s1",
                "name": "llm",
                "startTime": "2025-03-01T12:00:00Z",
                "endTime": "2025-03-01T12:00:02Z",
                "completionStartTime": "2025-03-01T12:00:01Z",
                "model": "gpt-4o",
                "modelParameters": {"temperature": 0.2, "stop": ["x"]},
                "input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                "output": {"role": "assistant", "content": "hello"},
                "metadata": {"k": 1},
                "level": "WARNING",
                "statusMessage": "slow",
                "version": "v2",
                "environment": "staging",
                "promptName": "greet",
                "promptVersion": 2,
            },
        )
    ).observations
    assert (row["id"], row["trace_id"], row["parent_observation_id"], row["name"]) == ("g1", "t1", "s1", "llm")
    assert row["end_time"] - row["start_time"] == 2_000_000
    assert row["completion_start_time"] - row["start_time"] == 1_000_000
    assert row["model"] == "gpt-4o" and json.loads(row["model_parameters"]) == {"temperature": 0.2, "stop": ["x"]}
    assert json.loads(row["input"]) == [{"role": "user", "content": "hi"}]  # chat content normalised
    assert json.loads(row["output"]) == [{"role": "assistant", "content": "hello"}]
    assert json.loads(row["metadata"]) == {"k": 1}
    assert (row["level"], row["status_message"], row["version"], row["environment"]) == (
        "WARNING",
        "slow",
        "v2",
        "staging",
    )
    assert (row["prompt_name"], row["prompt_version"]) == ("greet", 2)


def test_span_and_event_bodies_ignore_fields_they_do_not_have():
    (span,) = rows_of(
        envelope("span-create", {"id": "s", "traceId": "t", "model": "gpt-4o", "endTime": "2025-03-01T12:00:01Z"})
    ).observations
    assert "model" not in span and span["end_time"] is not None
    (event,) = rows_of(
        envelope("event-create", {"id": "e", "traceId": "t", "endTime": "2025-03-01T12:00:01Z"})
    ).observations
    assert event.get("end_time") is None


@pytest.mark.parametrize(
    ("usage", "details", "expected"),
    [
        ({"input": 10, "output": 5, "unit": "TOKENS"}, None, {"input": 10, "output": 5, "total": 15}),
        ({"promptTokens": 7, "completionTokens": 3, "totalTokens": 10}, None, {"input": 7, "output": 3, "total": 10}),
        (
            None,
            {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "total_tokens": 120,
                "prompt_tokens_details": {"cached_tokens": 30},
            },
            {"input": 70, "cache_read": 30, "output": 20, "total": 120},
        ),
        (
            None,
            {
                "input_tokens": 50,
                "output_tokens": 40,
                "total_tokens": 90,
                "output_tokens_details": {"reasoning_tokens": 25},
            },
            {"input": 50, "output": 15, "reasoning": 25, "total": 90},
        ),
        (
            None,
            {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100},  # Anthropic: input without cache
            {"input": 10, "cache_read": 100, "output": 5, "total": 115},
        ),
        (
            None,
            {"input": 4, "output": 2, "input_cache_read": 8, "bogus": -1, "half": 1.5},
            {"input": 4, "cache_read": 8, "output": 2, "total": 14},
        ),
        ({"input": 1, "output": 1}, {"input": 9}, {"input": 9, "output": 1, "total": 10}),  # details win per key
    ],
)
def test_usage_shapes_become_disjoint_buckets(usage, details, expected):
    body = {"id": "g", "traceId": "t", "usage": usage, "usageDetails": details}
    (row,) = rows_of(envelope("generation-create", body)).observations
    assert row["usage_details"] == expected
    assert "cost_source" not in row  # priced later, by the collector


def test_provided_costs_are_kept_with_their_source():
    body = {"id": "g", "traceId": "t", "usage": {"input": 10, "output": 5, "inputCost": 0.01, "outputCost": 0.02}}
    (row,) = rows_of(envelope("generation-create", body)).observations
    assert row["cost_details"] == {"input": 0.01, "output": 0.02, "total": pytest.approx(0.03)}
    assert row["total_cost"] == pytest.approx(0.03) and row["cost_source"] == "provided"
    (row,) = rows_of(
        envelope("generation-create", {"id": "g", "costDetails": {"total": 0.5, "input": 0.1}})
    ).observations
    assert row["total_cost"] == 0.5


def test_create_and_update_in_one_request_are_one_row():
    out = rows_of(
        envelope(
            "generation-create",
            {"id": "g", "traceId": "t", "name": "llm", "input": "q", "metadata": {"a": {"x": 1}}, "model": "gpt-4o"},
            id="c",
        ),
        envelope(
            "generation-update",
            {
                "id": "g",
                "output": "answer",
                "endTime": "2025-03-01T12:00:05Z",
                "usage": {"input": 3, "output": 4},
                "metadata": {"a": {"y": 2}},
                "environment": "other",
                "startTime": "2025-03-01T13:00:00Z",
            },
            id="u",
            ts="2025-03-01T12:00:05Z",
        ),
    )
    (row,) = out.observations
    assert (row["name"], json.loads(row["input"]), json.loads(row["output"])) == ("llm", "q", "answer")
    assert row["usage_details"] == {"input": 3, "output": 4, "total": 7} and row["model"] == "gpt-4o"
    assert json.loads(row["metadata"]) == {"a": {"x": 1, "y": 2}}  # deep merged
    assert row["start_time"] == T0 and row["environment"] == "default"  # immutable: the first write wins
    assert row["trace_id"] == "t"


def test_update_merges_into_the_stored_record():
    stored = {
        "id": "g",
        "trace_id": "t",
        "type": "GENERATION",
        "name": "llm",
        "start_time": T0,
        "level": "DEFAULT",
        "environment": "prod",
        "input": '"q"',
        "metadata": '{"a": 1}',
        "model": "gpt-4o",
        "usage_details": {"input": 1, "total": 1},
    }
    out = rows_of(
        envelope("generation-update", {"id": "g", "output": "done", "level": "ERROR", "metadata": {"b": 2}}),
        bases={"g": stored},
    )
    (row,) = out.observations
    assert (row["name"], row["input"], row["model"], row["environment"]) == ("llm", '"q"', "gpt-4o", "prod")
    assert json.loads(row["output"]) == "done" and row["level"] == "ERROR"
    assert json.loads(row["metadata"]) == {"a": 1, "b": 2}
    assert row["usage_details"] == {"input": 1, "total": 1}  # the update carried none


def test_update_without_a_record_stands_alone():
    (row,) = rows_of(envelope("span-update", {"id": "s", "traceId": "t", "output": "x"})).observations
    assert row["type"] == "SPAN" and row["start_time"] == T0


def test_observation_without_trace_becomes_its_own_trace():
    out = rows_of(envelope("span-create", {"id": "lonely", "environment": "dev"}))
    (row,) = out.observations
    assert row["trace_id"] == "lonely"
    assert out.traces == [{"id": "lonely", "observation_id": "lonely", "timestamp": T0, "environment": "dev"}]


def test_end_before_start_is_clamped():
    body = {"id": "s", "traceId": "t", "startTime": "2025-03-01T12:00:05Z", "endTime": "2025-03-01T12:00:01Z"}
    (row,) = rows_of(envelope("span-create", body)).observations
    assert row["end_time"] == row["start_time"]


def test_score_create_becomes_a_score_row_at_the_envelope_time():
    out = rows_of(envelope("score-create", {"id": "sc", "name": "q", "traceId": "t", "value": "good"}))
    (row,) = out.scores
    assert (row["id"], row["data_type"], row["string_value"], row["timestamp"]) == ("sc", "CATEGORICAL", "good", T0)


def test_events_survive_a_json_round_trip():
    """What the WAL stores is JSON: mapping the decoded events gives the same rows."""
    validated = validate_batch(
        [
            envelope("trace-create", {"id": "t", "name": "n"}, id="1"),
            envelope("generation-create", {"id": "g", "traceId": "t", "usage": {"input": 1}}, id="2"),
            envelope("score-create", {"name": "q", "traceId": "t", "value": 1}, id="3"),
        ]
    )
    decoded = json.loads(json.dumps(validated.events))
    assert map_events(decoded) == map_events(validated.events)
