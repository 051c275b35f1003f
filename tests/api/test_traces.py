"""GET /api/public/traces and /traces/{id}: merged trace facts, filters, pagination, shapes, isolation."""

from __future__ import annotations

from typing import Any

import pytest

from storage.parquet_writer import PartitionedWriter
from tests.otlp_helpers import make_span

T0_NS = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z
T0_US = T0_NS // 1000


def tid(n: int) -> str:
    return f"{n:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


def at(seconds: float) -> str:
    """ISO timestamp (milliseconds, Z) ``seconds`` after T0, as the API writes it."""
    whole, frac = divmod(round(seconds * 1000), 1000)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"2025-11-{24 + days:02d}T{16 + hours:02d}:{minutes:02d}:{secs:02d}.{frac:03d}Z"


def span(
    trace: int,
    span_: int,
    parent: int | None = None,
    *,
    name: str = "span",
    start: float = 0.0,
    duration: float = 1.0,
    error: str | None = None,
    **attributes: Any,
) -> Any:
    """A raw OTLP span of trace ``tid(trace)``; attributes given with ``.`` spelled ``__``."""
    return make_span(
        bytes.fromhex(tid(trace)),
        bytes.fromhex(sid(span_)),
        parent=bytes.fromhex(sid(parent)) if parent is not None else b"",
        name=name,
        start_ns=T0_NS + int(start * 1e9),
        duration_ns=int(duration * 1e9),
        attributes={k.replace("__", "."): v for k, v in attributes.items()},
        error=error,
    )


def write_scores(api: Any, project: str, rows: list[dict[str, Any]]) -> None:
    """Store score rows directly (as the ingest pipeline would)."""
    defaults = {"data_type": "NUMERIC", "source": "API", "environment": "default", "timestamp": T0_US}
    writer = PartitionedWriter(api.server.data_dir)
    writer.add("scores", project, [defaults | r for r in rows], {"ingested_at": T0_US, "ingest_seq": 1})
    writer.flush()


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


# --------------------------------------------------------------------------------- contract
# Required keys (and JSON types) of the v1 models the real clients parse: langfuse-python
# v3.15 (pydantic.v1) and v4.18 (pydantic v2), ../shared/reference/langfuse-sdk.md §3.2.
# Not in v5 (which dropped these endpoints), so checked against this fixture.
STR, NUM, INT, BOOL, LIST, DICT, NULL = str, (int, float), int, bool, list, dict, type(None)
CLIENT_REQUIRED: dict[str, dict[str, Any]] = {
    "Trace": {"id": STR, "timestamp": STR, "tags": LIST, "public": BOOL, "environment": STR},
    "TraceWithDetails": {"htmlPath": STR},
    "TraceWithFullDetails": {"htmlPath": STR, "observations": LIST, "scores": LIST},
    "ObservationsView": {
        "id": STR,
        "type": STR,
        "startTime": STR,
        "usage": DICT,
        "level": STR,
        "usageDetails": DICT,
        "costDetails": DICT,
        "environment": STR,
        # v4 (pydantic v2): Any-typed fields without default must be present, null allowed
        "modelParameters": (dict, list, str, int, float, bool, NULL),
        "input": (dict, list, str, int, float, bool, NULL),
        "output": (dict, list, str, int, float, bool, NULL),
    },
    "Usage": {"input": INT, "output": INT, "total": INT},
    "ScoreV1": {
        "id": STR,
        "traceId": STR,
        "name": STR,
        "source": STR,
        "timestamp": STR,
        "createdAt": STR,
        "updatedAt": STR,
        "environment": STR,
        "dataType": STR,
    },
    "Session": {"id": STR, "createdAt": STR, "projectId": STR, "environment": STR},
    "SessionWithTraces": {"traces": LIST},
    "MetaResponse": {"page": INT, "limit": INT, "totalItems": INT, "totalPages": INT},
}
# What the brief promises on top: every key of Langfuse's APITrace / TraceWithDetails present.
TRACE_KEYS = {
    "id",
    "timestamp",
    "name",
    "input",
    "output",
    "sessionId",
    "release",
    "version",
    "userId",
    "metadata",
    "tags",
    "public",
    "environment",
    "projectId",
    "createdAt",
    "updatedAt",
    "bookmarked",
    "externalId",
}
TRACE_WITH_DETAILS_KEYS = TRACE_KEYS | {"htmlPath", "latency", "totalCost", "observations", "scores"}


