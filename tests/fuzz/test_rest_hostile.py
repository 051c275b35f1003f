"""Hostile REST input: injection-shaped filters, huge limits and pages, bad cursors, path tricks in ids.

Every answer is a 2xx or a 4xx with a message, never a 5xx; nothing of the other project ever
comes back, whatever the filter; the server stays healthy throughout.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import orjson
import pytest

from collector.server import Server
from tests.conftest import wait_until
from tests.fuzz.campaign import count, long_campaign
from tests.otlp_helpers import basic_auth, make_span, trace_request

OTHER_MARKER = "other-project-secret"
HOSTILE = [
    "' OR 1=1 --",
    '"; DROP TABLE observations; --',
    "' UNION SELECT * FROM read_parquet('/etc/passwd') --",
    "%00",
    "\x00",
    "a\x00b",
    "ünï©ødé 🔥 \u202e",
    "x" * 10_000,
    "../../etc/passwd",
    "%2e%2e%2f",
    "..%2F",
    "*",
    "?",
    "[",
    "{}",
    "\\",
    "NULL",
    "1e400",
    "-1",
    "",
    " ",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2024-13-45",
]
# Every string query parameter of the read routes (enums and numbers are checked separately).
STRING_PARAMS = {
    "/api/public/traces": [
        "userId", "name", "sessionId", "tags", "fromTimestamp", "toTimestamp", "orderBy", "version", "release",
        "environment", "fields",
    ],
    "/api/public/observations": [
        "name", "userId", "traceId", "version", "parentObservationId", "environment", "fromStartTime", "toStartTime",
        "type", "level",
    ],
    "/api/public/v2/observations": [
        "fields", "expandMetadata", "cursor", "parseIoAsJson", "sessionId", "name", "traceId", "userId", "environment",
        "fromStartTime",
    ],
    "/api/public/sessions": ["fromTimestamp", "toTimestamp", "environment"],
    "/api/public/scores": [
        "userId", "name", "fromTimestamp", "toTimestamp", "source", "environment", "operator", "scoreIds", "configId",
        "queueId", "dataType", "traceTags", "fields",
    ],
    "/api/public/v2/scores": ["name", "sessionId", "datasetRunId", "traceId", "observationId", "fields", "scoreIds"],
    "/api/public/v3/scores": [
        "cursor", "fields", "id", "name", "source", "dataType", "environment", "configId", "queueId", "authorUserId",
        "traceId", "sessionId", "experimentId", "fromTimestamp", "toTimestamp", "valueMin",
    ],
    "/api/public/metrics/daily": ["traceName", "userId", "tags", "environment", "fromTimestamp", "toTimestamp"],
    "/api/public/metrics": ["query"],
    "/api/public/v2/metrics": ["query"],
}  # fmt: skip
ID_ROUTES = [
    ("GET", "/api/public/traces/{}"),
    ("GET", "/api/public/observations/{}"),
    ("GET", "/api/public/sessions/{}"),
    ("GET", "/api/public/scores/{}"),
    ("GET", "/api/public/v2/scores/{}"),
    ("DELETE", "/api/public/traces/{}"),
    ("DELETE", "/api/public/scores/{}"),
]
HOSTILE_IDS = [
    "../../etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%2F..%2Fetc%2Fpasswd",
    "..",
    "'",
    '"',
    "id' OR '1'='1",
    "\x00",
    "a\x00b",
    "x" * 10_000,
    "🔥",
    "%ff%fe",
    "*",
]


class Client:
    """Authenticated REST calls that check every answer is a 2xx or a 4xx with a message."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{server.http_port}", headers={"authorization": basic_auth()}, timeout=60
        )

    def call(self, method: str, url: str, campaign: str, **kwargs: object) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)  # type: ignore[arg-type]
        count(campaign, f"http_{response.status_code}")
        assert response.status_code < 500, f"{method} {url[:200]} {kwargs}: {response.status_code} {response.text}"
        if response.status_code >= 400:
            body = response.json()
            assert body.get("message") or body.get("detail"), response.text  # detail: no such route
        assert OTHER_MARKER not in response.text, "another project's data was returned"
        return response


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    """A server holding a trace (with a session, a user and a score) in each project."""
    http = httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30)
    for (public, secret), name in ((("pk-lf-test", "sk-lf-test"), "mine"), (("pk-lf-other", "sk-lf-other"), None)):
        label = name or OTHER_MARKER
        span = make_span(
            name=label,
            trace_id=(b"\x0a" if name else b"\x0b") * 16,
            span_id=(b"\x0a" if name else b"\x0b") * 8,
            attributes={"session.id": label, "user.id": label, "langfuse.trace.tags": [label]},
        )
        auth = basic_auth(public, secret)
        answer = http.post(
            "/v1/traces",
            content=trace_request([span]).SerializeToString(),
            headers={"content-type": "application/x-protobuf", "authorization": auth},
        )
        assert answer.status_code == 200
        score = {"traceId": span.trace_id.hex(), "name": label, "value": 1, "comment": label}
        assert http.post("/api/public/scores", json=score, headers={"authorization": auth}).status_code == 200
    wait_until(lambda: server.query.observations("other") and server.query.observations("default"))
    wait_until(lambda: http.get("/api/public/scores", headers={"authorization": basic_auth()}).json()["data"])
    http.close()
    made = Client(server)
    yield made
    made.http.close()


