"""Scores over the REST API: create (one or a list), validate, list v1/v2/v3, get, delete.

Everything goes over real sockets; contract tests parse the answers with the real ``langfuse``
v5 models, and a fixture of the v3/v4 models' required keys checks the legacy shapes.
"""

from __future__ import annotations

import base64
import calendar
import re
import time
import uuid

import httpx
import pytest

from tests.conftest import wait_until

SCORES = "/api/public/scores"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def post_score(api, **body) -> str:
    response = api.post(SCORES, json={"name": "quality", "traceId": "trace-1", "value": 0.5, **body})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def stored_ids(api, project: str = "default") -> set[str]:
    return {row["id"] for row in api.server.query.query(project, "SELECT id FROM {scores}")}


def wait_for(api, *ids: str, project: str = "default") -> None:
    wait_until(lambda: set(ids) <= stored_ids(api, project))


def ingest(api, *events: dict) -> httpx.Response:
    batch = [{"id": uuid.uuid4().hex, "timestamp": "2025-03-01T12:00:00.000Z", **event} for event in events]
    response = api.post("/api/public/ingestion", json={"batch": batch})
    assert response.status_code == 207, response.text
    assert response.json()["errors"] == []
    return response


def trace_fact(trace_id: str, **body) -> dict:
    return {"type": "trace-create", "body": {"id": trace_id, **body}}


# ------------------------------------------------------------------------------------ create
def test_single_score_answers_its_id_and_reads_back(api):
    score_id = post_score(api, comment="fine", metadata={"by": "ci"}, environment="prod")
    assert UUID.match(score_id)  # generated like Langfuse does
    wait_for(api, score_id)
    body = api.get(f"/api/public/v2/scores/{score_id}").json()
    assert body["id"] == score_id and body["projectId"] == "default"
    assert (body["traceId"], body["name"], body["value"], body["dataType"], body["source"]) == (
        "trace-1",
        "quality",
        0.5,
        "NUMERIC",
        "API",
    )
    assert (body["comment"], body["metadata"], body["environment"]) == ("fine", {"by": "ci"}, "prod")
    assert body["timestamp"].endswith("Z") and body["createdAt"] and body["updatedAt"]


def test_list_of_scores_is_accepted_with_202(api):
    response = api.post(
        SCORES,
        json=[
            {"id": "aaaaaaaaaaaaaaa1", "traceId": "t", "name": "a", "value": 1.0, "timestamp": "2025-03-01T10:00:00Z"},
            {"id": "aaaaaaaaaaaaaaa2", "sessionId": "s", "name": "b", "value": "ok", "dataType": "CATEGORICAL"},
        ],
    )
    assert response.status_code == 202 and response.json() == {"message": "Accepted"}
    wait_for(api, "aaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaa2")
    first = api.get("/api/public/v2/scores/aaaaaaaaaaaaaaa1").json()
    assert first["timestamp"] == "2025-03-01T10:00:00.000Z"