def assert_model(value: dict[str, Any], *models: str) -> None:
    """``value`` has every required key of ``models`` with the right JSON type (not bool for numbers)."""
    for model in models:
        for key, types in CLIENT_REQUIRED[model].items():
            assert key in value, f"{model}.{key} missing from {sorted(value)}"
            assert isinstance(value[key], types), f"{model}.{key}: {value[key]!r} is not {types}"
            if types in (INT, NUM):
                assert not isinstance(value[key], bool), f"{model}.{key} is a bool"


def assert_trace_with_details(item: dict[str, Any]) -> None:
    assert set(item) >= TRACE_WITH_DETAILS_KEYS, TRACE_WITH_DETAILS_KEYS - set(item)
    assert_model(item, "Trace", "TraceWithDetails")
    assert isinstance(item["metadata"], dict)
    assert item["bookmarked"] is False and item["externalId"] is None
    assert all(isinstance(i, str) for i in item["observations"] + item["scores"])
    assert isinstance(item["latency"], NUM) and isinstance(item["totalCost"], NUM)


def assert_observations_view(item: dict[str, Any]) -> None:
    assert_model(item, "ObservationsView")
    assert_model(item["usage"], "Usage")
    assert all(isinstance(v, int) for v in item["usageDetails"].values())
    assert all(isinstance(v, float) for v in item["costDetails"].values())


# ------------------------------------------------------------------------------------ tests
def test_list_returns_every_trace_with_details_key(api):
    api.send_spans(
        [
            span(1, 1, name="root", start=0, duration=2, **{"langfuse.trace.input": '{"q": 1}'}),
            span(
                1,
                2,
                1,
                name="llm",
                start=0.5,
                duration=2.5,
                gen_ai__operation__name="chat",
                gen_ai__request__model="gpt-4o",
                gen_ai__usage__input_tokens=1000,
                gen_ai__usage__output_tokens=100,
            ),
        ]
    )
    write_scores(api, "default", [{"id": "score-1", "trace_id": tid(1), "name": "quality", "value": 0.9}])
    body = api.get("/api/public/traces").json()
    assert body["meta"] == {"page": 1, "limit": 50, "totalItems": 1, "totalPages": 1}
    assert_model(body["meta"], "MetaResponse")
    [item] = body["data"]
    assert_trace_with_details(item)
    assert item["id"] == tid(1)
    assert item["name"] == "root"
    assert item["timestamp"] == at(0)
    assert item["input"] == {"q": 1}
    assert item["htmlPath"] == f"/project/default/traces/{tid(1)}"
    assert item["projectId"] == "default"
    assert item["observations"] == [sid(1), sid(2)]
    assert item["scores"] == ["score-1"]
    assert item["latency"] == pytest.approx(3.0)
    assert item["totalCost"] > 0
    assert (item["metadata"], item["tags"], item["public"], item["environment"]) == ({}, [], False, "default")


def test_trace_facts_merge_latest_value_union_tags_and_earliest_timestamp(api):
    api.send_spans(
        [
            span(
                1,
                1,
                name="root",
                start=10,
                **{
                    "langfuse.trace.name": "first-name",
                    "langfuse.trace.tags": ["a", "shared"],
                    "langfuse.trace.metadata": '{"kept": 1, "replaced": "old"}',
                    "langfuse.user.id": "u1",
                    "langfuse.release": "r1",
                },
            )
        ]
    )
    # A later span adds facts: it wins where it says something, leaves the rest alone.
    api.send_spans(
        [
            span(
                1,
                2,
                1,
                name="child",
                start=5,
                **{
                    "langfuse.trace.name": "second-name",
                    "langfuse.trace.tags": ["b", "shared"],
                    "langfuse.trace.metadata": '{"replaced": "new", "added": true}',
                    "langfuse.session.id": "s1",
                },
            )
        ]
    )
    [item] = api.get("/api/public/traces").json()["data"]
    assert item["name"] == "second-name"
    assert item["userId"] == "u1"
    assert item["sessionId"] == "s1"
    assert item["release"] == "r1"
    assert item["tags"] == ["a", "b", "shared"]
    assert item["metadata"] == {"kept": 1, "replaced": "new", "added": True}
    assert item["timestamp"] == at(5)
    assert api.get(f"/api/public/traces/{tid(1)}").json()["name"] == "second-name"


