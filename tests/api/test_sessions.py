"""GET /api/public/sessions and /sessions/{id}: sessions derived from merged trace facts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_traces import TRACE_KEYS, assert_model, at, span, tid


def _sessions(api: Any) -> None:
    """Session a: traces 1 (t=0, prod) and 3 (t=30); session b: trace 2 (t=20, dev); trace 4 has none."""
    api.send_spans(
        [
            span(1, 1, name="one", start=0, **{"langfuse.session.id": "a", "langfuse.environment": "prod"}),
            span(2, 2, name="two", start=20, **{"langfuse.session.id": "b", "langfuse.environment": "dev"}),
            span(3, 3, name="three", start=30, **{"langfuse.session.id": "a", "langfuse.environment": "dev"}),
            span(4, 4, name="four", start=40),
        ]
    )


def listed(api: Any, **params: Any) -> list[str]:
    response = api.get("/api/public/sessions", params=params)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["data"]]


def test_list_sessions_newest_first_with_meta(api):
    _sessions(api)
    body = api.get("/api/public/sessions").json()
    assert body["data"] == [
        {"id": "b", "createdAt": at(20), "projectId": "default", "environment": "dev"},
        {"id": "a", "createdAt": at(0), "projectId": "default", "environment": "prod"},  # its first trace's
    ]
    for item in body["data"]:
        assert_model(item, "Session")
    assert body["meta"] == {"page": 1, "limit": 50, "totalItems": 2, "totalPages": 1}
    assert_model(body["meta"], "MetaResponse")
    second = api.get("/api/public/sessions", params={"limit": 1, "page": 2}).json()
    assert [s["id"] for s in second["data"]] == ["a"]
    assert second["meta"] == {"page": 2, "limit": 1, "totalItems": 2, "totalPages": 2}


def test_session_filters_apply_to_creation_time_and_environment(api):
    _sessions(api)
    assert listed(api, fromTimestamp=at(0)) == ["b", "a"]
    assert listed(api, fromTimestamp=at(1)) == ["b"]  # a was created at its first trace, t=0
    assert listed(api, toTimestamp=at(20)) == ["a"]  # exclusive
    assert listed(api, fromTimestamp=at(20), toTimestamp=at(21)) == ["b"]
    assert listed(api, environment="dev") == ["b"]
    assert listed(api, environment=["dev", "prod"]) == ["b", "a"]


def test_a_trace_moving_to_another_session_follows_its_latest_fact(api):
    api.send_spans([span(1, 1, name="root", **{"langfuse.session.id": "old"})])
    api.send_spans([span(1, 2, 1, name="child", start=1, **{"langfuse.session.id": "new"})])
    assert listed(api) == ["new"]
    assert api.get("/api/public/sessions/old").status_code == 404


def test_get_session_with_its_traces(api):
    _sessions(api)
    response = api.get("/api/public/sessions/a")
    assert response.status_code == 200
    session = response.json()
    assert_model(session, "Session", "SessionWithTraces")
    assert (session["id"], session["createdAt"], session["projectId"], session["environment"]) == (
        "a",
        at(0),
        "default",
        "prod",
    )
    assert [t["id"] for t in session["traces"]] == [tid(1), tid(3)]
    for trace in session["traces"]:
        assert set(trace) >= TRACE_KEYS
        assert_model(trace, "Trace")
        assert trace["sessionId"] == "a"
        assert "htmlPath" not in trace and "latency" not in trace


def test_unknown_session_is_404(api):
    response = api.get("/api/public/sessions/nope")
    assert response.status_code == 404
    assert response.json() == {
        "message": "Session not found within authorized project",
        "error": "LangfuseNotFoundError",
    }


@pytest.mark.parametrize(
    "params", [{"fromTimestamp": "soon"}, {"toTimestamp": "2025-11-24T25:00:00Z"}, {"limit": 101}, {"page": 0}]
)
def test_bad_session_parameters_are_400(api, params):
    response = api.get("/api/public/sessions", params=params)
    assert response.status_code == 400
    assert next(iter(params)) in response.json()["message"]


def test_sessions_are_isolated_per_project(api, other_api):
    _sessions(api)
    assert listed(other_api) == []
    assert other_api.get("/api/public/sessions/a").status_code == 404
    other_api.send_spans([span(9, 9, name="theirs", **{"langfuse.session.id": "a"})])
    theirs = other_api.get("/api/public/sessions/a").json()
    assert [t["id"] for t in theirs["traces"]] == [tid(9)]
    assert [t["id"] for t in api.get("/api/public/sessions/a").json()["traces"]] == [tid(1), tid(3)]
