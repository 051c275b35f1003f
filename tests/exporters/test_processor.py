"""LangfuseSpanProcessor against a scripted local sink: export, filter, sampling, queueing, lifecycle."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from exporters import LangfuseSpanProcessor, is_default_export_span
from tests.conftest import ROOT, wait_until
from tests.exporters.conftest import attributes

GENAI = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
HTTP_SCOPE = "opentelemetry.instrumentation.requests"


def test_spans_are_posted_as_otlp_protobuf_with_langfuse_auth(sink, make_processor):
    processor, provider = make_processor(public_key="pk-a", secret_key="sk-a", base_url=sink.url + "/")
    with provider.get_tracer("app").start_as_current_span("chat", attributes=GENAI):
        pass
    assert processor.force_flush() is True
    (request,) = sink.received
    assert request.path == "/api/public/otel/v1/traces"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"pk-a:sk-a").decode()
    assert request.headers["x-langfuse-public-key"] == "pk-a"
    assert request.headers["x-langfuse-sdk-name"] == "spanfuse"
    assert request.headers["content-encoding"] == "gzip"
    (span,) = request.spans()
    assert span.name == "chat" and attributes(span)["gen_ai.request.model"] == "gpt-4o"
    assert processor.stats["exported"] == 1


def test_default_filter_keeps_llm_spans_and_drops_http_and_db_spans(sink, make_processor):
    processor, provider = make_processor()
    provider.get_tracer(HTTP_SCOPE).start_span("GET /users", attributes={"http.method": "GET"}).end()
    provider.get_tracer("opentelemetry.instrumentation.sqlalchemy").start_span("SELECT").end()
    provider.get_tracer("my.app").start_span("plain").end()
    provider.get_tracer("my.app").start_span("genai", attributes=GENAI).end()
    provider.get_tracer("opentelemetry.instrumentation.anthropic").start_span("anthropic.chat").end()
    provider.get_tracer("openinference.instrumentation.langchain").start_span("chain").end()
    provider.get_tracer("ai").start_span("ai.generateText").end()
    provider.get_tracer("langfuse-sdk").start_span("lf").end()
    provider.get_tracer("aiohttp").start_span("ai-prefix-lookalike").end()  # "ai" matches on "." boundaries only
    assert processor.force_flush()
    assert sorted(s.name for s in sink.spans()) == ["ai.generateText", "anthropic.chat", "chain", "genai", "lf"]
    assert processor.stats["filtered"] == 4


def test_custom_predicate_keeps_http_spans(sink, make_processor):
    def keep(span):
        return is_default_export_span(span) or "http.method" in (span.attributes or {})

    processor, provider = make_processor(should_export_span=keep)
    provider.get_tracer(HTTP_SCOPE).start_span("GET /users", attributes={"http.method": "GET"}).end()
    provider.get_tracer("opentelemetry.instrumentation.sqlalchemy").start_span("SELECT").end()
    assert processor.force_flush()
    assert [s.name for s in sink.spans()] == ["GET /users"]


def test_raising_predicate_drops_the_span_and_logs_once(sink, make_processor, caplog):
    def broken(span):
        raise RuntimeError("boom")

    processor, provider = make_processor(should_export_span=broken)
    with caplog.at_level(logging.WARNING, logger="exporters"):
        for _ in range(5):
            provider.get_tracer("app").start_span("x", attributes=GENAI).end()
    assert processor.force_flush()
    assert sink.spans() == []
    assert processor.stats["dropped_predicate_error"] == 5
    assert len([r for r in caplog.records if "should_export_span raised" in r.getMessage()]) == 1


def test_full_queue_drops_and_counts(sink, make_processor):
    processor, provider = make_processor(max_queue_size=3, flush_at=100)
    for i in range(10):
        provider.get_tracer("app").start_span(f"s{i}", attributes=GENAI).end()
    assert processor.stats["dropped_queue_full"] == 7
    assert processor.stats["queued"] == 3
    assert processor.force_flush()
    assert [s.name for s in sink.spans()] == ["s0", "s1", "s2"]


def test_a_full_batch_is_sent_without_waiting_for_the_interval(sink, make_processor):
    processor, provider = make_processor(flush_at=2, flush_interval=60)
    for name in ("a", "b", "c"):
        provider.get_tracer("app").start_span(name, attributes=GENAI).end()
    wait_until(lambda: len(sink.spans()) == 2, timeout=5)
    assert processor.stats["queued"] == 1  # the partial batch waits for the interval or a flush


def test_the_interval_sends_a_partial_batch(sink, make_processor):
    _, provider = make_processor(flush_at=100, flush_interval=0.1)
    provider.get_tracer("app").start_span("lonely", attributes=GENAI).end()
    wait_until(lambda: [s.name for s in sink.spans()] == ["lonely"], timeout=5)


def test_force_flush_is_false_when_the_server_rejects(sink, make_processor):
    processor, provider = make_processor()
    sink.script = [(400, {})]
    provider.get_tracer("app").start_span("x", attributes=GENAI).end()
    assert processor.force_flush() is False
    assert processor.stats["failed"] == 1 and sink.attempts == 1  # 400 is final: not retried
    provider.get_tracer("app").start_span("y", attributes=GENAI).end()
    assert processor.force_flush() is True


def test_503_retry_after_then_delivered(sink, make_processor):
    processor, provider = make_processor()
    sink.script = [(503, {"Retry-After": "0"}), (503, {"Retry-After": "0"})]
    provider.get_tracer("app").start_span("x", attributes=GENAI).end()
    assert processor.force_flush() is True
    assert [s.name for s in sink.spans()] == ["x"]
    assert processor.stats["retries"] == 2


def test_force_flush_times_out_while_the_server_keeps_failing(sink, make_processor):
    processor, provider = make_processor()
    sink.script = [(503, {"Retry-After": "1"})] * 3
    provider.get_tracer("app").start_span("x", attributes=GENAI).end()
    assert processor.force_flush(timeout_millis=200) is False
    started = time.monotonic()
    processor.shutdown(timeout_millis=200)  # gives up the retries rather than hang the exit
    assert time.monotonic() - started < 2
    assert processor.stats["failed"] == 1


def test_shutdown_flushes_stops_the_thread_and_drops_later_spans(sink, make_processor):
    processor, provider = make_processor()
    provider.get_tracer("app").start_span("before", attributes=GENAI).end()
    processor.shutdown()
    assert [s.name for s in sink.spans()] == ["before"]
    assert not processor._thread.is_alive()
    provider.get_tracer("app").start_span("after", attributes=GENAI).end()
    assert processor.stats["dropped_after_shutdown"] == 1
    processor.shutdown()  # idempotent
    assert processor.force_flush() is True  # nothing left to send


def test_provider_shutdown_shuts_the_processor_down(sink, make_processor):
    processor, provider = make_processor()
    provider.get_tracer("app").start_span("x", attributes=GENAI).end()
    provider.shutdown()
    assert [s.name for s in sink.spans()] == ["x"] and not processor._thread.is_alive()


def test_sampling_is_by_trace_id_like_trace_id_ratio_based(sink, make_processor):
    processor, provider = make_processor(sample_rate=0.5)
    tracer = provider.get_tracer("app")
    trace_ids = []
    for _ in range(200):
        with tracer.start_as_current_span("root", attributes=GENAI) as root:
            tracer.start_span("child", attributes=GENAI).end()
        trace_ids.append(root.get_span_context().trace_id)
    assert processor.force_flush()
    exported: dict[int, int] = {}
    for span in sink.spans():
        tid = int.from_bytes(span.trace_id, "big")
        exported[tid] = exported.get(tid, 0) + 1
    assert set(exported.values()) == {2}  # a trace is kept or dropped whole
    reference = TraceIdRatioBased(0.5)
    expected = {t for t in trace_ids if reference.should_sample(None, t, "x").decision.is_sampled()}
    assert set(exported) == expected
    assert 60 < len(expected) < 140
    assert processor.stats["sampled_out"] == 2 * (200 - len(expected))


def test_sample_rate_zero_exports_nothing(sink, make_processor):
    processor, provider = make_processor(sample_rate=0)
    provider.get_tracer("app").start_span("x", attributes=GENAI).end()
    assert processor.force_flush() and sink.spans() == []


def test_environment_and_release_are_stamped_on_every_span(sink, make_processor):
    processor, provider = make_processor(environment="staging", release="v9")
    provider.get_tracer("app").start_span("x", attributes=GENAI).end()
    provider.get_tracer("app").start_span("own", attributes={**GENAI, "langfuse.environment": "mine"}).end()
    assert processor.force_flush()
    x, own = sink.spans()
    assert attributes(x)["langfuse.environment"] == "staging" and attributes(x)["langfuse.release"] == "v9"
    assert attributes(own)["langfuse.environment"] == "mine"


def test_app_root_is_marked_below_a_filtered_parent(sink, make_processor):
    processor, provider = make_processor()
    http, app = provider.get_tracer(HTTP_SCOPE), provider.get_tracer("app")
    with (
        http.start_as_current_span("POST /chat", attributes={"http.method": "POST"}) as request_span,
        app.start_as_current_span("agent", attributes=GENAI) as agent,
    ):
        with http.start_as_current_span("GET tool", attributes={"http.method": "GET"}):
            app.start_span("llm", attributes=GENAI).end()
        app.start_span("direct child", attributes=GENAI).end()
    assert processor.force_flush()
    spans = {s.name: s for s in sink.spans()}
    assert set(spans) == {"agent", "llm", "direct child"}
    agent_attrs = attributes(spans["agent"])
    assert agent_attrs["langfuse.internal.is_app_root"] is True and agent_attrs["langfuse.internal.as_root"] is True
    # The original parent id stays on the root (it really exists, just not exported) ...
    assert spans["agent"].parent_span_id == request_span.get_span_context().span_id.to_bytes(8, "big")
    # ... and a span under a filtered middle span hangs under its nearest exported ancestor.
    agent_id = agent.get_span_context().span_id.to_bytes(8, "big")
    assert spans["llm"].parent_span_id == agent_id
    assert spans["direct child"].parent_span_id == agent_id
    for name in ("llm", "direct child"):
        assert "langfuse.internal.is_app_root" not in attributes(spans[name])


def test_span_without_parent_is_an_app_root(sink, make_processor):
    processor, provider = make_processor()
    provider.get_tracer("app").start_span("root", attributes=GENAI).end()
    assert processor.force_flush()
    assert attributes(sink.spans()[0])["langfuse.internal.is_app_root"] is True


def test_remote_parent_claimed_by_an_upstream_service_is_not_re_rooted(sink, make_processor):
    processor, provider = make_processor()
    trace_id = 0x1234567890ABCDEF1234567890ABCDEF
    remote = NonRecordingSpan(SpanContext(trace_id, 0x1111, is_remote=True, trace_flags=TraceFlags(1)))
    ctx = trace.set_span_in_context(remote)
    provider.get_tracer("app").start_span("unclaimed", context=ctx, attributes=GENAI).end()
    claimed = baggage.set_baggage("langfuse_trace_id", format(trace_id, "032x"), context=ctx)
    provider.get_tracer("app").start_span("claimed", context=claimed, attributes=GENAI).end()
    assert processor.force_flush()
    spans = {s.name: attributes(s) for s in sink.spans()}
    assert spans["unclaimed"]["langfuse.internal.is_app_root"] is True
    assert "langfuse.internal.is_app_root" not in spans["claimed"]


def test_langfuse_sdk_spans_of_another_project_are_dropped(sink, make_processor):
    processor, provider = make_processor(public_key="pk-mine")
    provider.get_tracer("langfuse-sdk", attributes={"public_key": "pk-other"}).start_span("theirs").end()
    provider.get_tracer("langfuse-sdk", attributes={"public_key": "pk-mine"}).start_span("mine").end()
    assert processor.force_flush()
    assert [s.name for s in sink.spans()] == ["mine"]


def test_works_beside_other_processors_without_changing_their_spans(sink):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))  # configured by other code first
    processor = LangfuseSpanProcessor("pk", "sk", sink.url, environment="prod", flush_interval=60)
    provider.add_span_processor(processor)
    provider.get_tracer("app").start_span("x", attributes=GENAI).end()
    assert processor.force_flush()
    assert attributes(sink.spans()[0])["langfuse.environment"] == "prod"
    (seen,) = memory.get_finished_spans()
    assert "langfuse.environment" not in seen.attributes  # our stamping is on our export only
    provider.shutdown()


def test_oversized_batches_are_split_and_an_oversized_span_is_dropped(sink, make_processor):
    processor, provider = make_processor(max_batch_bytes=600)
    for i in range(4):
        provider.get_tracer("app").start_span(f"s{i}", attributes=GENAI).end()
    provider.get_tracer("app").start_span("huge", attributes={**GENAI, "gen_ai.prompt": "x" * 2000}).end()
    assert processor.force_flush() is False
    assert sorted(s.name for s in sink.spans()) == ["s0", "s1", "s2", "s3"]
    assert len(sink.received) > 1 and processor.stats["failed"] == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_exports_its_own_spans(sink, make_processor):
    processor, provider = make_processor(flush_at=100)
    tracer = provider.get_tracer("app")
    tracer.start_span("queued in parent", attributes=GENAI).end()
    pid = os.fork()
    if pid == 0:  # child: a fresh queue and thread; the parent's queued span is the parent's to send
        code = 1
        try:
            tracer.start_span("from child", attributes=GENAI).end()
            code = 0 if processor.force_flush(timeout_millis=10_000) and processor.stats["exported"] == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert processor.force_flush()
    assert sorted(s.name for s in sink.spans()) == ["from child", "queued in parent"]


def test_queued_spans_are_sent_at_interpreter_exit(sink):
    script = textwrap.dedent(
        f"""
        from opentelemetry.sdk.trace import TracerProvider
        from exporters import LangfuseSpanProcessor
        provider = TracerProvider(shutdown_on_exit=False)  # only our own atexit hook can send it
        provider.add_span_processor(LangfuseSpanProcessor("pk", "sk", {sink.url!r}, flush_interval=60))
        provider.get_tracer("app").start_span("at exit", attributes={{"gen_ai.system": "openai"}}).end()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert [s.name for s in sink.spans()] == ["at exit"]


def test_an_internal_error_is_counted_not_raised_into_the_application(sink, make_processor, caplog):
    processor, provider = make_processor()
    queue, processor._queue = processor._queue, None  # a broken internal state
    try:
        with caplog.at_level(logging.WARNING, logger="exporters"):
            for _ in range(3):
                provider.get_tracer("app").start_span("x", attributes=GENAI).end()  # must not raise
    finally:
        processor._queue = queue
    assert processor.stats["internal_errors"] == 3
    assert len([r for r in caplog.records if "span processor error" in r.getMessage()]) == 1


def test_context_is_left_as_it_was(make_processor):
    _, provider = make_processor()
    before = context.get_current()
    provider.get_tracer("app").start_span("x").end()
    assert context.get_current() == before


def test_compression_can_be_turned_off(sink, make_processor):
    processor, provider = make_processor(compression="none")
    provider.get_tracer("app").start_span("plain body", attributes=GENAI).end()
    assert processor.force_flush()
    assert "content-encoding" not in sink.received[0].headers
    assert [s.name for s in sink.spans()] == ["plain body"]
