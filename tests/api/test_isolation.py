"""Keys of one project never read or change another project's data, on any endpoint."""

from __future__ import annotations

import json
import os

from tests.conftest import wait_until
from tests.otlp_helpers import make_span

TRACE = os.urandom(16)
ROOT = os.urandom(8)


def _seed(api) -> tuple[str, str, str]:
    spans = [
        make_span(
            TRACE,
            ROOT,
            name="secret-root",
            attributes={"session.id": "secret-session", "user.id": "secret-user", "langfuse.trace.tags": ["secret"]},
        ),
        make_span(
            TRACE,
            os.urandom(8),
            parent=ROOT,
            name="secret-llm",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
            },
        ),
    ]
    api.send_spans(spans)
    response = api.post("/api/public/scores", json={"traceId": TRACE.hex(), "name": "secret-score", "value": 1.0})
    assert response.status_code == 200, response.text
    score_id = response.json()["id"]
    wait_until(lambda: api.get(f"/api/public/v2/scores/{score_id}").status_code == 200)
    return TRACE.hex(), spans[1].span_id.hex(), score_id


def test_every_read_endpoint_is_scoped_to_the_callers_project(api, other_api):
    trace_id, observation_id, score_id = _seed(api)
    window = {"fromTimestamp": "2020-01-01T00:00:00Z", "toTimestamp": "2030-01-01T00:00:00Z"}
    metrics_query = json.dumps(
        {
            "view": "observations",
            "metrics": [{"measure": "count", "aggregation": "count"}],
            "dimensions": [],
            "filters": [],
            "fromTimestamp": window["fromTimestamp"],
            "toTimestamp": window["toTimestamp"],
        }
    )
    lists = [
        ("/api/public/traces", {}),
        ("/api/public/observations", {}),
        ("/api/public/v2/observations", {}),
        ("/api/public/sessions", {}),
        ("/api/public/scores", {}),
        ("/api/public/v2/scores", {}),
        ("/api/public/v3/scores", {}),
    ]
    for path, params in lists:
        mine = api.get(path, params=params)
        theirs = other_api.get(path, params=params)
        assert mine.status_code == theirs.status_code == 200, (path, mine.text, theirs.text)
        assert "secret" in mine.text, path  # the owner sees the data...
        assert "secret" not in theirs.text and trace_id not in theirs.text, path  # ...nobody else does
    daily_mine = api.get("/api/public/metrics/daily").json()["data"]
    daily_theirs = other_api.get("/api/public/metrics/daily").json()["data"]
    assert sum(day["countObservations"] for day in daily_mine) == 2
    assert daily_theirs == []
    by_id = [
        f"/api/public/traces/{trace_id}",
        f"/api/public/observations/{observation_id}",
        "/api/public/sessions/secret-session",
        f"/api/public/scores/{score_id}",
        f"/api/public/v2/scores/{score_id}",
    ]
    for path in by_id:
        assert api.get(path).status_code == 200, path
        assert other_api.get(path).status_code == 404, path
    for view in ("observations",):
        mine = api.get("/api/public/v2/metrics", params={"query": metrics_query}).json()["data"]
        theirs = other_api.get("/api/public/v2/metrics", params={"query": metrics_query}).json()["data"]
        assert sum(row.get("count_count", 0) or 0 for row in mine) == 2, view
        assert sum(row.get("count_count", 0) or 0 for row in theirs) == 0, view


def test_deletes_with_other_keys_do_not_touch_the_owner(api, other_api):
    trace_id, _, score_id = _seed(api)
    other_api.delete(f"/api/public/traces/{trace_id}")
    other_api.delete("/api/public/traces", json={"traceIds": [trace_id]})
    other_api.delete(f"/api/public/scores/{score_id}")
    assert api.get(f"/api/public/traces/{trace_id}").status_code == 200
    assert api.get(f"/api/public/v2/scores/{score_id}").status_code == 200


def test_scores_cannot_be_attached_across_projects_by_id_guessing(api, other_api):
    trace_id, _, _ = _seed(api)
    # Project "other" may write a score naming that trace id, but it lands in its own project only.
    response = other_api.post("/api/public/scores", json={"traceId": trace_id, "name": "intruder", "value": 0})
    assert response.status_code == 200
    wait_until(lambda: other_api.get(f"/api/public/v2/scores/{response.json()['id']}").status_code == 200)
    detail = api.get(f"/api/public/traces/{trace_id}").json()
    assert [s["name"] for s in detail["scores"]] == ["secret-score"]
