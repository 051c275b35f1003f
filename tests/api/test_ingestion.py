"""``POST /api/public/ingestion``: Langfuse's legacy batch (SDK v2 everything, SDK v3/v4 scores).

Over real sockets: per-envelope 207 answers, updates merged into the record they update (in one
request, across requests, and across worker processes), pricing, durability through the WAL,
and project isolation.
"""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until

INGESTION = "/api/public/ingestion"
TRACE_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"  # SDK v2 uses UUIDs


def event(event_type: str, body: dict[str, Any], ts: str = "2025-03-01T12:00:00.000Z", id: str | None = None) -> dict:
    return {"id": id or str(uuid.uuid4()), "type": event_type, "timestamp": ts, "body": body}


def send(api, *events: dict, auth: Any = None) -> dict:
    kwargs = {"auth": auth} if auth is not None else {}
    payload = {"batch": list(events), "metadata": {"sdk_name": "python", "sdk_version": "2.60.0"}}
    response = api.post(INGESTION, json=payload, **kwargs)
    assert response.status_code == 207, response.text
    return response.json()


def observation(api, obs_id: str, project: str = "default") -> dict | None:
    rows = api.server.query.query(project, "SELECT * FROM {observations} WHERE id = ?", [obs_id])
    return rows[0] if rows else None


def observation_where(api, obs_id: str, predicate, project: str = "default") -> dict:
    return wait_until(lambda: (row := observation(api, obs_id, project)) is not None and predicate(row) and row)


def v2_sdk_trace(prefix: str = "") -> list[dict]:
    """What the v2 SDK sends for trace → span → generation, the generation finished by an update."""
    return [
        event(
            "trace-create",
            {
                "id": TRACE_ID,
                "name": "chat-request",
                "userId": "user-7",
                "sessionId": "session-3",
                "tags": ["prod"],
                "metadata": {"tenant": "acme"},
                "input": {"question": "capital of France?"},
                "timestamp": "2025-03-01T12:00:00.000Z",
            },
        ),
        event(
            "span-create",
            {
                "id": f"{prefix}span-1",
                "traceId": TRACE_ID,
                "name": "retrieve",
                "startTime": "2025-03-01T12:00:00.100Z",
                "endTime": "2025-03-01T12:00:00.300Z",
                "input": "capital of France?",
                "output": ["doc-1"],
            },
            ts="2025-03-01T12:00:00.100Z",
        ),
        event(
            "generation-create",
            {
                "id": f"{prefix}gen-1",
                "traceId": TRACE_ID,
                "parentObservationId": f"{prefix}span-1",
                "name": "answer",
                "startTime": "2025-03-01T12:00:00.400Z",
                "model": "gpt-4o",
                "modelParameters": {"temperature": 0, "max_tokens": 100},
                "input": [{"role": "user", "content": "capital of France?"}],
                "metadata": {"attempt": 1},
            },
            ts="2025-03-01T12:00:00.400Z",
        ),
        event(
            "generation-update",
            {
                "id": f"{prefix}gen-1",
                "traceId": TRACE_ID,
                "endTime": "2025-03-01T12:00:01.400Z",
                "completionStartTime": "2025-03-01T12:00:00.900Z",
                "output": {"role": "assistant", "content": "Paris"},
                "usage": {"input": 1000, "output": 200, "unit": "TOKENS"},
            },
            ts="2025-03-01T12:00:01.400Z",
        ),
    ]