def test_trace_whose_root_never_arrived_is_listed(api):
    # Spans under a parent that was filtered out, carrying no trace facts.
    api.send_spans(
        [
            span(7, 2, 99, name="orphan-a", start=3, langfuse__environment="staging"),
            span(7, 3, 2, name="orphan-b", start=4),
        ]
    )
    [item] = api.get("/api/public/traces").json()["data"]
    assert_trace_with_details(item)
    assert (item["id"], item["timestamp"], item["environment"], item["name"]) == (tid(7), at(3), "staging", None)
    assert item["observations"] == [sid(2), sid(3)]
    full = api.get(f"/api/public/traces/{tid(7)}").json()
    assert [o["id"] for o in full["observations"]] == [sid(2), sid(3)]
    assert api.get("/api/public/traces", params={"environment": "staging"}).json()["meta"]["totalItems"] == 1


def _five_traces(api):
    spans = []
    for n in range(1, 6):
        spans.append(
            span(
                n,
                n,
                name=f"trace-{n}",
                start=n * 10,
                **{
                    "langfuse.user.id": "even" if n % 2 == 0 else "odd",
                    "langfuse.session.id": f"s{n % 2}",
                    "langfuse.trace.tags": ["all", f"t{n}"] + (["even"] if n % 2 == 0 else []),
                    "langfuse.version": f"v{n}",
                    "langfuse.release": "r-even" if n % 2 == 0 else "r-odd",
                    "langfuse.environment": "prod" if n <= 3 else "dev",
                },
            )
        )
    api.send_spans(spans)


def test_filters(api):
    _five_traces(api)

    def listed(**params):
        return ids(api.get("/api/public/traces", params=params))

    assert listed() == [tid(5), tid(4), tid(3), tid(2), tid(1)]
    assert listed(userId="even") == [tid(4), tid(2)]
    assert listed(name="trace-3") == [tid(3)]
    assert listed(sessionId="s1") == [tid(5), tid(3), tid(1)]
    assert listed(tags=["all", "even"]) == [tid(4), tid(2)]
    assert listed(tags=["t4", "even"]) == [tid(4)]
    assert listed(tags=["t1", "even"]) == []
    assert listed(version="v2") == [tid(2)]
    assert listed(release="r-odd") == [tid(5), tid(3), tid(1)]
    assert listed(environment="dev") == [tid(5), tid(4)]
    assert listed(environment=["dev", "prod"]) == [tid(5), tid(4), tid(3), tid(2), tid(1)]
    assert listed(fromTimestamp=at(20), toTimestamp=at(40)) == [tid(3), tid(2)]  # from inclusive, to exclusive
    assert listed(fromTimestamp="2025-11-24T17:00:30+01:00") == [tid(5), tid(4), tid(3)]  # offsets understood
    assert listed(fromTimestamp=at(41)) == [tid(5)]
    assert listed(userId="odd", environment="prod", toTimestamp=at(30)) == [tid(1)]
    assert listed(userId="nobody") == []


def test_pagination_and_meta(api):
    _five_traces(api)
    pages = [api.get("/api/public/traces", params={"limit": 2, "page": p}).json() for p in (1, 2, 3, 4)]
    assert [[i["id"] for i in p["data"]] for p in pages] == [[tid(5), tid(4)], [tid(3), tid(2)], [tid(1)], []]
    for number, page in enumerate(pages, start=1):
        assert page["meta"] == {"page": number, "limit": 2, "totalItems": 5, "totalPages": 3}
    filtered = api.get("/api/public/traces", params={"limit": 1, "userId": "even"}).json()["meta"]
    assert filtered == {"page": 1, "limit": 1, "totalItems": 2, "totalPages": 2}
    empty = api.get("/api/public/traces", params={"userId": "nobody"}).json()["meta"]
    assert empty == {"page": 1, "limit": 50, "totalItems": 0, "totalPages": 0}


