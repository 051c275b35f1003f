"""Run a real GenAI instrumentation against the fake OpenAI server; export OTLP to a collector.

Run as its own process (instrumentations patch the ``openai`` module globally and read their
mode from the environment at import time)::

    python -m tests.genai_client MODE COLLECTOR_URL OPENAI_BASE_URL AUTHORIZATION

MODE: ``openai-v2`` (default mode: content as log events), ``openai-v2-latest``
(``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``: content on the span), or
``openinference``. Prints the trace id of the chat call.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    mode, collector, openai_base_url, authorization = sys.argv[1:5]
    if mode == "openai-v2-latest":
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    else:
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"

    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    headers = {"authorization": authorization}
    resource = Resource.create({"service.name": f"genai-{mode}"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{collector}/v1/traces", headers=headers))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{collector}/v1/logs", headers=headers))
    )

    if mode.startswith("openai-v2"):
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    elif mode == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    else:
        raise SystemExit(f"unknown mode {mode}")

    from openai import OpenAI

    client = OpenAI(base_url=openai_base_url, api_key="sk-fake", max_retries=0)
    tracer = tracer_provider.get_tracer("tests.genai_client")
    with tracer.start_as_current_span("answer question") as root:
        client.chat.completions.create(
            model="gpt-4o",
            temperature=0.2,
            messages=[
                {"role": "system", "content": "You are a weather bot."},
                {"role": "user", "content": "Weather in Paris?"},
            ],
        )
    print(format(root.get_span_context().trace_id, "032x"))
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