def test_list_with_invalid_scores_answers_207_and_keeps_the_valid_ones(api):
    response = api.post(
        SCORES,
        json=[
            {"id": "good-1", "traceId": "t", "name": "a", "value": 1},
            {"id": "bad-1", "name": "a", "value": 1},  # no subject
            {"id": "bad-2", "traceId": "t", "name": "a", "value": 3, "dataType": "BOOLEAN"},
            {"id": "good-2", "traceId": "t", "name": "b", "value": "x"},
        ],
    )
    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [set(e) for e in body["errors"]] == [{"message"}, {"message"}]
    assert "exactly one" in body["errors"][0]["message"] and "0 or 1" in body["errors"][1]["message"]
    wait_for(api, "good-1", "good-2")
    assert not {"bad-1", "bad-2"} & stored_ids(api)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "q", "value": 1}, "exactly one"),
        ({"name": "q", "value": 1, "traceId": "t", "sessionId": "s"}, "exactly one"),
        ({"name": "q", "value": 1, "sessionId": "s", "observationId": "o"}, "ObservationId requires traceId"),
        ({"name": "q", "value": 1, "datasetRunId": "r", "traceId": "t"}, "exactly one"),
        ({"name": "", "value": 1, "traceId": "t"}, "name"),
        ({"value": 1, "traceId": "t"}, "name"),
        ({"name": "q", "traceId": "t"}, "value"),
        ({"name": "q", "value": [1], "traceId": "t"}, "value"),
        ({"name": "q", "value": "high", "dataType": "NUMERIC", "traceId": "t"}, "NUMERIC score needs a number"),
        ({"name": "q", "value": 2, "dataType": "CATEGORICAL", "traceId": "t"}, "CATEGORICAL score needs a string"),
        ({"name": "q", "value": 2, "dataType": "BOOLEAN", "traceId": "t"}, "0 or 1"),
        ({"name": "q", "value": "", "dataType": "TEXT", "traceId": "t"}, "TEXT"),
        ({"name": "q", "value": "x" * 501, "dataType": "TEXT", "traceId": "t"}, "TEXT"),
        ({"name": "q", "value": 1, "dataType": "RATING", "traceId": "t"}, "dataType"),
        ({"name": "q", "value": 1, "source": "EVAL", "traceId": "t"}, "source"),
        ({"name": "q", "value": 1, "source": "ANNOTATION", "traceId": "t"}, "configId is required"),
        ({"name": "q", "value": 1, "environment": "Production", "traceId": "t"}, "environment"),
        ({"name": "q", "value": 1, "timestamp": "not a time", "traceId": "t"}, "timestamp"),
    ],
)
def test_invalid_score_is_400_with_a_message_and_nothing_stored(api, body, message):
    response = api.post(SCORES, json={"id": "refused", **body})
    assert response.status_code == 400
    assert message in response.json()["message"]
    sentinel = post_score(api)  # the WAL is ordered: once this is stored, a stored refusal would be too
    wait_for(api, sentinel)
    assert "refused" not in stored_ids(api)


