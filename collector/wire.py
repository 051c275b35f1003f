"""The message class the Parquet pipeline decodes trace requests with (when the mapper is compiled).

``TraceRequest`` is ``ExportTraceServiceRequest`` with one change: ``ScopeSpans.spans`` is declared
``repeated bytes``, which has the same wire encoding as ``repeated Span``. Each span then arrives
encoded, and the mapper reads it without building protobuf objects for it or its attributes
(see :mod:`semconv.encoded_span`). The schema is derived from opentelemetry-proto's own
descriptors, in a private pool.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from collector import native


def _trace_request_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2):
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb))
    trace = descriptor_pb2.FileDescriptorProto.FromString(trace_pb2.DESCRIPTOR.serialized_pb)
    scope_spans = next(message for message in trace.message_type if message.name == "ScopeSpans")
    spans = next(field for field in scope_spans.field if field.name == "spans")
    spans.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    spans.ClearField("type_name")
    pool.Add(trace)
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(trace_service_pb2.DESCRIPTOR.serialized_pb))
    name = trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR.full_name
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


TraceRequest: Any = _trace_request_class()


def pipeline_request_type() -> Any:
    """The class the Parquet pipeline decodes trace requests with.

    :data:`TraceRequest` when the compiled mapper runs; on the plain source, reading the bytes
    in Python is slower than protobuf's own C objects, so there it is ``ExportTraceServiceRequest``.
    """
    return TraceRequest if native.active_build() is not None else trace_service_pb2.ExportTraceServiceRequest