# ------------------------------------------------------------------------------------ the v2 SDK flow
def test_v2_sdk_batch_lands_merged_and_priced(api):
    answer = send(api, *v2_sdk_trace())
    assert len(answer["successes"]) == 4 and answer["errors"] == []
    assert all(s["status"] == 201 for s in answer["successes"])

    gen = observation_where(api, "gen-1", lambda r: r["output"] is not None)
    assert (gen["type"], gen["name"], gen["trace_id"], gen["parent_observation_id"]) == (
        "GENERATION",
        "answer",
        TRACE_ID,
        "span-1",
    )
    assert json.loads(gen["input"]) == [{"role": "user", "content": "capital of France?"}]
    assert json.loads(gen["output"]) == [{"role": "assistant", "content": "Paris"}]
    assert json.loads(gen["model_parameters"]) == {"temperature": 0, "max_tokens": 100}
    assert json.loads(gen["metadata"]) == {"attempt": 1}
    assert (gen["end_time"] - gen["start_time"]).total_seconds() == 1.0
    assert (gen["completion_start_time"] - gen["start_time"]).total_seconds() == 0.5
    assert gen["usage_details"] == {"input": 1000, "output": 200, "total": 1200}
    assert gen["cost_source"] == "computed" and gen["total_cost"] > 0 and gen["matched_model"]
    assert gen["level"] == "DEFAULT" and gen["environment"] == "default"

    span = observation(api, "span-1")
    assert span["type"] == "SPAN" and json.loads(span["output"]) == ["doc-1"]
    # A batch publishes its files one table at a time: the trace row may land just after the
    # observations of the same batch.
    (trace,) = wait_until(lambda: api.server.query.query("default", "SELECT * FROM {traces} WHERE id = ?", [TRACE_ID]))
    assert (trace["name"], trace["user_id"], trace["session_id"], trace["tags"]) == (
        "chat-request",
        "user-7",
        "session-3",
        ["prod"],
    )
    assert json.loads(trace["metadata"]) == {"tenant": "acme"}
    assert json.loads(trace["input"]) == {"question": "capital of France?"}


def test_ingested_trace_reads_back_through_the_trace_endpoints(api):
    send(api, *v2_sdk_trace())
    observation_where(api, "gen-1", lambda r: r["output"] is not None)
    trace = api.get(f"/api/public/traces/{TRACE_ID}").json()
    assert (trace["name"], trace["userId"], trace["sessionId"], trace["tags"]) == (
        "chat-request",
        "user-7",
        "session-3",
        ["prod"],
    )
    observations = {o["id"]: o for o in trace["observations"]}
    assert set(observations) == {"span-1", "gen-1"}
    gen = observations["gen-1"]
    assert gen["usageDetails"] == {"input": 1000, "output": 200, "total": 1200}
    assert gen["output"] == [{"role": "assistant", "content": "Paris"}] and gen["calculatedTotalCost"] > 0
    assert trace["totalCost"] == pytest.approx(gen["calculatedTotalCost"])


def test_update_in_a_later_request_merges_into_the_stored_record(api):
    send(api, *v2_sdk_trace())
    observation_where(api, "gen-1", lambda r: r["output"] is not None)
    send(
        api,
        event(
            "generation-update",
            {
                "id": "gen-1",
                "traceId": TRACE_ID,
                "level": "WARNING",
                "statusMessage": "slow",
                "metadata": {"retries": 2},
                "usage": {"input": 10, "output": 20, "inputCost": 0.5, "outputCost": 0.25},
            },
            ts="2025-03-01T12:00:02Z",
        ),
    )
    gen = observation_where(api, "gen-1", lambda r: r["level"] == "WARNING")
    assert gen["status_message"] == "slow"
    assert json.loads(gen["metadata"]) == {"attempt": 1, "retries": 2}  # deep merged
    assert json.loads(gen["output"]) == [{"role": "assistant", "content": "Paris"}]  # kept from the first request
    assert gen["name"] == "answer" and gen["model"] == "gpt-4o" and gen["parent_observation_id"] == "span-1"
    assert gen["usage_details"] == {"input": 10, "output": 20, "total": 30}
    assert gen["cost_details"] == {"input": 0.5, "output": 0.25, "total": 0.75}
    assert (gen["cost_source"], gen["total_cost"]) == ("provided", 0.75)
    assert api.server.query.count("default", "observations") == 2  # still one row per observation