@pytest.mark.parametrize("content", [b"not json", b"42", b"[]", b'"text"'])
def test_unusable_bodies_are_400(api, content):
    response = api.post(SCORES, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["message"]


def test_data_types_are_inferred_or_checked_and_shaped(api):
    ids = {
        "numeric": post_score(api, value=3),
        "categorical": post_score(api, value="good"),
        "boolean": post_score(api, value=0, dataType="BOOLEAN"),
        "text": post_score(api, value="a free text remark", dataType="TEXT"),
        "correction": post_score(api, name="anything", value="the right answer", dataType="CORRECTION"),
    }
    wait_for(api, *ids.values())
    got = {kind: api.get(f"/api/public/v2/scores/{score_id}").json() for kind, score_id in ids.items()}
    assert (got["numeric"]["dataType"], got["numeric"]["value"]) == ("NUMERIC", 3.0)
    assert got["numeric"].get("stringValue") is None
    assert (got["categorical"]["dataType"], got["categorical"]["stringValue"]) == ("CATEGORICAL", "good")
    assert isinstance(got["categorical"]["value"], float)  # the clients' models need a number
    assert (got["boolean"]["dataType"], got["boolean"]["value"], got["boolean"]["stringValue"]) == (
        "BOOLEAN",
        0.0,
        "False",
    )
    assert (got["text"]["dataType"], got["text"]["stringValue"]) == ("TEXT", "a free text remark")
    assert "value" not in got["text"]
    assert (got["correction"]["name"], got["correction"]["stringValue"]) == ("output", "the right answer")


def test_sdk_style_ids_and_timestamps_are_kept(api):
    score_id = post_score(api, id="0123456789abcdef", timestamp="2025-02-03T04:05:06.789Z")
    assert score_id == "0123456789abcdef"
    wait_for(api, score_id)
    assert api.get(f"/api/public/v2/scores/{score_id}").json()["timestamp"] == "2025-02-03T04:05:06.789Z"


def test_sending_a_score_again_with_its_id_updates_it(api):
    post_score(api, id="same", value=0.1, comment="first")
    wait_for(api, "same")
    post_score(api, id="same", value=0.9, comment="second")
    wait_until(lambda: api.get("/api/public/v2/scores/same").json()["value"] == 0.9)
    assert api.get("/api/public/v2/scores").json()["meta"]["totalItems"] == 1


def test_bearer_public_key_may_create_scores_but_not_read(api):
    bearer = {"authorization": "Bearer pk-lf-test"}
    response = httpx.post(
        f"{api.base}{SCORES}",
        json={"name": "thumbs", "traceId": "t", "value": 1, "dataType": "BOOLEAN"},
        headers=bearer,
    )
    assert response.status_code == 200, response.text
    wait_for(api, response.json()["id"])
    assert httpx.get(f"{api.base}/api/public/v2/scores", headers=bearer).status_code == 401
    assert httpx.delete(f"{api.base}{SCORES}/x", headers=bearer).status_code == 401
    unknown = httpx.post(
        f"{api.base}{SCORES}",
        json={"name": "t", "traceId": "t", "value": 1},
        headers={"authorization": "Bearer pk-nope"},
    )
    assert unknown.status_code == 401
    assert httpx.post(f"{api.base}{SCORES}", json={"name": "t", "traceId": "t", "value": 1}).status_code == 401


def test_full_wal_answers_429_with_retry_after(start_server):
    server = start_server(storage={"wal": {"max_backlog_mib": 1}})
    server.pipeline.pause()
    url = f"http://127.0.0.1:{server.http_port}{SCORES}"
    big = {"name": "q", "traceId": "t", "value": 1, "comment": "x" * 200_000}
    with httpx.Client(auth=("pk-lf-test", "sk-lf-test")) as client:
        for _ in range(50):
            response = client.post(url, json=big)
            if response.status_code != 200:
                break
        assert response.status_code == 429 and response.headers["retry-after"] == "1"
        event = {"id": "e", "type": "score-create", "timestamp": "2025-03-01T00:00:00Z", "body": big}
        ingestion = client.post(f"http://127.0.0.1:{server.http_port}/api/public/ingestion", json={"batch": [event]})
        assert ingestion.status_code == 429 and ingestion.headers["retry-after"] == "1"


# ------------------------------------------------------------------------------------ v1 / v2 lists
@pytest.fixture
def scored(api):
    """Traces with facts, and scores of every kind on them (and on a session and a dataset run)."""
    ingest(
        api,
        trace_fact("tr-a", userId="alice", tags=["prod"], environment="production", sessionId="sess-a"),
        trace_fact("tr-a", tags=["beta"]),
        trace_fact("tr-b", userId="bob", tags=["prod"]),
    )
    scores = [
        {"id": "s1", "traceId": "tr-a", "name": "accuracy", "value": 0.9, "timestamp": "2025-03-01T10:00:00Z"},
        {
            "id": "s2",
            "traceId": "tr-a",
            "observationId": "obs-1",
            "name": "accuracy",
            "value": 0.2,
            "timestamp": "2025-03-01T11:00:00Z",
            "configId": "cfg-1",
        },
        {
            "id": "s3",
            "traceId": "tr-b",
            "name": "tone",
            "value": "friendly",
            "timestamp": "2025-03-01T12:00:00Z",
            "environment": "staging",
        },
        {
            "id": "s4",
            "traceId": "tr-b",
            "name": "helpful",
            "value": 1,
            "dataType": "BOOLEAN",
            "timestamp": "2025-03-01T13:00:00Z",
            "source": "ANNOTATION",
            "configId": "cfg-2",
            "queueId": "q-1",
        },
        {"id": "s5", "sessionId": "sess-a", "name": "session-rating", "value": 4, "timestamp": "2025-03-01T14:00:00Z"},
        {"id": "s6", "datasetRunId": "run-1", "name": "exact-match", "value": 1, "timestamp": "2025-03-01T15:00:00Z"},
        {
            "id": "s7",
            "traceId": "tr-a",
            "name": "fix",
            "value": "better",
            "dataType": "CORRECTION",
            "timestamp": "2025-03-01T16:00:00Z",
        },
        {
            "id": "s8",
            "traceId": "tr-b",
            "name": "remark",
            "value": "short and clear",
            "dataType": "TEXT",
            "timestamp": "2025-03-01T17:00:00Z",
        },
    ]
    assert api.post(SCORES, json=scores).status_code == 202
    wait_for(api, *(s["id"] for s in scores))
    wait_until(lambda: api.server.query.count("default", "traces") == 2)  # tr-a facts of one request merge
    return api


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def test_v2_lists_every_score_newest_first_with_its_trace(scored):
    body = scored.get("/api/public/v2/scores").json()
    assert [s["id"] for s in body["data"]] == ["s8", "s7", "s6", "s5", "s4", "s3", "s2", "s1"]
    assert body["meta"] == {"page": 1, "limit": 50, "totalItems": 8, "totalPages": 1}
    by_id = {s["id"]: s for s in body["data"]}
    assert by_id["s1"]["trace"] == {
        "userId": "alice",
        "tags": ["beta", "prod"],
        "environment": "production",
        "sessionId": "sess-a",
    }
    assert by_id["s5"]["sessionId"] == "sess-a" and by_id["s6"]["datasetRunId"] == "run-1"


def test_v1_lists_trace_scores_only_without_corrections(scored):
    body = scored.get(SCORES).json()
    assert [s["id"] for s in body["data"]] == ["s8", "s4", "s3", "s2", "s1"]
    first = body["data"][-1]
    assert first["trace"] == {"userId": "alice", "tags": ["beta", "prod"], "environment": "production"}
    assert "sessionId" not in first and "datasetRunId" not in first


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"userId": "alice"}, ["s7", "s2", "s1"]),
        ({"traceTags": "beta"}, ["s7", "s2", "s1"]),
        ({"traceTags": ["prod", "beta"]}, ["s7", "s2", "s1"]),
        ({"traceTags": "prod"}, ["s8", "s7", "s4", "s3", "s2", "s1"]),
        ({"name": "accuracy"}, ["s2", "s1"]),
        ({"source": "ANNOTATION"}, ["s4"]),
        ({"dataType": "BOOLEAN"}, ["s4"]),
        ({"dataType": "TEXT"}, ["s8"]),
        ({"operator": ">", "value": 0.5}, ["s6", "s5", "s4", "s1"]),
        ({"operator": "<=", "value": 0.2}, ["s2"]),
        ({"scoreIds": "s1,s3, s6"}, ["s6", "s3", "s1"]),
        ({"configId": "cfg-1"}, ["s2"]),
        ({"queueId": "q-1"}, ["s4"]),
        ({"environment": "staging"}, ["s3"]),
        ({"environment": ["staging", "default"]}, ["s8", "s7", "s6", "s5", "s4", "s3", "s2", "s1"]),
        ({"fromTimestamp": "2025-03-01T12:00:00Z", "toTimestamp": "2025-03-01T14:00:00+00:00"}, ["s4", "s3"]),
        ({"traceId": "tr-b"}, ["s8", "s4", "s3"]),
        ({"traceId": "tr-a,tr-b", "name": "accuracy"}, ["s2", "s1"]),
        ({"observationId": "obs-1,obs-9"}, ["s2"]),
        ({"sessionId": "sess-a"}, ["s5"]),
        ({"datasetRunId": "run-1"}, ["s6"]),
    ],
)
def test_v2_filters(scored, params, expected):
    assert ids(scored.get("/api/public/v2/scores", params=params)) == expected


