"""Span attribute names of Langfuse's OpenTelemetry dialect that the client side writes.

They match the Langfuse SDK (``langfuse/_client/attributes.py``), so the collector's Langfuse
dialect (and a real Langfuse server) maps them without knowing who sent the span.
"""

from __future__ import annotations

OBSERVATION_TYPE = "langfuse.observation.type"
OBSERVATION_INPUT = "langfuse.observation.input"
OBSERVATION_OUTPUT = "langfuse.observation.output"
OBSERVATION_LEVEL = "langfuse.observation.level"
OBSERVATION_STATUS_MESSAGE = "langfuse.observation.status_message"
OBSERVATION_METADATA = "langfuse.observation.metadata"

TRACE_NAME = "langfuse.trace.name"
TRACE_USER_ID = "langfuse.user.id"
TRACE_SESSION_ID = "langfuse.session.id"
TRACE_TAGS = "langfuse.trace.tags"
TRACE_METADATA = "langfuse.trace.metadata"
VERSION = "langfuse.version"
RELEASE = "langfuse.release"
ENVIRONMENT = "langfuse.environment"

# The logical root of an application's part of a trace. The SDK v5 writes ``is_app_root``; older
# Langfuse servers only know ``as_root``. Both are read by semconv/dialects/langfuse.py.
IS_APP_ROOT = "langfuse.internal.is_app_root"
AS_ROOT = "langfuse.internal.as_root"
