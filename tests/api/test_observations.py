"""GET /api/public/observations (v1), /observations/{id} and /v2/observations: filters, paging, shapes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from langfuse.api import LangfuseAPI
from langfuse.api.core.pydantic_utilities import parse_obj_as
from langfuse.api.observations.types import ObservationsV2Response

from tests.api.test_traces import assert_observations_view, at, sid, span, tid

V2_GROUP_KEYS = {
    "core": {"id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"},
    "basic": {
        "isRootObservation",
        "name",
        "level",
        "statusMessage",
        "version",
        "environment",
        "bookmarked",
        "public",
        "userId",
        "sessionId",
    },
    "time": {"completionStartTime", "createdAt", "updatedAt"},
    "io": {"input", "output"},
    "metadata": {"metadata"},
    "model": {"model", "providedModelName", "internalModelId", "modelParameters"},
    "usage": {"usageDetails", "costDetails", "totalCost", "usagePricingTierName", "costSource"},
    "prompt": {"promptId", "promptName", "promptVersion"},
    "metrics": {"latency", "timeToFirstToken"},
    "trace_context": {"traceName", "tags", "release"},
}
ALWAYS = {"modelId", "inputPrice", "outputPrice", "totalPrice"}


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def _tree(api: Any) -> None:
    """Trace 1 (user u1, session s1): root 1 > gen 2 (ERROR) > tool 3; trace 2 (user u2): span 4, event 5."""
    api.send_spans(
        [
            span(
                1,
                1,
                name="root",
                start=0,
                duration=10,
                **{
                    "langfuse.user.id": "u1",
                    "langfuse.session.id": "s1",
                    "langfuse.trace.name": "trace-one",
                    "langfuse.trace.tags": ["x"],
                    "langfuse.release": "r1",
                    "langfuse.trace.public": True,
                },
            ),
            span(
                1,
                2,
                1,
                name="gen",
                start=1,
                duration=2,
                error="boom",
                **{
                    "langfuse.observation.type": "generation",
                    "langfuse.observation.model.name": "gpt-4o",
                    "langfuse.observation.model.parameters": '{"temperature": 0.2}',
                    "langfuse.observation.input": '[{"role": "user", "content": "hi"}]',
                    "langfuse.observation.output": "hello",
                    "langfuse.observation.metadata.short": "s",
                    "langfuse.observation.metadata.long": "x" * 300,
                    "langfuse.observation.completion_start_time": '"2025-11-24T16:00:01.500Z"',
                    "langfuse.observation.prompt.name": "greeting",
                    "langfuse.observation.prompt.version": 3,
                    "langfuse.version": "v2",
                },
            ),
            span(1, 3, 2, name="tool", start=2, duration=0.5, **{"langfuse.observation.type": "tool"}),
            span(2, 4, name="other", start=5, **{"langfuse.user.id": "u2", "langfuse.environment": "dev"}),
            span(
                2,
                5,
                4,
                name="evt",
                start=6,
                duration=0,
                **{"langfuse.observation.type": "event", "langfuse.environment": "dev"},
            ),
        ]
    )


# ------------------------------------------------------------------------------------ v1
def test_v1_list_shape_order_and_meta(api):
    _tree(api)
    body = api.get("/api/public/observations").json()
    assert [o["id"] for o in body["data"]] == [sid(5), sid(4), sid(3), sid(2), sid(1)]  # start time desc
    assert body["meta"] == {"page": 1, "limit": 50, "totalItems": 5, "totalPages": 1}
    for item in body["data"]:
        assert_observations_view(item)
        assert item["projectId"] == "default"
    gen = next(o for o in body["data"] if o["id"] == sid(2))
    assert gen["traceId"] == tid(1) and gen["parentObservationId"] == sid(1)
    assert (gen["type"], gen["level"], gen["statusMessage"], gen["version"]) == ("GENERATION", "ERROR", "boom", "v2")
    assert gen["input"] == [{"role": "user", "content": "hi"}] and gen["output"] == "hello"
    assert gen["metadata"]["short"] == "s" and gen["metadata"]["long"] == "x" * 300  # v1 does not truncate
    assert gen["modelParameters"] == {"temperature": 0.2}
    assert (gen["startTime"], gen["endTime"], gen["completionStartTime"]) == (at(1), at(3), at(1.5))
    assert gen["latency"] == pytest.approx(2.0) and gen["timeToFirstToken"] == pytest.approx(0.5)
    assert (gen["promptName"], gen["promptVersion"], gen["promptId"]) == ("greeting", 3, None)
    tool = next(o for o in body["data"] if o["id"] == sid(3))
    assert (tool["modelParameters"], tool["metadata"], tool["input"], tool["usageDetails"]) == ({}, {}, None, {})
    assert tool["usage"] == {"unit": "TOKENS", "input": 0, "output": 0, "total": 0}


def test_v1_filters(api):
    _tree(api)

    def listed(**params):
        return ids(api.get("/api/public/observations", params=params))

    assert listed(type="GENERATION") == [sid(2)]
    assert listed(name="tool") == [sid(3)]
    assert listed(userId="u1") == [sid(3), sid(2), sid(1)]  # the trace's user
    assert listed(level="ERROR") == [sid(2)]
    assert listed(traceId=tid(2)) == [sid(5), sid(4)]
    assert listed(version="v2") == [sid(2)]
    assert listed(parentObservationId=sid(1)) == [sid(2)]
    assert listed(environment="dev") == [sid(5), sid(4)]
    assert listed(environment=["dev", "default"]) == [sid(5), sid(4), sid(3), sid(2), sid(1)]
    assert listed(fromStartTime=at(2), toStartTime=at(6)) == [sid(4), sid(3)]  # from inclusive, to exclusive
    assert listed(userId="u1", type="TOOL") == [sid(3)]


def test_v1_pagination(api):
    _tree(api)
    pages = [api.get("/api/public/observations", params={"limit": 2, "page": p}).json() for p in (1, 2, 3)]
    assert [[o["id"] for o in p["data"]] for p in pages] == [[sid(5), sid(4)], [sid(3), sid(2)], [sid(1)]]
    assert all(p["meta"]["totalItems"] == 5 and p["meta"]["totalPages"] == 3 for p in pages)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"type": "BANANA"}, "type"),
        ({"level": "LOUD"}, "level"),
        ({"limit": 101}, "limit"),
        ({"fromStartTime": "not-a-time"}, "fromStartTime: expected an ISO-8601 timestamp"),
        ({"toStartTime": "2025-02-30T00:00:00Z"}, "toStartTime"),
    ],
)
def test_v1_bad_parameters_are_400(api, params, message):
    response = api.get("/api/public/observations", params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_v1_single_observation_and_404(api):
    _tree(api)
    item = api.get(f"/api/public/observations/{sid(2)}").json()
    assert_observations_view(item)
    assert (item["id"], item["name"], item["model"]) == (sid(2), "gen", "gpt-4o")
    missing = api.get(f"/api/public/observations/{sid(99)}")
    assert missing.status_code == 404
    assert missing.json() == {
        "message": f"Observation {sid(99)} not found within authorized project",
        "error": "LangfuseNotFoundError",
    }


def test_usage_and_cost_convention(api):
    api.send_spans(
        [
            span(
                1,
                1,
                name="llm",
                **{
                    "langfuse.observation.type": "generation",
                    "langfuse.observation.model.name": "no-such-model",
                    "langfuse.observation.usage_details": (
                        '{"input": 10, "cache_read": 4, "cache_write": 1, "output": 3, "reasoning": 5,'
                        ' "web_search_queries": 7}'
                    ),
                    "langfuse.observation.cost_details": '{"input": 0.1, "cache_read": 0.01, "output": 0.2}',
                },
            )
        ]
    )
    item = api.get(f"/api/public/observations/{sid(1)}").json()
    assert item["usageDetails"] == {
        "input": 10,
        "cache_read": 4,
        "cache_write": 1,
        "output": 3,
        "reasoning": 5,
        "total": 23,
        "web_search_queries": 7,
    }
    # input side: input + cache_read + cache_write (+ input_audio); output side: output + reasoning
    # (+ output_audio); total is the stored total; other counters are on neither side.
    assert item["usage"] == {"unit": "TOKENS", "input": 15, "output": 8, "total": 23}
    assert (item["promptTokens"], item["completionTokens"], item["totalTokens"]) == (15, 8, 23)
    assert item["calculatedInputCost"] == pytest.approx(0.11)
    assert item["calculatedOutputCost"] == pytest.approx(0.2)
    assert item["calculatedTotalCost"] == pytest.approx(0.31)
    assert item["costSource"] == "provided"


def test_observations_are_isolated_per_project(api, other_api):
    _tree(api)
    assert ids(other_api.get("/api/public/observations")) == []
    assert other_api.get(f"/api/public/observations/{sid(1)}").status_code == 404
    assert ids(other_api.get("/api/public/v2/observations")) == []
    assert ids(other_api.get("/api/public/v2/observations", params={"traceId": tid(1)})) == []
    assert ids(other_api.get("/api/public/observations", params={"userId": "u1"})) == []


# ------------------------------------------------------------------------------------ v2
def test_v2_default_groups_are_core_and_basic(api):
    _tree(api)
    body = api.get("/api/public/v2/observations").json()
    assert body["meta"] == {}
    assert [o["id"] for o in body["data"]] == [sid(5), sid(4), sid(3), sid(2), sid(1)]
    for item in body["data"]:
        assert set(item) == V2_GROUP_KEYS["core"] | V2_GROUP_KEYS["basic"] | ALWAYS
    by_id = {o["id"]: o for o in body["data"]}
    assert by_id[sid(2)]["userId"] == "u1" and by_id[sid(2)]["sessionId"] == "s1"
    assert by_id[sid(2)]["public"] is True and by_id[sid(4)]["public"] is False
    assert [by_id[sid(n)]["isRootObservation"] for n in range(1, 6)] == [True, False, False, True, False]
    parse_obj_as(ObservationsV2Response, body)


def test_v2_every_group(api):
    _tree(api)
    fields = ",".join(V2_GROUP_KEYS)
    body = api.get("/api/public/v2/observations", params={"fields": fields, "traceId": tid(1)}).json()
    parsed = parse_obj_as(ObservationsV2Response, body)  # how the v5 client parses it
    assert [o.id for o in parsed.data] == [sid(3), sid(2), sid(1)]
    every = set().union(*V2_GROUP_KEYS.values()) | ALWAYS
    gen = next(o for o in body["data"] if o["id"] == sid(2))
    assert set(gen) == every
    assert isinstance(gen["input"], str) and json.loads(gen["input"]) == [{"role": "user", "content": "hi"}]
    assert gen["output"] == "hello"
    assert gen["metadata"] == {"short": "s", "long": "x" * 200}  # values cut at 200 characters
    assert (gen["traceName"], gen["tags"], gen["release"]) == ("trace-one", ["x"], "r1")
    assert (gen["model"], gen["modelParameters"]) == ("gpt-4o", {"temperature": 0.2})
    assert gen["latency"] == pytest.approx(2.0) and gen["timeToFirstToken"] == pytest.approx(0.5)
    assert (gen["promptName"], gen["promptVersion"]) == ("greeting", 3)
    assert gen["completionStartTime"] == at(1.5)
    expanded = api.get(
        "/api/public/v2/observations", params={"fields": "metadata", "expandMetadata": "long", "name": "gen"}
    ).json()["data"]
    assert expanded[0]["metadata"]["long"] == "x" * 300
    assert set(expanded[0]) == V2_GROUP_KEYS["core"] | {"metadata"} | ALWAYS


def test_v2_filters(api):
    _tree(api)

    def listed(**params):
        return ids(api.get("/api/public/v2/observations", params=params))

    assert listed(userId="u1") == [sid(3), sid(2), sid(1)]
    assert listed(sessionId="s1", type="TOOL") == [sid(3)]
    assert listed(sessionId="nope") == []
    assert listed(name="other") == [sid(4)]
    assert listed(level="ERROR") == [sid(2)]
    assert listed(parentObservationId=sid(2)) == [sid(3)]
    assert listed(parentObservationId="") == [sid(4), sid(1)]
    assert listed(isRootObservation="true") == [sid(4), sid(1)]
    assert listed(isRootObservation="false") == [sid(5), sid(3), sid(2)]
    assert listed(environment="dev") == [sid(5), sid(4)]
    assert listed(fromStartTime=at(1), toStartTime=at(5)) == [sid(3), sid(2)]
    assert listed(version="v2") == [sid(2)]


def test_v2_orphan_span_is_a_root(api):
    api.send_spans([span(3, 1, 77, name="under-missing-parent"), span(3, 2, 1, name="child", start=1)])
    items = api.get("/api/public/v2/observations").json()["data"]
    assert {o["id"]: o["isRootObservation"] for o in items} == {sid(1): True, sid(2): False}
    assert ids(api.get("/api/public/v2/observations", params={"isRootObservation": True})) == [sid(1)]


def test_v2_cursor_pages_are_stable_under_concurrent_inserts(api):
    api.send_spans([span(1, n, name=f"s{n}", start=n) for n in range(1, 8)])
    first = api.get("/api/public/v2/observations", params={"limit": 3}).json()
    assert [o["id"] for o in first["data"]] == [sid(7), sid(6), sid(5)]
    cursor = first["meta"]["cursor"]
    base64.b64decode(cursor)  # opaque, but base64
    # New observations arrive while the client pages: newer ones and one at the cursor's time.
    api.send_spans([span(1, 100, name="newer", start=50), span(1, 3, name="s3-retry", start=3)])
    second = api.get("/api/public/v2/observations", params={"limit": 3, "cursor": cursor}).json()
    assert [o["id"] for o in second["data"]] == [sid(4), sid(3), sid(2)]
    third = api.get("/api/public/v2/observations", params={"limit": 3, "cursor": second["meta"]["cursor"]}).json()
    assert [o["id"] for o in third["data"]] == [sid(1)]
    assert "cursor" not in third["meta"]
    exact = api.get("/api/public/v2/observations", params={"limit": 8}).json()
    assert len(exact["data"]) == 8 and "cursor" not in exact["meta"]


def test_v2_cursor_orders_ties_by_id(api):
    api.send_spans([span(1, n, name="same-time", start=1) for n in (3, 1, 2)])
    seen = []
    cursor = None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        body = api.get("/api/public/v2/observations", params=params).json()
        seen += [o["id"] for o in body["data"]]
        cursor = body["meta"].get("cursor")
        if cursor is None:
            break
    assert seen == [sid(3), sid(2), sid(1)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cursor": "not base64!"}, "cursor: invalid cursor format"),
        ({"cursor": base64.b64encode(b'{"lastId": 1}').decode()}, "cursor: invalid cursor format"),
        ({"cursor": base64.b64encode(b"[1, 2]").decode()}, "cursor: invalid cursor format"),
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"parseIoAsJson": "true"}, "parseIoAsJson=true is no longer supported"),
        ({"type": "NOPE"}, "type"),
        ({"isRootObservation": "maybe"}, "isRootObservation"),
        ({"fromStartTime": "24/11/2025"}, "fromStartTime"),
        ({"filter": "[]"}, "filter"),
    ],
)
def test_v2_bad_parameters_are_400(api, params, message):
    response = api.get("/api/public/v2/observations", params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_v2_with_the_real_v5_client(api):
    _tree(api)
    client = LangfuseAPI(base_url=api.base, username="pk-lf-test", password="sk-lf-test")
    page = client.observations.get_many(limit=2, fields="core,basic,usage,io,trace_context")
    assert [o.id for o in page.data] == [sid(5), sid(4)]
    assert page.meta.cursor
    rest = client.observations.get_many(limit=10, cursor=page.meta.cursor, user_id="u1", is_root_observation=False)
    assert [o.id for o in rest.data] == [sid(3), sid(2)]
    assert rest.data[1].user_id == "u1" and rest.data[1].level == "ERROR"
    assert rest.meta.cursor is None


def test_usage_sides_of_every_bucket():
    from collector.api.observations import split_usage

    usage = {
        "input": 1,
        "cache_read": 2,
        "cache_write": 3,
        "input_audio": 4,
        "output": 5,
        "reasoning": 6,
        "output_audio": 7,
        "total": 28,
        "web_search_queries": 100,
        "input_cached_tokens": 10,  # Langfuse's rule: a key containing "input" is input side
        "output_reasoning_tokens": 20,
    }
    assert split_usage(usage) == (20, 38, 28)
    assert split_usage({}) == (0, 0, None)
