"""Metrics over real sockets: /metrics/daily, /v2/metrics and v1 /metrics against hand-computed values.

One server per module holds a small dataset (four traces over three days in project ``default``
and one expensive trace in project ``other``); every expected number below is worked out by hand
from that dataset.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from langfuse.api import LangfuseAPI
from langfuse.api.metrics.types.metrics_v2response import MetricsV2Response

from collector.server import Server
from storage.parquet_writer import PartitionedWriter
from storage.query import TableQuery
from storage.reads.metrics import MetricSpec, MetricsQuery, run_metrics
from tests.api.conftest import OTHER_AUTH, Api
from tests.conftest import PK, SK, make_config, wait_until
from tests.otlp_helpers import basic_auth, make_span, trace_request

UTC = dt.UTC


def ns(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1_000_000_000)


def tid(n: int) -> bytes:
    return bytes([n]) * 16


def sid(trace: int, n: int) -> bytes:
    return bytes([trace, n]) * 4


def root(trace: int, start: dt.datetime, seconds: float, env: str, **facts: Any) -> Any:
    attributes = {"langfuse.environment": env}
    names = {"name": "langfuse.trace.name", "user": "user.id", "session": "session.id", "tags": "langfuse.trace.tags"}
    attributes.update({names[k]: v for k, v in facts.items()})
    attributes.update({"langfuse.release": "r1", "langfuse.version": "v1"})
    return make_span(
        tid(trace),
        sid(trace, 1),
        name="handler",
        start_ns=ns(start),
        duration_ns=int(seconds * 1e9),
        attributes=attributes,
    )


def generation(
    trace: int, n: int, start: dt.datetime, seconds: float, env: str, model: str, usage: dict, cost: dict, **kw: Any
) -> Any:
    attributes = {
        "langfuse.environment": env,
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": model,
        "langfuse.observation.usage_details": json.dumps(usage),
        "langfuse.observation.cost_details": json.dumps(cost),
    }
    return make_span(
        tid(trace),
        sid(trace, n),
        parent=sid(trace, 1),
        name="llm",
        start_ns=ns(start),
        duration_ns=int(seconds * 1e9),
        attributes=attributes,
        **kw,
    )


D1, D2, D4 = dt.datetime(2025, 3, 1), dt.datetime(2025, 3, 2), dt.datetime(2025, 3, 4)  # nothing on 03-03
S = dt.timedelta(seconds=1)


def default_spans() -> list[Any]:
    """Four traces; costs: T1 0.75 + 0.03, T2 1.5, T3 0.003, T4 none."""
    t1, t2, t3, t4 = D1.replace(hour=10), D1.replace(hour=12), D2.replace(hour=9), D4.replace(hour=8)
    return [
        root(1, t1, 4, "prod", name="chat", user="u1", session="s1", tags=["a", "b"]),
        generation(
            1,
            2,
            t1 + S,
            2,
            "prod",
            "gpt-4o",
            {"input": 100, "output": 50, "cache_read_input_tokens": 20, "reasoning_tokens": 7},
            {"input": 0.25, "output": 0.5},
        ),
        generation(1, 3, t1 + 3 * S, 1, "prod", "claude", {"input": 10, "output": 5}, {"input": 0.01, "output": 0.02}),
        root(2, t2, 3.5, "dev", name="search", user="u2", session="s2", tags=["b"]),
        generation(
            2,
            2,
            t2 + S / 5,
            3,
            "dev",
            "gpt-4o",
            {"input": 200, "output": 100},
            {"input": 0.5, "output": 1.0},
            error="boom",
        ),
        root(3, t3, 1, "prod", name="chat", user="u1", session="s1", tags=["a"]),
        generation(
            3, 2, t3 + S / 10, 0.5, "prod", "gpt-4o", {"input": 1, "output": 1}, {"input": 0.001, "output": 0.002}
        ),
        root(4, t4, 0.25, "prod", name="chat", user="u3"),
    ]


def other_spans() -> list[Any]:
    t = D1.replace(hour=11)
    return [
        root(9, t, 1, "prod", name="chat", user="u1", tags=["a"]),
        generation(9, 2, t, 1, "prod", "gpt-4o", {"input": 5000, "output": 5000}, {"input": 50.0, "output": 50.0}),
    ]


SCORES = [  # (id, trace, name, data type, value, string value, time)
    ("sc1", 1, "quality", "NUMERIC", 0.8, None, D1.replace(hour=10, minute=5)),
    ("sc2", 2, "quality", "NUMERIC", 0.4, None, D1.replace(hour=12, minute=5)),
    ("sc3", 3, "helpful", "BOOLEAN", 1.0, "True", D2.replace(hour=9, minute=5)),
    ("sc4", 1, "tone", "CATEGORICAL", None, "polite", D1.replace(hour=10, minute=6)),
    ("sc5", 3, "tone", "CATEGORICAL", None, "rude", D2.replace(hour=9, minute=6)),
    ("sc6", 2, "tone", "CATEGORICAL", None, "polite", D1.replace(hour=12, minute=6)),
]


def micros(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1_000_000)


def write_scores(root_dir: Path, project: str, scores: list[tuple]) -> None:
    """Scores as the collector stores them (no score ingestion route is needed for reading)."""
    writer = PartitionedWriter(root_dir)
    rows = [
        {
            "id": i,
            "trace_id": tid(t).hex(),
            "name": name,
            "data_type": kind,
            "value": value,
            "string_value": text,
            "source": "API",
            "environment": "prod",
            "timestamp": micros(at),
        }
        for i, t, name, kind, value, text, at in scores
    ]
    writer.add(
        "scores", project, rows, {"ingested_at": micros(dt.datetime.now(UTC).replace(tzinfo=None)), "ingest_seq": 1}
    )
    writer.flush()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Api]]:
    """(default project client, other project client) over one server with the dataset above."""
    server = Server(
        make_config(tmp_path_factory.mktemp("metrics") / "data", parquet={"flush_interval": "100ms", "workers": 0})
    )
    server.start()
    api, other = Api(server), Api(server, *OTHER_AUTH)
    try:
        api.send_spans(default_spans())
        other.send_spans(other_spans())
        write_scores(server.query.root, "default", SCORES)
        write_scores(server.query.root, "other", [("x1", 9, "quality", "NUMERIC", 0.0, None, D1.replace(hour=11))])
        yield api, other
    finally:
        api.client.close()
        other.client.close()
        server.stop()


@pytest.fixture
def client(dataset: tuple[Api, Api]) -> Api:
    return dataset[0]


def daily(client: Api, **params: Any) -> dict[str, Any]:
    response = client.get("/api/public/metrics/daily", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def metrics(client: Api, path: str = "/api/public/v2/metrics", **query: Any) -> list[dict[str, Any]]:
    query.setdefault("fromTimestamp", "2025-03-01T00:00:00Z")
    query.setdefault("toTimestamp", "2025-03-05T00:00:00Z")
    response = client.get(path, params={"query": json.dumps(query)})
    assert response.status_code == 200, response.text
    body = response.json()
    MetricsV2Response.model_validate(body)
    return body["data"]


def bad(client: Api, query: Any, path: str = "/api/public/v2/metrics") -> str:
    text = query if isinstance(query, str) else json.dumps(query)
    response = client.get(path, params={"query": text})
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"message", "error"}
    return body["message"]


def by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}


# ------------------------------------------------------------------------------------------ daily
def test_daily_metrics_counts_costs_and_usage_per_model(client: Api) -> None:
    body = daily(client, fromTimestamp="2025-03-01T00:00:00Z", toTimestamp="2025-03-05T00:00:00Z")
    assert body["meta"] == {"page": 1, "limit": 50, "totalItems": 3, "totalPages": 1}
    assert [d["date"] for d in body["data"]] == ["2025-03-04", "2025-03-02", "2025-03-01"]
    d4, d2, d1 = body["data"]

    assert (d1["countTraces"], d1["countObservations"]) == (2, 5)
    assert d1["totalCost"] == pytest.approx(0.75 + 0.03 + 1.5)
    usage = by(d1["usage"], "model")
    assert set(usage) == {"gpt-4o", "claude", None}
    # input side = input + cache_read (+ cache_write, input_audio); output side = output + reasoning (+ audio)
    assert usage["gpt-4o"] == {
        "model": "gpt-4o",
        "inputUsage": 100 + 20 + 200,
        "outputUsage": 50 + 7 + 100,
        "totalUsage": 177 + 300,
        "countObservations": 2,
        "countTraces": 2,
        "totalCost": pytest.approx(2.25),
    }
    assert usage["claude"] == {
        "model": "claude",
        "inputUsage": 10,
        "outputUsage": 5,
        "totalUsage": 15,
        "countObservations": 1,
        "countTraces": 1,
        "totalCost": pytest.approx(0.03),
    }
    assert usage[None] == {
        "model": None,
        "inputUsage": 0,
        "outputUsage": 0,
        "totalUsage": 0,
        "countObservations": 2,  # the two root spans
        "countTraces": 2,
        "totalCost": 0,
    }
    assert (d2["countTraces"], d2["countObservations"], d2["totalCost"]) == (1, 2, pytest.approx(0.003))
    assert by(d2["usage"], "model")["gpt-4o"]["totalUsage"] == 2
    assert (d4["countTraces"], d4["countObservations"], d4["totalCost"]) == (1, 1, 0)


def test_daily_metrics_pagination(client: Api) -> None:
    body = daily(client, page=2, limit=1)
    assert body["meta"] == {"page": 2, "limit": 1, "totalItems": 3, "totalPages": 3}
    assert [d["date"] for d in body["data"]] == ["2025-03-02"]
    assert daily(client, page=4, limit=1)["data"] == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"userId": "u1"}, {"2025-03-01": (1, 3, 0.78), "2025-03-02": (1, 2, 0.003)}),
        ({"traceName": "search"}, {"2025-03-01": (1, 2, 1.5)}),
        ({"tags": ["a", "b"]}, {"2025-03-01": (1, 3, 0.78)}),  # all of them
        ({"tags": "b"}, {"2025-03-01": (2, 5, 2.28)}),
        ({"environment": "dev"}, {"2025-03-01": (1, 2, 1.5)}),
        (
            {"environment": ["dev", "prod"]},
            {"2025-03-01": (2, 5, 2.28), "2025-03-02": (1, 2, 0.003), "2025-03-04": (1, 1, 0)},
        ),
        ({"fromTimestamp": "2025-03-02T00:00:00Z"}, {"2025-03-02": (1, 2, 0.003), "2025-03-04": (1, 1, 0)}),
        ({"toTimestamp": "2025-03-01T11:00:00Z"}, {"2025-03-01": (1, 3, 0.78)}),  # exclusive upper bound
        # 10:00Z..12:00Z: T1 (10:00) is in, T2 (12:00) is not
        (
            {"fromTimestamp": "2025-03-01T11:00:00+01:00", "toTimestamp": "2025-03-01T12:00:00Z"},
            {"2025-03-01": (1, 3, 0.78)},
        ),
        ({"userId": "nobody"}, {}),
    ],
)
def test_daily_metrics_filters(client: Api, params: dict[str, Any], expected: dict[str, tuple]) -> None:
    got = {
        d["date"]: (d["countTraces"], d["countObservations"], pytest.approx(d["totalCost"]))
        for d in daily(client, **params)["data"]
    }
    assert got == {k: (t, o, pytest.approx(c)) for k, (t, o, c) in expected.items()}


def test_daily_metrics_rejects_bad_parameters(client: Api) -> None:
    assert client.get("/api/public/metrics/daily", params={"fromTimestamp": "yesterday"}).status_code == 400
    response = client.get(
        "/api/public/metrics/daily",
        params={"fromTimestamp": "2025-03-02T00:00:00Z", "toTimestamp": "2025-03-01T00:00:00Z"},
    )
    assert response.status_code == 400 and "earlier" in response.json()["message"]
    assert client.get("/api/public/metrics/daily", params={"limit": 101}).status_code == 400
    assert httpx.get(f"{client.base}/api/public/metrics/daily").status_code == 401


def test_daily_metrics_are_per_project(dataset: tuple[Api, Api]) -> None:
    _, other = dataset
    body = daily(other)
    assert [(d["date"], d["countTraces"], d["countObservations"], d["totalCost"]) for d in body["data"]] == [
        ("2025-03-01", 1, 2, 100.0)
    ]
    assert by(body["data"][0]["usage"], "model")["gpt-4o"]["inputUsage"] == 5000


# ---------------------------------------------------------------------------------- observations
def test_v2_count_per_day_fills_gaps(client: Api) -> None:
    rows = metrics(
        client,
        view="observations",
        metrics=[{"measure": "count", "aggregation": "count"}],
        timeDimension={"granularity": "day"},
        toTimestamp="2025-03-04T23:59:59Z",
    )
    assert rows == [
        {"time_dimension": "2025-03-01T00:00:00.000Z", "count_count": 5},
        {"time_dimension": "2025-03-02T00:00:00.000Z", "count_count": 2},
        {"time_dimension": "2025-03-03T00:00:00.000Z", "count_count": 0},  # filled, as Langfuse's WITH FILL
        {"time_dimension": "2025-03-04T00:00:00.000Z", "count_count": 1},
    ]


def test_v2_cost_and_tokens_by_model(client: Api) -> None:
    rows = metrics(
        client,
        view="observations",
        dimensions=[{"field": "providedModelName"}],
        metrics=[
            {"measure": "totalCost", "aggregation": "sum"},
            {"measure": "inputTokens", "aggregation": "sum"},
            {"measure": "outputTokens", "aggregation": "sum"},
            {"measure": "totalTokens", "aggregation": "sum"},
            {"measure": "inputCost", "aggregation": "sum"},
            {"measure": "outputCost", "aggregation": "sum"},
            {"measure": "count", "aggregation": "count"},
        ],
    )
    # default order: the first metric, descending
    assert [r["providedModelName"] for r in rows] == ["gpt-4o", "claude", None]
    gpt = rows[0]
    assert gpt["sum_totalCost"] == pytest.approx(0.75 + 1.5 + 0.003)
    assert (gpt["sum_inputTokens"], gpt["sum_outputTokens"], gpt["sum_totalTokens"]) == (321, 158, 479)
    assert gpt["sum_inputCost"] == pytest.approx(0.751) and gpt["sum_outputCost"] == pytest.approx(1.502)
    assert gpt["count_count"] == 3
    assert rows[2] == {
        "providedModelName": None,
        "sum_totalCost": 0,
        "sum_inputTokens": 0,
        "sum_outputTokens": 0,
        "sum_totalTokens": 0,
        "sum_inputCost": 0,
        "sum_outputCost": 0,
        "count_count": 4,
    }
    # "model" is accepted as another name for the same dimension
    rows = metrics(
        client,
        view="observations",
        dimensions=[{"field": "model"}],
        metrics=[{"measure": "totalCost", "aggregation": "max"}],
    )
    assert by(rows, "model")["gpt-4o"]["max_totalCost"] == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("count", 4),
        ("sum", 6500),
        ("avg", 1625),
        ("min", 500),
        ("max", 3000),
        ("p50", 1500),  # linear interpolation over 500, 1000, 2000, 3000
        ("p75", 2250),
        ("p90", 2700),
        ("p95", 2850),
        ("p99", 2970),
        ("uniq", 4),
    ],
)
def test_v2_latency_aggregations_in_milliseconds(client: Api, aggregation: str, expected: float) -> None:
    rows = metrics(
        client,
        view="observations",
        metrics=[{"measure": "latency", "aggregation": aggregation}],
        filters=[{"column": "type", "operator": "=", "value": "GENERATION", "type": "string"}],
    )
    assert rows == [{f"{aggregation}_latency": pytest.approx(expected)}]


def test_v2_trace_level_dimensions(client: Api) -> None:
    rows = metrics(
        client,
        view="observations",
        dimensions=[{"field": "traceName"}, {"field": "environment"}],
        metrics=[{"measure": "count", "aggregation": "count"}, {"measure": "totalCost", "aggregation": "sum"}],
        orderBy=[{"field": "traceName", "direction": "asc"}, {"field": "environment", "direction": "desc"}],
    )
    assert [(r["traceName"], r["environment"], r["count_count"]) for r in rows] == [
        ("chat", "prod", 6),
        ("search", "dev", 2),
    ]
    assert rows[0]["sum_totalCost"] == pytest.approx(0.783)


def test_v2_tags_are_unnested(client: Api) -> None:
    rows = metrics(
        client,
        view="observations",
        dimensions=[{"field": "tags"}],
        metrics=[{"measure": "count", "aggregation": "count"}],
        orderBy=[{"field": "tags", "direction": "asc"}],
    )
    assert rows == [{"tags": "a", "count_count": 5}, {"tags": "b", "count_count": 5}, {"tags": None, "count_count": 1}]


@pytest.mark.parametrize(
    ("flt", "count"),
    [
        ({"column": "tags", "operator": "any of", "value": ["a"], "type": "arrayOptions"}, 5),
        ({"column": "tags", "operator": "any of", "value": ["a", "b"], "type": "arrayOptions"}, 7),
        ({"column": "tags", "operator": "all of", "value": ["a", "b"], "type": "arrayOptions"}, 3),
        ({"column": "tags", "operator": "none of", "value": ["a"], "type": "arrayOptions"}, 3),
        ({"column": "name", "operator": "=", "value": "llm", "type": "string"}, 4),
        ({"column": "name", "operator": "!=", "value": "llm", "type": "string"}, 4),
        ({"column": "providedModelName", "operator": "contains", "value": "gpt", "type": "string"}, 3),
        ({"column": "providedModelName", "operator": "does not contain", "value": "gpt", "type": "string"}, 5),
        ({"column": "providedModelName", "operator": "starts with", "value": "cla", "type": "string"}, 1),
        ({"column": "providedModelName", "operator": "ends with", "value": "4o", "type": "string"}, 3),
        ({"column": "providedModelName", "operator": "any of", "value": ["claude", "x"], "type": "stringOptions"}, 1),
        ({"column": "providedModelName", "operator": "none of", "value": ["claude"], "type": "stringOptions"}, 7),
        ({"column": "providedModelName", "operator": "is null", "value": None, "type": "null"}, 4),
        ({"column": "level", "operator": "=", "value": "ERROR", "type": "string"}, 1),
        ({"column": "environment", "operator": "any of", "value": ["dev"], "type": "stringOptions"}, 2),
        ({"column": "traceName", "operator": "=", "value": "chat", "type": "string"}, 6),
        ({"column": "userId", "operator": "=", "value": "u1", "type": "string"}, 5),
        ({"column": "sessionId", "operator": "=", "value": "s2", "type": "string"}, 2),
        ({"column": "release", "operator": "=", "value": "r1", "type": "string"}, 8),
        ({"column": "isRootObservation", "operator": "=", "value": True, "type": "boolean"}, 4),
        ({"column": "start_time", "operator": ">=", "value": "2025-03-01T11:00:00Z", "type": "datetime"}, 5),
        ({"column": "start_time", "operator": "<", "value": "2025-03-01T12:00:00Z", "type": "datetime"}, 3),
        ({"column": "startTime", "operator": ">", "value": "2025-03-03T00:00:00Z", "type": "datetime"}, 1),
    ],
)
def test_v2_filters(client: Api, flt: dict[str, Any], count: int) -> None:
    rows = metrics(client, view="observations", metrics=[{"measure": "count", "aggregation": "count"}], filters=[flt])
    assert rows == [{"count_count": count}]


def test_v2_filters_combine_with_and(client: Api) -> None:
    rows = metrics(
        client,
        view="observations",
        metrics=[{"measure": "totalCost", "aggregation": "sum"}],
        filters=[
            {"column": "userId", "operator": "=", "value": "u1", "type": "string"},
            {"column": "providedModelName", "operator": "=", "value": "gpt-4o", "type": "string"},
        ],
    )
    assert rows == [{"sum_totalCost": pytest.approx(0.753)}]


@pytest.mark.parametrize(
    ("granularity", "start", "end", "expected"),
    [
        (
            "hour",
            "2025-03-01T09:30:00Z",
            "2025-03-01T13:00:00Z",
            [
                ("2025-03-01T09:00:00.000Z", 0),
                ("2025-03-01T10:00:00.000Z", 3),
                ("2025-03-01T11:00:00.000Z", 0),
                ("2025-03-01T12:00:00.000Z", 2),
                ("2025-03-01T13:00:00.000Z", 0),
            ],
        ),
        (
            "auto",
            "2025-03-01T09:30:00Z",
            "2025-03-01T12:30:00Z",  # 3 h -> hours
            [
                ("2025-03-01T09:00:00.000Z", 0),
                ("2025-03-01T10:00:00.000Z", 3),
                ("2025-03-01T11:00:00.000Z", 0),
                ("2025-03-01T12:00:00.000Z", 2),
            ],
        ),
        (
            "minute",
            "2025-03-01T09:59:00Z",
            "2025-03-01T10:01:30Z",
            [("2025-03-01T09:59:00.000Z", 0), ("2025-03-01T10:00:00.000Z", 3), ("2025-03-01T10:01:00.000Z", 0)],
        ),
        (
            "auto",
            "2025-03-01T09:59:00Z",
            "2025-03-01T10:01:00Z",  # < 2 h -> minutes
            [("2025-03-01T09:59:00.000Z", 0), ("2025-03-01T10:00:00.000Z", 3), ("2025-03-01T10:01:00.000Z", 0)],
        ),
        (
            "week",
            "2025-03-01T00:00:00Z",
            "2025-03-05T00:00:00Z",  # weeks start on Monday
            [("2025-02-24T00:00:00.000Z", 7), ("2025-03-03T00:00:00.000Z", 1)],
        ),
        (
            "month",
            "2025-02-15T00:00:00Z",
            "2025-03-05T00:00:00Z",
            [("2025-02-01T00:00:00.000Z", 0), ("2025-03-01T00:00:00.000Z", 8)],
        ),
        (
            "auto",
            "2025-02-15T00:00:00Z",
            "2025-03-05T00:00:00Z",  # 18 days -> days
            [(f"2025-02-{d:02d}T00:00:00.000Z", 0) for d in range(15, 29)]
            + [
                ("2025-03-01T00:00:00.000Z", 5),
                ("2025-03-02T00:00:00.000Z", 2),
                ("2025-03-03T00:00:00.000Z", 0),
                ("2025-03-04T00:00:00.000Z", 1),
                ("2025-03-05T00:00:00.000Z", 0),
            ],
        ),
    ],
)
def test_v2_granularity_buckets(client: Api, granularity: str, start: str, end: str, expected: list) -> None:
    rows = metrics(
        client,
        view="observations",
        metrics=[{"measure": "count", "aggregation": "count"}],
        timeDimension={"granularity": granularity},
        fromTimestamp=start,
        toTimestamp=end,
    )
    assert [(r["time_dimension"], r["count_count"]) for r in rows] == expected


def test_v2_time_dimension_with_dimension_and_order(client: Api) -> None:
    rows = metrics(
        client,
        view="observations",
        dimensions=[{"field": "providedModelName"}],
        metrics=[{"measure": "totalCost", "aggregation": "sum"}],
        timeDimension={"granularity": "day"},
        filters=[{"column": "type", "operator": "=", "value": "GENERATION", "type": "string"}],
        orderBy=[{"field": "time_dimension", "direction": "desc"}, {"field": "sum_totalCost", "direction": "desc"}],
    )
    assert [(r["time_dimension"][:10], r["providedModelName"], round(r["sum_totalCost"], 6)) for r in rows] == [
        ("2025-03-02", "gpt-4o", 0.003),
        ("2025-03-01", "gpt-4o", 2.25),
        ("2025-03-01", "claude", 0.03),
    ]  # an explicit orderBy turns gap filling off, as in Langfuse


def test_v2_row_limit(client: Api) -> None:
    rows = metrics(
        client,
        view="observations",
        dimensions=[{"field": "providedModelName"}],
        metrics=[{"measure": "count", "aggregation": "count"}],
        config={"row_limit": 1},
    )
    assert rows == [{"providedModelName": None, "count_count": 4}]


def test_v2_other_observation_measures(client: Api) -> None:
    rows = metrics(
        client,
        view="observations",
        metrics=[
            {"measure": "tokensPerSecond", "aggregation": "max"},
            {"measure": "streamingLatency", "aggregation": "count"},
            {"measure": "timeToFirstToken", "aggregation": "avg"},
        ],
        filters=[{"column": "type", "operator": "=", "value": "GENERATION", "type": "string"}],
    )
    # tokens per second: 177/2, 15/1, 300/3, 2/0.5 -> 100; no completion start time was sent
    assert rows == [
        {"max_tokensPerSecond": pytest.approx(100), "count_streamingLatency": 0, "avg_timeToFirstToken": None}
    ]


# -------------------------------------------------------------------------------------- v1 traces
def test_v1_traces_view(client: Api) -> None:
    rows = metrics(
        client,
        path="/api/public/metrics",
        view="traces",
        dimensions=[{"field": "name"}],
        metrics=[
            {"measure": "count", "aggregation": "count"},
            {"measure": "totalCost", "aggregation": "sum"},
            {"measure": "latency", "aggregation": "max"},
            {"measure": "observationsCount", "aggregation": "sum"},
            {"measure": "totalTokens", "aggregation": "sum"},
        ],
        orderBy=[{"field": "name", "direction": "asc"}],
    )
    assert rows == [
        {
            "name": "chat",
            "count_count": 3,
            "sum_totalCost": pytest.approx(0.783),
            "max_latency": 4000.0,
            "sum_observationsCount": 6,
            "sum_totalTokens": 177 + 15 + 2,
        },
        {
            "name": "search",
            "count_count": 1,
            "sum_totalCost": pytest.approx(1.5),
            "max_latency": 3500.0,
            "sum_observationsCount": 2,
            "sum_totalTokens": 300,
        },
    ]


def test_v1_traces_view_by_user_and_tag_per_day(client: Api) -> None:
    rows = metrics(
        client,
        path="/api/public/metrics",
        view="traces",
        dimensions=[{"field": "userId"}],
        metrics=[{"measure": "latency", "aggregation": "avg"}],
        filters=[{"column": "tags", "operator": "any of", "value": ["a"], "type": "arrayOptions"}],
        timeDimension={"granularity": "day"},
        toTimestamp="2025-03-02T23:00:00Z",
    )
    assert rows == [
        {"userId": "u1", "time_dimension": "2025-03-01T00:00:00.000Z", "avg_latency": 4000.0},
        {"userId": "u1", "time_dimension": "2025-03-02T00:00:00.000Z", "avg_latency": 1000.0},
    ]


def test_v1_serves_observations_with_high_cardinality_dimensions(client: Api) -> None:
    rows = metrics(
        client,
        path="/api/public/metrics",
        view="observations",
        dimensions=[{"field": "userId"}],
        metrics=[{"measure": "count", "aggregation": "count"}],
        orderBy=[{"field": "userId", "direction": "asc"}],
    )
    assert rows == [
        {"userId": "u1", "count_count": 5},
        {"userId": "u2", "count_count": 2},
        {"userId": "u3", "count_count": 1},
    ]


# ------------------------------------------------------------------------------------------ scores
def test_scores_numeric(client: Api) -> None:
    rows = metrics(
        client,
        view="scores-numeric",
        dimensions=[{"field": "name"}],
        metrics=[{"measure": "value", "aggregation": "avg"}, {"measure": "count", "aggregation": "count"}],
        orderBy=[{"field": "name", "direction": "asc"}],
    )
    assert rows == [
        {"name": "helpful", "avg_value": 1.0, "count_count": 1},
        {"name": "quality", "avg_value": pytest.approx(0.6), "count_count": 2},
    ]
    rows = metrics(
        client,
        view="scores-numeric",
        dimensions=[{"field": "traceName"}],
        metrics=[{"measure": "value", "aggregation": "min"}],
        filters=[{"column": "name", "operator": "=", "value": "quality", "type": "string"}],
        orderBy=[{"field": "traceName", "direction": "asc"}],
    )
    assert rows == [{"traceName": "chat", "min_value": 0.8}, {"traceName": "search", "min_value": 0.4}]


def test_scores_categorical_and_boolean(client: Api) -> None:
    rows = metrics(
        client,
        view="scores-categorical",
        dimensions=[{"field": "stringValue"}],
        metrics=[{"measure": "count", "aggregation": "count"}],
    )
    assert rows == [{"stringValue": "polite", "count_count": 2}, {"stringValue": "rude", "count_count": 1}]
    rows = metrics(client, view="scores-boolean", metrics=[{"measure": "value", "aggregation": "avg"}])
    assert rows == [{"avg_value": 1.0}]
    rows = metrics(
        client,
        view="scores-numeric",
        dimensions=[{"field": "dataType"}],
        metrics=[{"measure": "count", "aggregation": "count"}],
        timeDimension={"granularity": "day"},
        orderBy=[{"field": "time_dimension", "direction": "asc"}],
    )
    assert [(r["time_dimension"][:10], r["dataType"], r["count_count"]) for r in rows] == [
        ("2025-03-01", "NUMERIC", 2),
        ("2025-03-02", "BOOLEAN", 1),
    ]


# --------------------------------------------------------------------------------- compatibility
def test_langfuse_v5_client_reads_v2_metrics(client: Api) -> None:
    sdk = LangfuseAPI(base_url=client.base, username=PK, password=SK)
    query = {
        "view": "observations",
        "dimensions": [{"field": "providedModelName"}],
        "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
        "filters": [],
        "timeDimension": {"granularity": "day"},
        "fromTimestamp": "2025-03-01T00:00:00.000Z",
        "toTimestamp": "2025-03-02T23:59:59.000Z",
        "orderBy": None,
    }
    response = sdk.metrics.metrics(query=json.dumps(query))
    assert isinstance(response, MetricsV2Response)
    cost = {(r["time_dimension"][:10], r["providedModelName"]): r["sum_totalCost"] for r in response.data}
    assert cost[("2025-03-01", "gpt-4o")] == pytest.approx(2.25)
    assert cost[("2025-03-02", "gpt-4o")] == pytest.approx(0.003)


def test_metrics_are_per_project(dataset: tuple[Api, Api]) -> None:
    api, other = dataset
    query = {
        "view": "observations",
        "metrics": [{"measure": "totalCost", "aggregation": "sum"}, {"measure": "count", "aggregation": "count"}],
    }
    assert metrics(other, **query) == [{"sum_totalCost": 100.0, "count_count": 2}]
    assert metrics(api, **query) == [{"sum_totalCost": pytest.approx(2.283), "count_count": 8}]
    scores = {"view": "scores-numeric", "metrics": [{"measure": "count", "aggregation": "count"}]}
    assert metrics(other, **scores) == [{"count_count": 1}]
    traces = {
        "view": "traces",
        "dimensions": [{"field": "name"}],
        "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
    }
    assert metrics(other, path="/api/public/metrics", **traces) == [{"name": "chat", "sum_totalCost": 100.0}]
    assert httpx.get(f"{api.base}/api/public/v2/metrics", params={"query": "{}"}).status_code == 401


# -------------------------------------------------------------------------------------------- 400s
GOOD = {
    "view": "observations",
    "metrics": [{"measure": "count", "aggregation": "count"}],
    "fromTimestamp": "2025-03-01T00:00:00Z",
    "toTimestamp": "2025-03-02T00:00:00Z",
}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"view": "sessions"}, "Invalid view 'sessions'"),
        ({"view": "traces"}, "Invalid view 'traces' for v2"),
        ({"metrics": [{"measure": "bogus", "aggregation": "sum"}]}, "Invalid measure 'bogus'"),
        ({"metrics": [{"measure": "count", "aggregation": "median"}]}, "metrics.0.aggregation"),
        ({"metrics": [{"measure": "latency", "aggregation": "histogram"}]}, "histogram"),
        ({"metrics": []}, "metrics"),
        ({"dimensions": [{"field": "bogus"}]}, "Invalid dimension 'bogus'"),
        ({"dimensions": [{"field": "userId"}]}, "high cardinality"),
        ({"dimensions": [{"field": "traceId"}]}, "high cardinality"),
        ({"filters": [{"column": "bogus", "operator": "=", "value": "x", "type": "string"}]}, "invalid filter column"),
        (
            {"filters": [{"column": "name", "operator": "like", "value": "x", "type": "string"}]},
            "invalid operator 'like'",
        ),
        ({"filters": [{"column": "name", "operator": ">", "value": "x", "type": "string"}]}, "invalid operator '>'"),
        ({"filters": [{"column": "tags", "operator": "=", "value": "a", "type": "string"}]}, "invalid operator '='"),
        ({"filters": [{"column": "tags", "operator": "any of", "value": "a", "type": "arrayOptions"}]}, "list"),
        ({"filters": [{"column": "start_time", "operator": ">", "value": "soon", "type": "datetime"}]}, "datetime"),
        ({"filters": [{"column": "isRootObservation", "operator": "=", "value": "maybe"}]}, "boolean"),
        ({"filters": [{"column": "name"}]}, "filters.0.operator"),
        ({"timeDimension": {"granularity": "year"}}, "timeDimension.granularity"),
        ({"fromTimestamp": "2025-03-02T00:00:00Z"}, "fromTimestamp must be earlier than toTimestamp"),
        ({"toTimestamp": "2025-02-01T00:00:00Z"}, "fromTimestamp must be earlier than toTimestamp"),
        ({"fromTimestamp": "not a date"}, "fromTimestamp"),
        ({"config": {"row_limit": 1001}}, "config.row_limit"),
        ({"config": {"row_limit": 0}}, "config.row_limit"),
        ({"orderBy": [{"field": "sum_totalCost", "direction": "desc"}]}, "Invalid orderBy field"),
        ({"orderBy": [{"field": "count_count", "direction": "up"}]}, "orderBy.0.direction"),
    ],
)
def test_v2_rejects_bad_queries(client: Api, change: dict[str, Any], needle: str) -> None:
    assert needle in bad(client, {**GOOD, **change})


def test_rejects_missing_or_malformed_query(client: Api) -> None:
    assert "not valid JSON" in bad(client, "{view: observations")
    assert "JSON object" in bad(client, "[1, 2]")
    missing = {k: v for k, v in GOOD.items() if k != "view"}
    assert "view" in bad(client, missing)
    response = client.get("/api/public/v2/metrics")
    assert response.status_code == 400 and "required" in response.json()["message"]
    response = client.get("/api/public/v2/metrics", params={"query": json.dumps({**GOOD, "view": "bogus"})})
    assert isinstance(response.json()["error"], str | list)


def test_null_optional_parts_are_accepted(client: Api) -> None:
    query = {**GOOD, "dimensions": None, "filters": None, "timeDimension": None, "orderBy": None, "config": None}
    assert metrics(client, **query) == [{"count_count": 5}]


def test_v1_accepts_traces_but_rejects_unknown_measure(client: Api) -> None:
    query = {**GOOD, "view": "traces", "metrics": [{"measure": "streamingLatency", "aggregation": "avg"}]}
    assert "Invalid measure 'streamingLatency'" in bad(client, query, path="/api/public/metrics")


# ------------------------------------------------------------------------ tombstones and pruning
def test_deleted_traces_are_not_counted(api: Api) -> None:
    api.send_spans(default_spans())
    writer = PartitionedWriter(api.server.query.root)
    now = time.time_ns() // 1000  # after the spans were received: a deletion hides what came before it
    writer.add(
        "deletions",
        "default",
        [{"kind": "trace", "id": tid(2).hex(), "deleted_at": now}],
        {"ingested_at": now, "ingest_seq": 1},
    )
    writer.flush()
    day = daily(api, fromTimestamp="2025-03-01T00:00:00Z", toTimestamp="2025-03-02T00:00:00Z")["data"]
    assert [(d["countTraces"], d["countObservations"]) for d in day] == [(1, 3)]
    rows = metrics(api, view="observations", metrics=[{"measure": "totalCost", "aggregation": "sum"}])
    assert rows == [{"sum_totalCost": pytest.approx(0.783)}]


def test_only_partitions_in_the_time_range_are_read(tmp_path: Path) -> None:
    writer = PartitionedWriter(tmp_path)
    for day in range(1, 11):
        start = micros(dt.datetime(2025, 3, day, 12))
        row = {"id": f"o{day}", "trace_id": "t", "type": "SPAN", "start_time": start, "level": "DEFAULT"}
        writer.add("observations", "p", [row], {"ingested_at": start, "ingest_seq": day})
    writer.flush()
    # A file that cannot be read at all, outside the query's time range (and its trace-fact margin):
    # the query only succeeds if that partition's files are never opened.
    for day in ("2025-03-01", "2025-03-09"):
        for table in ("observations", "traces"):
            bad = tmp_path / "tables" / table / "project_id=p" / f"date={day}" / "part-unreadable.parquet"
            bad.parent.mkdir(parents=True, exist_ok=True)
            bad.write_bytes(b"not parquet")

    query = MetricsQuery(
        view="observations",
        since=dt.datetime(2025, 3, 3, 6),
        until=dt.datetime(2025, 3, 5, 6),
        metrics=(MetricSpec("count", "count"),),
        dimensions=("traceName",),
    )
    tq = TableQuery(tmp_path)
    try:
        assert run_metrics(tq, "p", query) == [{"traceName": None, "count_count": 2}]
        with pytest.raises(Exception, match=r"Parquet"):
            run_metrics(tq, "p", replace(query, since=dt.datetime(2025, 3, 1)))  # the bad file is in range now
    finally:
        tq.close()


def test_read_your_writes_through_metrics(api: Api) -> None:
    """Fresh spans show up in metrics right after they are queryable (no cache in between)."""
    start = dt.datetime.now(UTC).replace(tzinfo=None) - dt.timedelta(minutes=1)
    api.send_spans([root(7, start, 1, "prod", name="now")])
    query = {
        "view": "observations",
        "metrics": [{"measure": "count", "aggregation": "count"}],
        "fromTimestamp": (start - dt.timedelta(hours=1)).isoformat() + "Z",
        "toTimestamp": (start + dt.timedelta(hours=1)).isoformat() + "Z",
    }
    assert wait_until(lambda: metrics(api, **query) == [{"count_count": 1}])
    raw = httpx.post(
        f"{api.base}/v1/traces",
        content=trace_request([root(8, start, 1, "prod", name="now")]).SerializeToString(),
        headers={"content-type": "application/x-protobuf", "authorization": basic_auth()},
    )
    assert raw.status_code == 200
    assert wait_until(lambda: metrics(api, **query) == [{"count_count": 2}])
