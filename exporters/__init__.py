"""What runs in the user's process (the Langfuse span processor) and the collector-side
forwarders. This package must import with only the OpenTelemetry SDK and the OTLP/HTTP
exporter installed: no FastAPI, DuckDB, pyarrow or grpcio here.
"""