# The default run sends these to every parameter; a long campaign (SPANFUSE_FUZZ_EXAMPLES) all of HOSTILE.
HOSTILE_DEFAULT = [
    "' OR 1=1 --",
    "' UNION SELECT * FROM read_parquet('/etc/passwd') --",
    "a\x00b",
    "x" * 10_000,
    "0001-01-01T00:00:00+14:00",
    "",
]


def test_injection_shaped_filter_values_never_5xx_nor_leak(client: Client) -> None:
    values = HOSTILE if long_campaign() else HOSTILE_DEFAULT
    for path, names in STRING_PARAMS.items():
        for name in names:
            for value in values:
                client.call("GET", path, "rest:filters", params={name: value})
    # The project's own data is still there and intact.
    traces = client.call("GET", "/api/public/traces", "rest:filters").json()["data"]
    assert [t["name"] for t in traces] == ["mine"]


@pytest.mark.parametrize(
    "path", ["/api/public/traces", "/api/public/observations", "/api/public/sessions", "/api/public/scores",
             "/api/public/v2/scores", "/api/public/metrics/daily"],
)  # fmt: skip
def test_huge_limits_and_bad_pages_are_400(client: Client, path: str) -> None:
    for params in (
        {"limit": 10**12},
        {"limit": 0},
        {"limit": -1},
        {"limit": "x"},
        {"page": 0},
        {"page": -5},
        {"page": "1e3"},
        {"limit": 10**30},
    ):
        response = client.call("GET", path, "rest:paging", params=params)
        assert response.status_code == 400, (params, response.text)
        assert "Invalid request data" in response.json()["message"]
    for page in (10**6, 10**12, 2**62, 10**30):  # far past the end: empty, never an overflow
        response = client.call("GET", path, "rest:paging", params={"page": page})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            assert response.json()["data"] == []


def _b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


BAD_CURSORS = [
    "",
    "x",
    "!!!",
    "=" * 8,
    "%00",
    base64.b64encode(b"\xff\xfe").decode(),
    _b64([1, 2]),
    _b64("string"),
    _b64(None),
    _b64({}),
    _b64({"lastStartTimeTo": 5, "lastId": "a", "lastTraceId": "b"}),
    _b64({"lastStartTimeTo": "9999-99-99", "lastId": "a", "lastTraceId": "b"}),
    _b64({"lastStartTimeTo": "2024-01-01T00:00:00Z", "lastId": 1, "lastTraceId": None}),
    _b64({"lastStartTimeTo": "0001-01-01T00:00:00+14:00", "lastId": "a", "lastTraceId": "b"}),
    _b64({"lastStartTimeTo": "9999-12-31T23:59:59-14:00", "lastId": "a", "lastTraceId": "b"}),
    _b64({"v": 1, "ts": 10**30, "id": "a"}),
    _b64({"v": 1, "ts": -(10**18), "id": "a"}),
    _b64({"v": 1, "ts": 2**63, "id": "a"}),
    _b64({"v": 1, "ts": 1.5, "id": "a"}),
    _b64({"v": 1, "ts": 0, "id": ["a"]}),
    _b64({"v": 2, "ts": 0, "id": "a"}),
    base64.urlsafe_b64encode(orjson.dumps({"v": 1, "ts": 253402300799999999, "id": "' OR 1=1 --"})).decode(),
    "x" * 10_000,
]


@pytest.mark.parametrize("path", ["/api/public/v2/observations", "/api/public/v3/scores"])
def test_bad_cursors_are_400_or_an_empty_page(client: Client, path: str) -> None:
    for cursor in BAD_CURSORS:
        response = client.call("GET", path, "rest:cursors", params={"cursor": cursor})
        if response.status_code == 200:
            assert all(item.get("projectId") == "default" for item in response.json()["data"])
        else:
            assert response.status_code == 400, response.text


@pytest.mark.parametrize(("method", "template"), ID_ROUTES, ids=[f"{m} {t}" for m, t in ID_ROUTES])
def test_path_tricks_in_ids_are_4xx(client: Client, method: str, template: str) -> None:
    for raw in HOSTILE_IDS:
        for encoded in {quote(raw, safe=""), quote(raw, safe="/%")}:
            response = client.call(method, template.format(encoded), "rest:path_ids")
            if method == "GET":
                assert response.status_code in (400, 404), response.text
            else:
                assert response.status_code in (200, 202, 400, 404, 405), response.text
    # The other project's records stay out of reach by id, and deleting by id leaves them alone.
    for method_, template_, other_id in (
        ("GET", "/api/public/traces/{}", "0b" * 16),
        ("GET", "/api/public/observations/{}", "0b" * 8),
        ("GET", "/api/public/sessions/{}", OTHER_MARKER),
    ):
        assert client.call(method_, template_.format(other_id), "rest:path_ids").status_code == 404
