"""Fixtures for REST API tests: a collector over real sockets and an authenticated client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from collector.server import Server
from tests.conftest import wait_until
from tests.otlp_helpers import basic_auth, trace_request

OTHER_AUTH = ("pk-lf-other", "sk-lf-other")


class Api:
    """An HTTP client for one project of a running server, plus ingest helpers."""

    def __init__(self, server: Server, public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test") -> None:
        self.server = server
        self.keys = (public_key, secret_key)
        self.base = f"http://127.0.0.1:{server.http_port}"
        self.client = httpx.Client(base_url=self.base, auth=(public_key, secret_key), timeout=30)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request("DELETE", path, **kwargs)

    def send_spans(self, spans: list[Any], auth: tuple[str, str] | None = None, service: str = "svc") -> None:
        """Send spans over OTLP/HTTP and wait until every one of them, and their traces, are queryable."""
        response = httpx.post(
            f"{self.base}/v1/traces",
            content=trace_request(spans, service=service).SerializeToString(),
            headers={"content-type": "application/x-protobuf", "authorization": basic_auth(*(auth or self.keys))},
        )
        assert response.status_code == 200, response.text
        project = self.server.auth.project_for(basic_auth(*(auth or self.keys)))
        ids = {span.span_id.hex() for span in spans}
        wait_until(lambda: ids <= {r["id"] for r in self.server.query.query(project, "SELECT id FROM {observations}")})
        # A batch publishes its tables one after another: the trace rows may land just after the
        # observations. The WAL offset is committed once the whole batch is published.
        wait_until(lambda: self.server.pipeline.reader.lag_bytes() == 0)


@pytest.fixture
def other_api(api: Api) -> Iterator[Api]:
    """The same server, seen with the keys of project ``other``."""
    client = Api(api.server, *OTHER_AUTH)
    yield client
    client.client.close()


@pytest.fixture
def api(start_server: Callable[..., Server]) -> Iterator[Api]:
    server = start_server(parquet={"flush_interval": "100ms", "workers": 0})
    client = Api(server)
    yield client
    client.client.close()
