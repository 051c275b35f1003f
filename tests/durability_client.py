"""A retrying OTLP client for the crash tests, run as its own process.

It sends requests of uniquely named spans, alternating HTTP and gRPC, retrying each request
until the collector acknowledges it, and appends every acknowledged span id to a file
(fsynced) before sending the next request. Bounded by a request count and a deadline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.faults.helpers import payload_of
from tests.otlp_helpers import basic_auth, make_span, trace_request

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _send_http(client: httpx.Client, port: int, body: bytes) -> bool:
    try:
        response = client.post(
            f"http://127.0.0.1:{port}/v1/traces",
            content=body,
            headers={"content-type": "application/x-protobuf", "authorization": basic_auth()},
            timeout=10,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _send_grpc(port: int, body: bytes) -> bool:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                EXPORT, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
            )
            call(body, metadata=(("authorization", basic_auth()),), timeout=10)
    except grpc.RpcError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--spans", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=120.0)
    args = parser.parse_args()
    stop_at = time.monotonic() + args.deadline
    with httpx.Client() as client, open(args.out, "a") as out:
        for number in range(args.requests):
            names = [f"r{number}-s{i}" for i in range(args.spans)]
            # Each span carries an attribute derived from its name: the test checks content, not only ids.
            spans = [make_span(name=name, attributes={"fault.payload": payload_of(name)}) for name in names]
            body = trace_request(spans).SerializeToString()
            while True:
                if time.monotonic() > stop_at:
                    print(f"deadline passed at request {number}", file=sys.stderr)
                    return 1
                sent = _send_http(client, args.http_port, body) if number % 2 else _send_grpc(args.grpc_port, body)
                if sent:
                    break
                time.sleep(0.05)
            out.write("".join(f"{s.span_id.hex()} {s.name}\n" for s in spans))
            out.flush()
            os.fsync(out.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