def test_v1_filters_and_pagination(scored):
    assert ids(scored.get(SCORES, params={"userId": "bob"})) == ["s8", "s4", "s3"]
    page = scored.get(SCORES, params={"limit": 2, "page": 2}).json()
    assert [s["id"] for s in page["data"]] == ["s3", "s2"]
    assert page["meta"] == {"page": 2, "limit": 2, "totalItems": 5, "totalPages": 3}
    assert scored.get(SCORES, params={"limit": 2, "page": 9}).json()["data"] == []


def test_fields_can_leave_out_the_trace(scored):
    item = scored.get("/api/public/v2/scores", params={"fields": "score"}).json()["data"][0]
    assert "trace" not in item
    refused = scored.get("/api/public/v2/scores", params={"fields": "score", "userId": "alice"})
    assert refused.status_code == 400 and "trace" in refused.json()["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 101},
        {"page": 0},
        {"dataType": "PERCENT"},
        {"source": "HUMAN"},
        {"operator": "~", "value": 1},
        {"fromTimestamp": "last week"},
        {"filter": '[{"type":"string","column":"name","operator":"=","value":"x"}]'},
    ],
)
def test_bad_list_parameters_are_400(api, params):
    response = api.get("/api/public/v2/scores", params=params)
    assert response.status_code == 400 and response.json()["message"]


def test_get_by_id_v1_only_returns_trace_scores(scored):
    assert scored.get(f"{SCORES}/s1").json()["traceId"] == "tr-a"
    for score_id in ("s5", "s6", "s7"):  # session, dataset run, correction
        assert scored.get(f"{SCORES}/{score_id}").status_code == 404
        assert scored.get(f"/api/public/v2/scores/{score_id}").status_code == 200


