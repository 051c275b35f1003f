"""What the fault tests share: sending numbered spans over both transports and checking what is stored."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from storage.query import TableQuery
from tests.otlp_helpers import basic_auth, make_span, trace_request

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRYABLE_HTTP = {429, 503}
RETRYABLE_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}


def payload_of(name: str) -> str:
    """The attribute value every test span carries, derived from its name (checked on read)."""
    return f"{name}:" + name[::-1] * 3


@dataclass
class Outcome:
    """One export attempt: ``ok`` when acknowledged; ``status`` the HTTP status or gRPC code name."""

    ok: bool
    status: str
    retry_after: str | None = None


@dataclass
class Ledger:
    """Spans acknowledged by the collector (id → name) and every refusal seen."""

    acked: dict[str, str] = field(default_factory=dict)
    refusals: list[Outcome] = field(default_factory=list)


def numbered_spans(prefix: str, count: int) -> list[Any]:
    names = [f"{prefix}-{i}" for i in range(count)]
    return [make_span(span_id=os.urandom(8), name=n, attributes={"fault.payload": payload_of(n)}) for n in names]


def send(port_http: int, port_grpc: int, spans: list[Any], transport: str, auth: str | None = None) -> Outcome:
    """Export ``spans`` once over ``transport`` (http or grpc), with ``auth`` (the default project's keys)."""
    body = trace_request(spans).SerializeToString()
    auth = auth or basic_auth()
    if transport == "http":
        try:
            response = httpx.post(
                f"http://127.0.0.1:{port_http}/v1/traces",
                content=body,
                headers={"content-type": "application/x-protobuf", "authorization": auth},
                timeout=10,
            )
        except httpx.HTTPError as exc:
            return Outcome(False, type(exc).__name__)
        return Outcome(response.status_code == 200, str(response.status_code), response.headers.get("retry-after"))
    with grpc.insecure_channel(f"127.0.0.1:{port_grpc}") as channel:
        call = channel.unary_unary(
            EXPORT, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )
        try:
            call(body, metadata=(("authorization", auth),), timeout=10)
        except grpc.RpcError as error:
            return Outcome(False, error.code().name)
    return Outcome(True, "OK")


def record(ledger: Ledger, spans: list[Any], outcome: Outcome) -> None:
    if outcome.ok:
        ledger.acked.update({s.span_id.hex(): s.name for s in spans})
    else:
        ledger.refusals.append(outcome)


def stored(query: TableQuery, project: str = "default") -> list[dict[str, Any]]:
    """Every stored observation's id, name and ``fault.payload`` attribute (reads deduplicate)."""
    payload = "json_extract_string(attributes, '$.\"fault.payload\"') AS payload"
    return query.query(project, f"SELECT id, name, {payload} FROM {{observations}}")


def check_exactly_once(rows: list[dict[str, Any]], acked: dict[str, str]) -> tuple[int, int]:
    """Assert every acknowledged span reads once with its own name and payload; returns (lost, duplicated)."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(row["id"], []).append(row)
    lost = [span_id for span_id in acked if span_id not in by_id]
    duplicated = [span_id for span_id, copies in by_id.items() if len(copies) > 1]
    assert not lost, f"{len(lost)} acknowledged spans lost, e.g. {lost[:3]}"
    assert not duplicated, f"{len(duplicated)} spans read more than once"
    for span_id, name in acked.items():
        row = by_id[span_id][0]
        assert row["name"] == name, (span_id, row["name"], name)
        assert row["payload"] == payload_of(name), (span_id, row["payload"])
    return len(lost), len(duplicated)