def test_newest_first_pages_across_days(api):
    """Newest-first pages are read from the latest days first and widened when those hold too few."""
    day = 86_400.0
    api.send_spans(
        [
            span(1, 10, start=-40 * day),
            span(2, 20, start=-10 * day),
            span(6, 60, parent=99, start=-3 * day),  # its root never arrives: a trace without facts
            span(3, 30, start=-1 * day),
            span(4, 40, start=0),
            span(5, 50, start=5),
        ]
    )
    pages = [api.get("/api/public/traces", params={"limit": 2, "page": p}).json() for p in (1, 2, 3, 4)]
    assert [[i["id"] for i in p["data"]] for p in pages] == [[tid(5), tid(4)], [tid(3), tid(6)], [tid(2), tid(1)], []]
    assert {p["meta"]["totalItems"] for p in pages} == {6}
    oldest_first = api.get("/api/public/traces", params={"limit": 4, "orderBy": "timestamp.asc"}).json()
    assert [i["id"] for i in oldest_first["data"]] == [tid(1), tid(2), tid(6), tid(3)]


def test_ordering(api):
    _five_traces(api)
    assert ids(api.get("/api/public/traces", params={"orderBy": "timestamp.asc"})) == [tid(n) for n in range(1, 6)]
    assert ids(api.get("/api/public/traces", params={"orderBy": "name.desc"})) == [tid(n) for n in range(5, 0, -1)]
    by_user = ids(api.get("/api/public/traces", params={"orderBy": "userId.asc"}))
    assert by_user[:2] == sorted([tid(2), tid(4)])  # "even" < "odd", ties by id
    assert ids(api.get("/api/public/traces", params={"orderBy": "version.ASC"}))[0] == tid(1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"orderBy": "cost.desc"}, "orderBy: unknown field 'cost'"),
        ({"orderBy": "timestamp"}, "orderBy: expected '<field>.asc' or '<field>.desc'"),
        ({"orderBy": "timestamp.sideways"}, "orderBy"),
        ({"fromTimestamp": "yesterday"}, "fromTimestamp: expected an ISO-8601 timestamp"),
        ({"toTimestamp": "2025-13-45"}, "toTimestamp"),
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"page": 0}, "page"),
        ({"filter": '[{"type": "string"}]'}, "filter"),
    ],
)
def test_bad_parameters_are_400_with_what_was_wrong(api, params, message):
    response = api.get("/api/public/traces", params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_field_groups(api):
    api.send_spans(
        [
            span(1, 1, name="root", **{"langfuse.trace.input": '"hi"', "langfuse.trace.metadata.k": "v"}),
            span(1, 2, 1, name="child"),
        ]
    )
    write_scores(api, "default", [{"id": "s-1", "trace_id": tid(1), "name": "q", "value": 1.0}])
    [core] = api.get("/api/public/traces", params={"fields": "core"}).json()["data"]
    assert_trace_with_details(core)
    assert (core["observations"], core["scores"], core["latency"], core["totalCost"]) == ([], [], -1, -1)
    assert (core["input"], core["metadata"], core["name"]) == (None, {}, "root")
    [some] = api.get("/api/public/traces", params={"fields": "core,io,metrics,bogus"}).json()["data"]
    assert (some["input"], some["metadata"]) == ("hi", {"k": "v"})
    assert some["latency"] == pytest.approx(1.0) and some["totalCost"] == 0
    assert (some["observations"], some["scores"]) == ([], [])
    [everything] = api.get("/api/public/traces").json()["data"]
    assert (everything["observations"], everything["scores"]) == ([sid(1), sid(2)], ["s-1"])


def test_single_trace_has_full_observations_and_scores(api):
    api.send_spans(
        [
            span(
                1,
                1,
                name="root",
                start=0,
                duration=4,
                **{"langfuse.observation.input": '{"question": "why?"}', "langfuse.observation.output": "because"},
            ),
            span(
                1,
                2,
                1,
                name="gen",
                start=1,
                duration=2,
                **{
                    "langfuse.observation.type": "generation",
                    "langfuse.observation.model.name": "my-model",
                    "langfuse.observation.usage_details": '{"input": 10, "output": 5}',
                    "langfuse.observation.cost_details": '{"input": 0.25, "output": 0.5}',
                },
            ),
        ]
    )
    write_scores(
        api,
        "default",
        [
            {"id": "num", "trace_id": tid(1), "name": "accuracy", "value": 0.5},
            {"id": "cat", "trace_id": tid(1), "name": "label", "data_type": "CATEGORICAL", "string_value": "good"},
            {"id": "elsewhere", "trace_id": tid(2), "name": "other", "value": 1.0},
        ],
    )
    response = api.get(f"/api/public/traces/{tid(1)}")
    assert response.status_code == 200
    trace = response.json()
    assert set(trace) >= TRACE_KEYS
    assert_model(trace, "Trace", "TraceWithFullDetails")
    assert trace["htmlPath"] == f"/project/default/traces/{tid(1)}"
    root, gen = trace["observations"]
    for observation in (root, gen):
        assert_observations_view(observation)
    assert (root["input"], root["output"]) == ({"question": "why?"}, "because")
    assert (gen["type"], gen["model"], gen["calculatedTotalCost"]) == ("GENERATION", "my-model", 0.75)
    assert trace["totalCost"] == pytest.approx(0.75)
    assert trace["latency"] == pytest.approx(4.0)
    assert [s["id"] for s in trace["scores"]] == ["cat", "num"]
    for s in trace["scores"]:
        assert_model(s, "ScoreV1")
    cat, num = trace["scores"]
    assert (num["dataType"], num["value"], cat["dataType"], cat["stringValue"]) == (
        "NUMERIC",
        0.5,
        "CATEGORICAL",
        "good",
    )


def test_unknown_trace_is_404(api):
    response = api.get(f"/api/public/traces/{tid(42)}")
    assert response.status_code == 404
    assert response.json() == {
        "message": f"Trace {tid(42)} not found within authorized project",
        "error": "LangfuseNotFoundError",
    }


def test_traces_of_one_project_are_invisible_to_another(api, other_api):
    api.send_spans([span(1, 1, name="mine", **{"langfuse.session.id": "s"})])
    other_api.send_spans([span(2, 2, name="theirs")])
    assert ids(api.get("/api/public/traces")) == [tid(1)]
    assert ids(other_api.get("/api/public/traces")) == [tid(2)]
    assert other_api.get(f"/api/public/traces/{tid(1)}").status_code == 404
    assert api.get(f"/api/public/traces/{tid(2)}").status_code == 404
    assert ids(other_api.get("/api/public/traces", params={"sessionId": "s"})) == []


def test_reads_need_credentials(api):
    import httpx

    assert httpx.get(f"{api.base}/api/public/traces").status_code == 401
    assert httpx.get(f"{api.base}/api/public/traces", auth=("pk-lf-test", "wrong")).status_code == 401


def test_a_trace_across_midnight_is_read_whole_by_id(api):
    """Lookups by id read only the days the trace index points at: a trace whose spans and facts
    lie on both sides of midnight must still come back whole."""
    before_midnight = 8 * 3600 - 30  # T0 is 16:00 UTC: 23:59:30
    api.send_spans(
        [
            span(3, 1, name="root", start=before_midnight, duration=90),
            span(3, 2, parent=1, name="after", start=before_midnight + 60, duration=5, langfuse__trace__name="renamed"),
            span(4, 1, name="other day", start=0),
        ]
    )
    trace = api.get(f"/api/public/traces/{tid(3)}").json()
    assert trace["name"] == "renamed" and trace["timestamp"] == at(before_midnight)
    assert [o["name"] for o in trace["observations"]] == ["root", "after"]
    assert trace["latency"] == pytest.approx(90.0)
    listed = api.get("/api/public/observations", params={"traceId": tid(3)}).json()
    assert sorted(o["id"] for o in listed["data"]) == [sid(1), sid(2)]
    assert listed["meta"]["totalItems"] == 2
