"""The message class the Parquet pipeline decodes trace requests with (when the mapper is compiled).

``TraceRequest`` is ``ExportTraceServiceRequest`` with one change: ``Span.attributes`` is declared
``repeated bytes``, which has the same wire encoding as ``repeated KeyValue``. Each span attribute
then arrives as its encoded ``KeyValue``, which the mapper reads without building protobuf
objects for it (see :mod:`semconv.keyvalue`); everything else decodes as usual. The schema is
derived from opentelemetry-proto's own descriptors, in a private pool.
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
    span = next(message for message in trace.message_type if message.name == "Span")
    attributes = next(field for field in span.field if field.name == "attributes")
    attributes.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    attributes.ClearField("type_name")
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
