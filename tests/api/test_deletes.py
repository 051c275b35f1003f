"""DELETE /api/public/traces/{id} and /traces: tombstones hide a trace everywhere; compaction drops it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from langfuse.api import LangfuseAPI

from storage.compaction import Compactor
from storage.parquet_writer import PartitionedWriter
from storage.query import TableQuery
from storage.reads.traces import tombstone_traces
from storage.retired import live_paths
from tests.api.test_traces import T0_US, sid, span, tid, write_scores
from tests.conftest import wait_until


def _two_traces(api: Any) -> None:
    for trace in (1, 2):
        api.send_spans(
            [
                span(trace, trace * 10, name=f"root-{trace}", **{"langfuse.session.id": f"s{trace}"}),
                span(trace, trace * 10 + 1, trace * 10, name=f"child-{trace}", start=1),
            ]
        )
    write_scores(api, "default", [{"id": f"score-{n}", "trace_id": tid(n), "name": "q", "value": 1.0} for n in (1, 2)])


def _visible(api: Any) -> dict[str, Any]:
    """What every read endpoint shows of traces 1 and 2."""

    def data(path: str, **params: Any) -> list[dict[str, Any]]:
        response = api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    return {
        "traces": [t["id"] for t in data("/api/public/traces")],
        "trace 1": api.get(f"/api/public/traces/{tid(1)}").status_code,
        "observations": sorted(o["id"] for o in data("/api/public/observations")),
        "observation 10": api.get(f"/api/public/observations/{sid(10)}").status_code,
        "v2": sorted(o["id"] for o in data("/api/public/v2/observations")),
        "v2 by trace": data("/api/public/v2/observations", traceId=tid(1)),
        "sessions": sorted(s["id"] for s in data("/api/public/sessions")),
        "session s1": api.get("/api/public/sessions/s1").status_code,
        "scores": sorted(r["id"] for r in api.server.query.query("default", "SELECT id FROM {scores}")),
    }


def test_deleted_trace_vanishes_from_every_endpoint(api):
    _two_traces(api)
    before = _visible(api)
    assert before["traces"] == [tid(2), tid(1)] and before["sessions"] == ["s1", "s2"]
    response = api.delete(f"/api/public/traces/{tid(1)}")
    assert response.status_code == 200
    assert response.json() == {"message": "Trace deleted successfully"}
    assert _visible(api) == {
        "traces": [tid(2)],
        "trace 1": 404,
        "observations": [sid(20), sid(21)],
        "observation 10": 404,
        "v2": [sid(20), sid(21)],
        "v2 by trace": [],
        "sessions": ["s2"],
        "session s1": 404,
        "scores": ["score-2"],
    }
    assert api.get("/api/public/traces").json()["meta"]["totalItems"] == 1


def test_tombstone_is_durable_before_the_answer(api):
    _two_traces(api)
    assert api.delete(f"/api/public/traces/{tid(2)}").status_code == 200
    # Already on disk: a fresh reader (as after a restart) no longer sees the trace.
    files = list((Path(api.server.data_dir) / "tables" / "deletions" / "project_id=default").glob("date=*/*.parquet"))
    assert len(files) == 1
    fresh = TableQuery(api.server.data_dir)
    try:
        assert {r["id"] for r in fresh.query("default", "SELECT DISTINCT id FROM {traces}")} == {tid(1)}
    finally:
        fresh.close()


def test_delete_several_traces(api):
    _two_traces(api)
    response = api.delete("/api/public/traces", json={"traceIds": [tid(1), tid(2), tid(1)]})
    assert response.status_code == 200
    assert response.json() == {"message": "Traces deleted successfully"}
    assert api.get("/api/public/traces").json()["data"] == []
    assert api.get("/api/public/observations").json()["meta"]["totalItems"] == 0


@pytest.mark.parametrize(
    "body",
    [{"traceIds": []}, {}, {"traceIds": "abc"}, {"traceIds": [tid(1)], "extra": 1}, {"traceIds": [1, None]}],
)
def test_bad_delete_bodies_are_400(api, body):
    _two_traces(api)
    response = api.delete("/api/public/traces", json=body)
    assert response.status_code == 400, response.text
    assert "traceIds" in response.json()["message"] or "extra" in response.json()["message"]
    assert len(api.get("/api/public/traces").json()["data"]) == 2


def test_deleting_an_unknown_trace_is_accepted(api):
    assert api.delete(f"/api/public/traces/{tid(77)}").json() == {"message": "Trace deleted successfully"}


def test_the_real_v5_client_deletes(api):
    _two_traces(api)
    client = LangfuseAPI(base_url=api.base, username="pk-lf-test", password="sk-lf-test")
    assert client.trace.delete(tid(1)).message == "Trace deleted successfully"
    assert client.trace.delete_multiple(trace_ids=[tid(2)]).message == "Traces deleted successfully"
    assert api.get("/api/public/traces").json()["data"] == []


def test_a_project_cannot_delete_another_projects_trace(api, other_api):
    _two_traces(api)
    assert other_api.delete(f"/api/public/traces/{tid(1)}").status_code == 200
    assert other_api.delete("/api/public/traces", json={"traceIds": [tid(2)]}).status_code == 200
    assert [t["id"] for t in api.get("/api/public/traces").json()["data"]] == [tid(2), tid(1)]
    assert api.get(f"/api/public/traces/{tid(1)}").status_code == 200


def _rows(root: Path, table: str, project: str = "default") -> list[dict[str, Any]]:
    files = live_paths(root / "tables" / table / f"project_id={project}")
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_compaction_drops_rows_of_deleted_traces(api):
    _two_traces(api)  # two requests: several small files per partition
    api.send_spans([span(1, 12, 10, name="late-child-1", start=2), span(2, 22, 20, name="late-child-2", start=2)])
    write_scores(api, "default", [{"id": "score-3", "trace_id": tid(1), "name": "q", "value": 0.0}])
    root = Path(api.server.data_dir)
    assert len(live_paths(root / "tables/observations/project_id=default")) >= 2
    api.delete(f"/api/public/traces/{tid(1)}")
    before = api.get(f"/api/public/traces/{tid(2)}").json()

    stats = Compactor(root, min_files=2).run_once()
    assert stats.partitions >= 2
    for table, column in (("observations", "trace_id"), ("traces", "id"), ("scores", "trace_id")):
        kept = {r[column] for r in _rows(root, table)}
        assert tid(1) not in kept and tid(2) in kept, (table, kept)
    assert {r["id"] for r in _rows(root, "observations")} == {sid(20), sid(21), sid(22)}
    assert api.get(f"/api/public/traces/{tid(2)}").json() == before
    assert api.get(f"/api/public/traces/{tid(1)}").status_code == 404


def test_spans_received_after_a_deletion_are_new_data_and_compaction_keeps_them(api):
    # A deletion hides what was received before it, as in Langfuse. Spans of the trace received
    # later (the rest of an agent run still going, a score written again) were hidden for good,
    # and compaction then deleted them: acknowledged data lost.
    _two_traces(api)
    root = Path(api.server.data_dir)
    assert api.delete(f"/api/public/traces/{tid(1)}").status_code == 200
    api.send_spans([span(1, 13, 10, name="after-delete", start=3)])
    score = api.post("/api/public/scores", json={"id": "score-1", "traceId": tid(1), "name": "q", "value": 0.5})
    assert score.status_code == 200, score.text

    def shown() -> tuple[int, list[str], list[str], int]:
        trace = api.get(f"/api/public/traces/{tid(1)}")
        assert trace.status_code == 200, trace.text
        observations = sorted(o["name"] for o in trace.json()["observations"])
        scores = [score["value"] for score in trace.json()["scores"]]
        listing = api.get("/api/public/traces", params={"limit": 1})  # a full page: the total is counted
        return trace.status_code, observations, scores, listing.json()["meta"]["totalItems"]

    wait_until(lambda: shown()[2])  # the score lands through the WAL
    assert shown() == (200, ["after-delete"], [0.5], 2)
    Compactor(root, min_files=2).run_once()
    assert shown() == (200, ["after-delete"], [0.5], 2)
    assert sorted(r["name"] for r in _rows(root, "observations") if r["trace_id"] == tid(1)) == ["after-delete"]


def test_compaction_keeps_rows_without_a_trace_and_of_other_projects(tmp_path):
    writer = PartitionedWriter(tmp_path)
    for seq in range(2):
        for project in ("p", "q"):
            writer.add(
                "scores",
                project,
                [
                    {
                        "id": f"on-{seq}",
                        "trace_id": "t1",
                        "name": "n",
                        "data_type": "NUMERIC",
                        "source": "API",
                        "timestamp": T0_US,
                    },
                    {
                        "id": f"kept-{seq}",
                        "trace_id": "t2",
                        "name": "n",
                        "data_type": "NUMERIC",
                        "source": "API",
                        "timestamp": T0_US,
                    },
                    {
                        "id": f"session-{seq}",
                        "session_id": "s",
                        "name": "n",
                        "data_type": "NUMERIC",
                        "source": "API",
                        "timestamp": T0_US,
                    },
                ],
                {"ingested_at": T0_US + seq, "ingest_seq": seq},
            )
            writer.add(
                "logs",
                project,
                [
                    {"id": f"log-{seq}", "trace_id": "t1", "timestamp": T0_US},
                    {"id": f"free-log-{seq}", "timestamp": T0_US},
                ],
                {"ingested_at": T0_US + seq, "ingest_seq": seq},
            )
        writer.flush()
    tombstone_traces(tmp_path, "p", ["t1"])
    time.sleep(0.01)
    Compactor(tmp_path, min_files=2).run_once()
    assert sorted(r["id"] for r in _rows(tmp_path, "scores", "p")) == ["kept-0", "kept-1", "session-0", "session-1"]
    assert sorted(r["id"] for r in _rows(tmp_path, "logs", "p")) == ["free-log-0", "free-log-1"]
    assert len(_rows(tmp_path, "scores", "q")) == 6 and len(_rows(tmp_path, "logs", "q")) == 4
    assert [r["id"] for r in _rows(tmp_path, "deletions", "p")] == ["t1"]