def test_unknown_score_is_404_with_langfuse_message(api):
    for path in (f"{SCORES}/nope", "/api/public/v2/scores/nope"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json() == {
            "message": "Score not found within authorized project",
            "error": "LangfuseNotFoundError",
        }


# ------------------------------------------------------------------------------------ delete
def test_delete_then_404_and_gone_from_lists(api):
    keep, doomed = post_score(api, name="keep"), post_score(api, name="doomed")
    wait_for(api, keep, doomed)
    response = api.delete(f"{SCORES}/{doomed}")
    assert response.status_code == 202 and response.json() == {"message": "Score deletion queued successfully"}
    assert api.get(f"/api/public/v2/scores/{doomed}").status_code == 404
    assert api.get(f"{SCORES}/{doomed}").status_code == 404
    assert ids(api.get("/api/public/v2/scores")) == [keep]
    assert ids(api.get("/api/public/v3/scores")) == [keep]


def test_delete_hides_a_score_still_on_its_way(api):
    api.server.pipeline.pause()
    score_id = post_score(api)
    assert api.delete(f"{SCORES}/{score_id}").status_code == 202
    api.server.pipeline.resume()
    sentinel = post_score(api)
    wait_for(api, sentinel)
    assert api.get(f"/api/public/v2/scores/{score_id}").status_code == 404


# ------------------------------------------------------------------------------------ projects
def test_scores_are_isolated_between_projects(api, other_api):
    mine = post_score(api, id="shared-id", name="mine")
    theirs = post_score(other_api, name="theirs")
    wait_for(api, mine)
    wait_for(other_api, theirs, project="other")
    assert ids(api.get("/api/public/v2/scores")) == ["shared-id"]
    assert ids(other_api.get("/api/public/v2/scores")) == [theirs]
    assert ids(other_api.get(SCORES)) == [theirs] and ids(other_api.get("/api/public/v3/scores")) == [theirs]
    assert other_api.get("/api/public/v2/scores/shared-id").status_code == 404
    assert other_api.get(f"{SCORES}/shared-id").status_code == 404
    assert other_api.delete(f"{SCORES}/shared-id").status_code == 202  # deletes nothing of ours
    assert api.get("/api/public/v2/scores/shared-id").status_code == 200


# ------------------------------------------------------------------------------------ v3
def test_v3_pages_with_a_stable_cursor(api):
    scores = [
        {"id": f"v3-{i:02d}", "traceId": "t", "name": "n", "value": i, "timestamp": f"2025-03-01T10:{i:02d}:00Z"}
        for i in range(7)
    ]
    scores.append({"id": "v3-tie", "traceId": "t", "name": "n", "value": 9, "timestamp": "2025-03-01T10:03:00Z"})
    assert api.post(SCORES, json=scores).status_code == 202
    wait_for(api, *(s["id"] for s in scores))
    first = api.get("/api/public/v3/scores", params={"limit": 3}).json()
    assert [s["id"] for s in first["data"]] == ["v3-06", "v3-05", "v3-04"]
    assert first["meta"]["limit"] == 3 and re.fullmatch(r"[A-Za-z0-9_-]+", first["meta"]["cursor"])
    # Newer scores arriving meanwhile do not shift the pages after the cursor.
    assert api.post(SCORES, json=[{"id": "v3-new", "traceId": "t", "name": "n", "value": 1}]).status_code == 202
    wait_for(api, "v3-new")
    seen, cursor = [], first["meta"]["cursor"]
    while cursor:
        page = api.get("/api/public/v3/scores", params={"limit": 3, "cursor": cursor}).json()
        seen += [s["id"] for s in page["data"]]
        cursor = page["meta"].get("cursor")
    assert seen == ["v3-tie", "v3-03", "v3-02", "v3-01", "v3-00"]


def test_v3_value_is_polymorphic_and_field_groups_add_details(scored):
    core = {s["id"]: s for s in scored.get("/api/public/v3/scores").json()["data"]}
    assert core["s1"]["value"] == 0.9 and core["s4"]["value"] is True and core["s3"]["value"] == "friendly"
    assert core["s8"]["value"] == "short and clear" and core["s7"]["value"] == "better"
    assert set(core["s4"]) == {
        "id",
        "projectId",
        "name",
        "dataType",
        "value",
        "source",
        "timestamp",
        "environment",
        "createdAt",
        "updatedAt",
    }
    full = {
        s["id"]: s
        for s in scored.get("/api/public/v3/scores", params={"fields": "details,subject,annotation"}).json()["data"]
    }
    assert full["s2"]["subject"] == {"kind": "observation", "id": "obs-1", "traceId": "tr-a"}
    assert full["s1"]["subject"] == {"kind": "trace", "id": "tr-a"}
    assert full["s5"]["subject"] == {"kind": "session", "id": "sess-a"}
    assert full["s6"]["subject"] == {"kind": "experiment", "id": "run-1"}
    assert (full["s4"]["configId"], full["s4"]["queueId"], full["s4"]["authorUserId"]) == ("cfg-2", "q-1", None)
    assert full["s4"]["metadata"] == {} and full["s4"]["comment"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"id": "s1,s3"}, ["s3", "s1"]),
        ({"name": "accuracy,tone"}, ["s3", "s2", "s1"]),
        ({"source": "annotation"}, ["s4"]),
        ({"dataType": "numeric"}, ["s6", "s5", "s2", "s1"]),
        ({"environment": "staging"}, ["s3"]),
        ({"configId": "cfg-1,cfg-2"}, ["s4", "s2"]),
        ({"queueId": "q-1"}, ["s4"]),
        ({"traceId": "tr-a"}, ["s7", "s2", "s1"]),
        ({"traceId": "tr-a", "observationId": "obs-1"}, ["s2"]),
        ({"sessionId": "sess-a"}, ["s5"]),
        ({"experimentId": "run-1"}, ["s6"]),
        ({"dataType": "NUMERIC", "value": "0.9,4"}, ["s5", "s1"]),
        ({"dataType": "NUMERIC", "valueMin": "0.5", "valueMax": "1"}, ["s6", "s1"]),
        ({"dataType": "BOOLEAN", "value": "true"}, ["s4"]),
        ({"dataType": "CATEGORICAL", "value": "friendly"}, ["s3"]),
        ({"fromTimestamp": "2025-03-01T15:00:00Z", "toTimestamp": "2025-03-01T17:00:00Z"}, ["s7", "s6"]),
    ],
)
def test_v3_filters(scored, params, expected):
    assert ids(scored.get("/api/public/v3/scores", params=params)) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 101},
        {"limit": 0},
        {"fields": "details,everything"},
        {"unknownParam": "1"},
        {"observationId": "o"},
        {"traceId": "t", "sessionId": "s"},
        {"value": "1"},
        {"dataType": "NUMERIC,BOOLEAN", "value": "1"},
        {"dataType": "TEXT", "value": "x"},
        {"dataType": "BOOLEAN", "value": "yes"},
        {"dataType": "BOOLEAN", "valueMin": "0"},
        {"dataType": "NUMERIC", "valueMin": "abc"},
        {"dataType": "BOGUS"},
        {"userId": "u"},
        {"cursor": "!!not-a-cursor!!"},
        {"cursor": base64.urlsafe_b64encode(b'{"v": 9}').decode()},
    ],
)
def test_v3_rejects_bad_parameters(api, params):
    response = api.get("/api/public/v3/scores", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["message"]


# ------------------------------------------------------------------------------------ contracts
def test_v5_models_parse_every_answer(scored):
    from langfuse.api.commons.types import Score
    from langfuse.api.core.pydantic_utilities import parse_obj_as
    from langfuse.api.scores.types import CreateScoresResponse, GetScoresV3Response

    v3 = parse_obj_as(
        GetScoresV3Response, scored.get("/api/public/v3/scores", params={"fields": "details,subject,annotation"}).json()
    )
    assert {s.data_type for s in v3.data} == {"NUMERIC", "CATEGORICAL", "BOOLEAN", "TEXT", "CORRECTION"}
    paged = parse_obj_as(GetScoresV3Response, scored.get("/api/public/v3/scores", params={"limit": 2}).json())
    assert paged.meta.limit == 2 and paged.meta.cursor
    for item in scored.get("/api/public/v2/scores").json()["data"]:
        parse_obj_as(Score, item)
    for item in scored.get(SCORES).json()["data"]:
        parse_obj_as(Score, item)
    accepted = scored.post(SCORES, json=[{"traceId": "t", "name": "n", "value": 1}])
    assert parse_obj_as(CreateScoresResponse, accepted.json()).message == "Accepted"
    partial = scored.post(SCORES, json=[{"traceId": "t", "name": "n", "value": 1}, {"name": "n", "value": 1}])
    results = parse_obj_as(CreateScoresResponse, partial.json())
    assert (results.accepted, results.rejected, len(results.errors)) == (1, 1, 1)


# Required keys of the v3/v4 SDKs' Score (v2 list / get) and ScoreV1 (v1 list, inside traces)
# models, per data type (../shared/reference/langfuse-sdk.md §3.2).
COMMON_REQUIRED = {"id", "name", "source", "timestamp", "createdAt", "updatedAt", "environment", "dataType"}
REQUIRED_V2 = {
    "NUMERIC": COMMON_REQUIRED | {"value"},
    "CATEGORICAL": COMMON_REQUIRED | {"value", "stringValue"},
    "BOOLEAN": COMMON_REQUIRED | {"value", "stringValue"},
    "TEXT": COMMON_REQUIRED | {"stringValue"},
    "CORRECTION": COMMON_REQUIRED | {"value", "stringValue"},
}
REQUIRED_V1 = {kind: keys | {"traceId"} for kind, keys in REQUIRED_V2.items() if kind != "CORRECTION"}
NUMBER_KEYS = {"value"}


def _check_required(item: dict, required: dict[str, set[str]]) -> None:
    keys = required[item["dataType"]]
    assert keys <= item.keys(), f"{item['dataType']} lacks {keys - item.keys()}"
    for key in keys:
        assert item[key] is not None, f"{key} is null in {item['dataType']}"
    if "value" in keys:
        assert isinstance(item["value"], float | int) and not isinstance(item["value"], bool)


def test_legacy_clients_find_their_required_keys(scored):
    v2 = scored.get("/api/public/v2/scores").json()["data"]
    assert {i["dataType"] for i in v2} == set(REQUIRED_V2)
    for item in v2:
        _check_required(item, REQUIRED_V2)
        assert set(item["trace"]) == {"userId", "tags", "environment", "sessionId"}
    for item in scored.get(SCORES).json()["data"]:
        _check_required(item, REQUIRED_V1)
    _check_required(scored.get(f"{SCORES}/s1").json(), REQUIRED_V1)
    _check_required(scored.get("/api/public/v2/scores/s7").json(), REQUIRED_V2)


def test_real_langfuse_client_creates_reads_and_deletes_scores(api, monkeypatch):
    from langfuse import Langfuse
    from langfuse._client.resource_manager import LangfuseResourceManager

    monkeypatch.setattr(LangfuseResourceManager, "_instances", {})  # a client of its own, for this server
    monkeypatch.setenv("LANGFUSE_MEDIA_UPLOAD_ENABLED", "false")
    lf = Langfuse(public_key="pk-lf-test", secret_key="sk-lf-test", base_url=api.base, flush_interval=0.2)
    try:
        lf.create_score(name="correctness", value=0.8, trace_id="abcdef0123456789abcdef0123456789", comment="ok")
        lf.create_score(name="verdict", value="pass", data_type="CATEGORICAL", session_id="session-7")
        lf.create_score(name="thumbs", value=True, data_type="BOOLEAN", trace_id="abcdef0123456789abcdef0123456789")
        lf.flush()
        got = wait_until(
            lambda: (r := lf.api.scores.get_many(fields="details,subject")).data and len(r.data) == 3 and r
        )
        by_name = {s.name: s for s in got.data}
        assert by_name["correctness"].value == 0.8 and by_name["correctness"].comment == "ok"
        assert by_name["verdict"].value == "pass" and by_name["verdict"].subject.kind == "session"
        assert by_name["thumbs"].value is True
        assert re.fullmatch(r"[0-9a-f]{16}", by_name["thumbs"].id)  # the SDK's own ids are kept
        filtered = lf.api.scores.get_many(name="thumbs", data_type="BOOLEAN", value="true")
        assert [s.id for s in filtered.data] == [by_name["thumbs"].id]
        lf.api.scores.delete(by_name["thumbs"].id)
        assert {s.name for s in lf.api.scores.get_many().data} == {"correctness", "verdict"}
    finally:
        lf.shutdown()


def test_metrics_count_scores(api):
    post_score(api)
    text = httpx.get(f"{api.base}/metrics", auth=api.keys).text
    assert 'spanfuse_accepted_items_total{project="default",signal="scores",transport="http"} 1.0' in text


def test_created_timestamp_defaults_to_now(api):
    before = time.time()
    score_id = post_score(api)
    wait_for(api, score_id)
    stamp = api.get(f"/api/public/v2/scores/{score_id}").json()["timestamp"]
    moment = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    assert before - 2 < moment < time.time() + 2