def test_updates_across_worker_processes_merge(start_server):
    """Batches run concurrently in worker processes: an update waits for the earlier batches."""
    server = start_server(parquet={"flush_interval": "50ms", "workers": 2})
    base = f"http://127.0.0.1:{server.http_port}"
    with httpx.Client(base_url=base, auth=("pk-lf-test", "sk-lf-test")) as client:

        def post(*events: dict) -> None:
            assert client.post(INGESTION, json={"batch": list(events)}).status_code == 207

        for n in range(12):
            post(event("span-create", {"id": f"s{n}", "traceId": "t", "name": f"step-{n}", "input": n}))
            post(event("span-update", {"id": f"s{n}", "traceId": "t", "output": n * 10}, ts="2025-03-01T12:00:01Z"))
            post(event("span-update", {"id": f"s{n}", "traceId": "t", "level": "ERROR"}, ts="2025-03-01T12:00:02Z"))

    def merged() -> list[dict]:
        rows = server.query.query("default", "SELECT * FROM {observations} WHERE level = 'ERROR' ORDER BY id")
        return rows if len(rows) == 12 else []

    for row in wait_until(merged, timeout=30):
        n = int(row["id"][1:])
        assert (row["name"], json.loads(row["input"]), json.loads(row["output"])) == (f"step-{n}", n, n * 10)


def test_every_observation_event_type(api):
    kinds = {
        "event-create": "EVENT",
        "agent-create": "AGENT",
        "tool-create": "TOOL",
        "chain-create": "CHAIN",
        "retriever-create": "RETRIEVER",
        "evaluator-create": "EVALUATOR",
        "embedding-create": "EMBEDDING",
        "guardrail-create": "GUARDRAIL",
    }
    send(api, *(event(t, {"id": f"o-{t}", "traceId": "t"}) for t in kinds))
    send(
        api,
        event("observation-create", {"id": "legacy-1", "traceId": "t", "type": "GENERATION", "model": "gpt-4o"}),
        event("observation-update", {"id": "legacy-1", "traceId": "t", "type": "GENERATION", "output": "x"}),
    )
    legacy = observation_where(api, "legacy-1", lambda r: r["output"] is not None)
    assert legacy["type"] == "GENERATION" and legacy["model"] == "gpt-4o"
    for event_type, kind in kinds.items():
        assert observation(api, f"o-{event_type}")["type"] == kind


def test_observation_without_trace_id_is_its_own_trace(api):
    send(api, event("span-create", {"id": "old-sdk-span", "name": "legacy"}))
    row = observation_where(api, "old-sdk-span", lambda r: True)
    assert row["trace_id"] == "old-sdk-span"
    traces = api.server.query.query("default", "SELECT id FROM {traces}")
    assert traces == [{"id": "old-sdk-span"}]


# ------------------------------------------------------------------------------------ scores and logs
def test_v3_v4_sdk_score_create(api):
    body = {
        "id": "d2b1c0d4-4c4e-4c5a-9f0e-8f1f0e2d3c4b",
        "traceId": TRACE_ID,
        "observationId": "gen-1",
        "name": "correctness",
        "value": 0.9,
        "dataType": "NUMERIC",
        "comment": "looks right",
        "environment": "production",
        "metadata": {"judge": "gpt-4o"},
    }
    answer = send(api, event("score-create", body, id="a" * 32))
    assert answer == {"successes": [{"id": "a" * 32, "status": 201}], "errors": []}
    wait_until(lambda: api.get(f"/api/public/v2/scores/{body['id']}").status_code == 200)
    score = api.get(f"/api/public/v2/scores/{body['id']}").json()
    assert (score["traceId"], score["observationId"], score["value"], score["environment"]) == (
        TRACE_ID,
        "gen-1",
        0.9,
        "production",
    )
    assert score["timestamp"] == "2025-03-01T12:00:00.000Z"  # the envelope's time
    assert score["metadata"] == {"judge": "gpt-4o"}


def test_sdk_log_is_dropped_and_invalid_events_are_listed(api):
    answer = send(
        api,
        event("sdk-log", {"log": {"message": "hello from the SDK"}}, id="log-1"),
        event("span-create", {"id": "ok-span", "traceId": "t"}, id="good"),
        event("span-create", {"traceId": "t"}, id="no-body-id"),
        event("generation-create", {"id": "g", "level": "LOUD"}, id="bad-level"),
        event("score-create", {"name": "q", "value": 1}, id="bad-score"),
        event("teleport-create", {"id": "x"}, id="bad-type"),
        {"type": "span-create", "body": {"id": "x"}},
    )
    assert answer["successes"] == [{"id": "good", "status": 201}]
    errors = {e["id"]: e for e in answer["errors"]}
    assert set(errors) == {"no-body-id", "bad-level", "bad-score", "bad-type", "unknown"}
    for error in errors.values():
        assert error["status"] == 400 and error["message"] == "Invalid request data" and error["error"]
    assert "exactly one" in errors["bad-score"]["error"]
    observation_where(api, "ok-span", lambda r: True)
    assert api.server.query.count("default", "observations") == 1


