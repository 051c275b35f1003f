"""What runs in the user's process (the Langfuse span processor) and the collector-side
forwarders. This package must import with only the OpenTelemetry SDK and the OTLP/HTTP
exporter installed: no FastAPI, DuckDB, pyarrow or grpcio here.

Client side::

    from exporters import LangfuseSpanProcessor, observe, propagate_attributes
"""

from exporters.decorators import observe
from exporters.filtering import is_default_export_span
from exporters.masking import FAILED_MASK_PLACEHOLDER
from exporters.processor import LangfuseSpanProcessor
from exporters.propagation import propagate_attributes

__all__ = [
    "FAILED_MASK_PLACEHOLDER",
    "LangfuseSpanProcessor",
    "is_default_export_span",
    "observe",
    "propagate_attributes",
]