def test_bearer_public_key_may_only_send_scores(api):
    bearer = {"authorization": "Bearer pk-lf-test"}
    response = httpx.post(
        f"{api.base}{INGESTION}",
        headers=bearer,
        json={
            "batch": [
                event("score-create", {"id": "thumb", "name": "thumbs", "traceId": "t", "value": 1}, id="s"),
                event("trace-create", {"id": "t"}, id="t"),
            ]
        },
    )
    assert response.status_code == 207
    assert response.json() == {
        "successes": [{"id": "s", "status": 201}],
        "errors": [{"id": "t", "status": 401, "message": "Authentication error", "error": "Access Scope Denied"}],
    }
    wait_until(lambda: api.get("/api/public/v2/scores/thumb").status_code == 200)
    assert api.server.query.count("default", "traces") == 0


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"{not json", 400), (b'{"batch": {"id": 1}}', 400), (b"[]", 400), (b'{"nobatch": []}', 400)],
)
def test_request_level_garbage_is_400(api, content, status):
    response = api.post(INGESTION, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["message"] == "Invalid request data"


def test_credentials_are_required(api):
    assert httpx.post(f"{api.base}{INGESTION}", json={"batch": []}).status_code == 401
    wrong = httpx.post(f"{api.base}{INGESTION}", json={"batch": []}, auth=("pk-lf-test", "nope"))
    assert wrong.status_code == 401 and "Invalid credentials" in wrong.json()["message"]


def test_gzip_bodies_are_accepted(api):
    body = gzip.compress(json.dumps({"batch": [event("span-create", {"id": "zipped", "traceId": "t"})]}).encode())
    response = api.post(
        INGESTION, content=body, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert response.status_code == 207 and len(response.json()["successes"]) == 1
    observation_where(api, "zipped", lambda r: True)


# ------------------------------------------------------------------------------------ durability, isolation
def test_acknowledged_batches_survive_a_restart(start_server, tmp_path):
    data_dir = tmp_path / "restart-data"
    first = start_server(data_dir=data_dir, parquet={"flush_interval": "100ms", "workers": 0})
    first.pipeline.pause()  # nothing reaches Parquet: the batch is only in the WAL when acknowledged
    with httpx.Client(base_url=f"http://127.0.0.1:{first.http_port}", auth=("pk-lf-test", "sk-lf-test")) as client:
        events = [
            *v2_sdk_trace(),
            event("score-create", {"id": "kept-score", "name": "q", "traceId": TRACE_ID, "value": 1}),
        ]
        assert client.post(INGESTION, json={"batch": events}).status_code == 207
        assert (
            client.post(
                "/api/public/scores", json={"id": "kept-2", "name": "q", "traceId": TRACE_ID, "value": 2}
            ).status_code
            == 200
        )
    first.stop()
    assert not (data_dir / "tables" / "observations").exists()

    second = start_server(data_dir=data_dir, parquet={"flush_interval": "100ms", "workers": 0})

    def landed() -> bool:
        gen = second.query.query("default", "SELECT output, usage_details FROM {observations} WHERE id = 'gen-1'")
        scores = {r["id"] for r in second.query.query("default", "SELECT id FROM {scores}")}
        return bool(gen) and gen[0]["output"] is not None and scores == {"kept-score", "kept-2"}

    wait_until(landed)


def test_projects_are_isolated(api, other_api):
    send(api, event("span-create", {"id": "mine", "traceId": "t", "name": "original", "input": "a"}))
    observation_where(api, "mine", lambda r: True)
    # The other project updating an observation with the same id creates its own record.
    send(other_api, event("span-update", {"id": "mine", "traceId": "t", "output": "theirs"}))
    observation_where(other_api, "mine", lambda r: True, project="other")
    ours = observation(api, "mine")
    assert (ours["name"], ours["output"]) == ("original", None)
    theirs = observation(other_api, "mine", "other")
    assert (theirs["name"], json.loads(theirs["output"])) == (None, "theirs")
