"""``LangfuseSpanProcessor``: export a tracer provider's LLM spans to Spanfuse or Langfuse over OTLP/HTTP.

Cost on the application thread is kept to a few dictionary operations per span:

- ``on_start`` records the span in a table of live spans (with a link to its parent's record) and
  the propagated attributes of its context, if any;
- ``on_end`` samples by trace id, applies the export filter and appends to a bounded queue.

Everything else happens in one background thread per processor: stamping propagated attributes,
environment and release, marking app roots, masking, protobuf encoding (the OpenTelemetry
library's encoder), gzip and the HTTP POST with retries. The span objects are never modified
after they end; the thread encodes adjusted copies.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context, get_current
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext
from opentelemetry.util.types import AttributeValue

from exporters import attributes as attr
from exporters.filtering import LANGFUSE_SDK_SCOPE, DefaultSpanFilter, SpanPredicate
from exporters.masking import Masker, MaskFunction
from exporters.propagation import TRACE_CLAIM, propagated_from_context
from exporters.settings import resolve
from exporters.transport import OtlpHttpTransport, Outcome

logger = logging.getLogger(__name__)

# (span, parent's entry or None, propagated attributes or None): a linked list up the local ancestry.
_Entry = tuple[ReadableSpan, Any, Mapping[str, AttributeValue] | None]

_LOW_64_BITS = (1 << 64) - 1
_MAX_LIVE_SPANS = 100_000  # spans started and never ended must not grow memory without bound
_MAX_ANCESTRY = 64
DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024  # Langfuse's request cap


class _FlushRequest:
    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = True


class LangfuseSpanProcessor(SpanProcessor):
    """Batch and export LLM spans to ``{base_url}/api/public/otel/v1/traces`` with Langfuse's Basic auth.

    Add it to any SDK ``TracerProvider``, new or already configured by other code::

        provider.add_span_processor(LangfuseSpanProcessor(public_key="pk-lf-…", secret_key="sk-lf-…",
                                                          base_url="http://127.0.0.1:4318"))

    Arguments left out come from ``LANGFUSE_PUBLIC_KEY``, ``LANGFUSE_SECRET_KEY``,
    ``LANGFUSE_BASE_URL`` (or ``LANGFUSE_HOST``), ``LANGFUSE_TIMEOUT`` (seconds, default 5),
    ``LANGFUSE_FLUSH_AT`` (spans per batch, 512), ``LANGFUSE_FLUSH_INTERVAL`` (seconds, 5),
    ``LANGFUSE_TRACING_ENVIRONMENT``, ``LANGFUSE_RELEASE`` and ``LANGFUSE_SAMPLE_RATE`` (0..1).

    - ``should_export_span(span) -> bool`` replaces the default filter (LLM spans only, see
      ``exporters.filtering``); a predicate that raises drops the span and is logged once.
    - ``mask(value) -> value`` rewrites input, output and metadata attributes before they leave the
      process (``exporters.masking``).
    - ``sample_rate`` keeps that fraction of traces, decided by trace id exactly like
      OpenTelemetry's ``TraceIdRatioBased`` sampler, so it works on a provider you do not own.
    - ``stats`` counts what was exported, retried, filtered, sampled out and dropped.
    """

    def __init__(
        self,
        public_key: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | None = None,
        flush_at: int | None = None,
        flush_interval: float | None = None,
        should_export_span: SpanPredicate | None = None,
        additional_headers: Mapping[str, str] | None = None,
        mask: MaskFunction | None = None,
        environment: str | None = None,
        release: str | None = None,
        sample_rate: float | None = None,
        compression: str | None = None,
        max_queue_size: int = 2048,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ) -> None:
        settings = resolve(
            public_key=public_key,
            secret_key=secret_key,
            base_url=base_url,
            timeout=timeout,
            flush_at=flush_at,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            additional_headers=additional_headers,
            environment=environment,
            release=release,
            sample_rate=sample_rate,
            compression=compression,
        )
        if should_export_span is not None and not callable(should_export_span):
            raise ValueError("should_export_span must be a callable taking a span and returning a bool")
        if mask is not None and not callable(mask):
            raise ValueError("mask must be a callable taking a value and returning the masked value")
        self.settings = settings
        self.public_key = settings.public_key
        self.endpoint = settings.endpoint
        self._predicate: SpanPredicate = should_export_span or DefaultSpanFilter()
        self._masker = Masker(mask) if mask is not None else None
        self._stamps: tuple[tuple[str, str], ...] = tuple(
            (key, value)
            for key, value in ((attr.ENVIRONMENT, settings.environment), (attr.RELEASE, settings.release))
            if value
        )
        # TraceIdRatioBased's rule: keep when the low 64 bits of the trace id are below rate * 2**64.
        self._sample_bound: int | None = (
            None if settings.sample_rate >= 1.0 else round(settings.sample_rate * (_LOW_64_BITS + 1))
        )
        self._flush_at = settings.flush_at
        self._max_queue = settings.max_queue_size
        self._max_batch_bytes = max_batch_bytes
        self._transport = OtlpHttpTransport(
            settings.endpoint, settings.headers, timeout=settings.timeout, compression=settings.compression
        )
        self._live: dict[int, _Entry] = {}
        self._closed = False
        self._warned: set[str] = set()
        self._reset_counters()
        self._start_worker()

        # Module-level hooks hold only weak references, so a discarded processor can be collected.
        ref = weakref.ref(self)
        self._atexit_hook = functools.partial(_shutdown_at_exit, ref)
        atexit.register(self._atexit_hook)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=functools.partial(_reinit_in_child, ref))

    # -- application thread ------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Remember the span's local ancestry and the attributes propagated to it (cheap)."""
        try:
            live = self._live
            parent = span.parent
            parent_entry = live.get(parent.span_id) if parent is not None else None
            propagated = propagated_from_context(parent_context if parent_context is not None else get_current())
            if len(live) >= _MAX_LIVE_SPANS:
                live.clear()  # only app-root detection of spans open right now degrades
                self._warn_once("live", "more than %d spans are open at once; forgetting them", _MAX_LIVE_SPANS)
            live[span.context.span_id] = (span, parent_entry, propagated)
        except Exception as error:  # (try is free in 3.11+) tracing must never break the application
            self._internal_error(error)

    def on_end(self, span: ReadableSpan) -> None:
        """Sample, filter and queue the span; never blocks, never raises."""
        try:
            context = span.context
            entry = self._live.pop(context.span_id, None)
            if not context.trace_flags.sampled:
                return
            bound = self._sample_bound
            if bound is not None and (context.trace_id & _LOW_64_BITS) >= bound:
                self._sampled_out += 1
                return
            if not self._exportable(span, log_errors=True):
                self._filtered += 1
                return
            if self._closed:
                self._dropped_after_shutdown += 1
                return
            queue = self._queue
            if len(queue) >= self._max_queue:
                self._dropped_queue_full += 1
                self._warn_once("queue", "export queue is full (%d spans); dropping spans", self._max_queue)
                return
            # Queue the ended snapshot the SDK hands us, with the ancestry recorded at start.
            queue.append((span, entry[1], entry[2]) if entry is not None else (span, None, None))
            if len(queue) >= self._flush_at and not self._wake.is_set():  # is_set: no lock taken
                self._wake.set()
        except Exception as error:
            self._internal_error(error)

    def _exportable(self, span: ReadableSpan, *, log_errors: bool) -> bool:
        scope = span.instrumentation_scope
        if scope is not None and scope.name == LANGFUSE_SDK_SCOPE and scope.attributes:
            # The Langfuse SDK tags its tracer with its project's key: never send one project's
            # spans to another project in multi-project processes.
            key = scope.attributes.get("public_key")
            if key is not None and key != self.public_key:
                return False
        try:
            return bool(self._predicate(span))
        except Exception as error:
            if log_errors:
                self._predicate_errors += 1
                self._warn_once(
                    "predicate", "should_export_span raised %s: %s; such spans are dropped", type(error).__name__, error
                )
            return False

    # -- control -------------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Send everything queued so far; True when it was all delivered within the timeout."""
        if not self._thread.is_alive():
            return not self._queue
        request = _FlushRequest()
        with self._flush_lock:
            self._flush_requests.append(request)
        self._wake.set()
        if not request.done.wait(timeout_millis / 1000):
            return False
        return request.ok

    def shutdown(self, timeout_millis: int = 10_000) -> None:
        """Flush what is queued (within the timeout), then stop the background thread."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit_hook)
        self.force_flush(timeout_millis)
        self._abort.set()  # cuts short a retry still waiting after the timeout
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=max(1.0, self.settings.timeout + 1.0))
        self._transport.close()
        leftover = len(self._queue)
        if leftover:
            self._failed += leftover
            self._queue.clear()

    @property
    def stats(self) -> dict[str, int]:
        """Counters since start (per process): what was exported, and what was not and why."""
        return {
            "exported": self._exported,
            "failed": self._failed,
            "retries": self._transport.retries,
            "queued": len(self._queue),
            "filtered": self._filtered,
            "sampled_out": self._sampled_out,
            "dropped_queue_full": self._dropped_queue_full,
            "dropped_predicate_error": self._predicate_errors,
            "dropped_after_shutdown": self._dropped_after_shutdown,
            "internal_errors": self._internal_errors,
            "mask_failures": self._masker.failures if self._masker is not None else 0,
        }

    def _internal_error(self, error: Exception) -> None:
        self._internal_errors += 1
        self._warn_once("internal", "span processor error, span not exported: %r", error)

    def _reset_counters(self) -> None:
        self._exported = self._failed = self._filtered = self._sampled_out = 0
        self._dropped_queue_full = self._predicate_errors = self._dropped_after_shutdown = 0
        self._internal_errors = 0

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message + " (logged once)", *args)

    # -- background thread ----------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._queue: deque[_Entry] = deque()
        self._wake = threading.Event()
        self._abort = threading.Event()
        self._flush_lock = threading.Lock()
        self._flush_requests: list[_FlushRequest] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="spanfuse-langfuse-exporter", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The child inherits the parent's queue (the parent sends those), locks possibly held by
        # threads that do not exist here, a dead worker thread and shared sockets: start afresh.
        self._transport.reset_after_fork()
        self._transport.retries = 0
        self._reset_counters()
        self._start_worker()
        if self._closed:
            self._stopping = True
            self._wake.set()

    def _run(self) -> None:
        interval = self.settings.flush_interval
        next_flush = time.monotonic() + interval
        while True:
            self._wake.wait(max(0.0, next_flush - time.monotonic()))
            self._wake.clear()
            with self._flush_lock:
                requests, self._flush_requests = self._flush_requests, []
            stopping = self._stopping
            try:
                if requests or stopping or time.monotonic() >= next_flush:
                    ok = self._export(len(self._queue))
                    next_flush = time.monotonic() + interval
                else:
                    ok = self._export(len(self._queue) - len(self._queue) % self._flush_at)
            except Exception:  # a bug here must not kill the thread and leave flushes hanging
                logger.exception("unexpected error in the span export thread")
                ok = False
            for request in requests:
                request.ok = ok
                request.done.set()
            if stopping:
                return

    def _export(self, count: int) -> bool:
        """Send the oldest ``count`` queued spans in batches of ``flush_at``; True if all were delivered."""
        ok = True
        queue = self._queue
        while count > 0:
            size = min(count, self._flush_at)
            batch: list[ReadableSpan] = []
            for _ in range(size):
                try:
                    entry = queue.popleft()
                except IndexError:
                    break
                try:
                    batch.append(self._prepare(entry))
                except Exception as error:
                    self._failed += 1
                    self._warn_once("prepare", "could not prepare a span for export: %r", error)
            count -= size
            if batch:
                ok = self._deliver(batch) and ok
        return ok

    def _deliver(self, spans: Sequence[ReadableSpan]) -> bool:
        try:
            body = encode_spans(spans).SerializeToString()
        except Exception as error:
            self._failed += len(spans)
            self._warn_once("encode", "could not encode spans: %r", error)
            return False
        if len(body) > self._max_batch_bytes:
            if len(spans) == 1:
                self._failed += 1
                self._warn_once("size", "a span is larger than %d bytes encoded; dropped", self._max_batch_bytes)
                return False
            middle = len(spans) // 2
            first = self._deliver(spans[:middle])
            return self._deliver(spans[middle:]) and first
        if self._transport.send(body, self._abort.wait) is Outcome.SENT:
            self._exported += len(spans)
            return True
        self._failed += len(spans)
        return False

    def _prepare(self, entry: _Entry) -> ReadableSpan:
        """The span as it should be exported: a copy when attributes or the parent change."""
        span, parent_entry, propagated = entry
        attributes = span.attributes or {}
        extra: dict[str, AttributeValue] = {}
        for key, value in self._stamps:
            if key not in attributes:
                extra[key] = value
        claim = None
        if propagated:
            for key, value in propagated.items():
                if key == TRACE_CLAIM:
                    claim = value
                elif key not in attributes:  # values set on the span itself win
                    extra[key] = value

        parent = span.parent
        export_parent = parent
        if parent is None:
            root = True
        else:
            ancestor = parent_entry
            for _ in range(_MAX_ANCESTRY):
                if ancestor is None or self._exportable(ancestor[0], log_errors=False):
                    break
                ancestor = ancestor[1]
            if ancestor is None:
                # No exported ancestor in this process. Unless an upstream service claimed the
                # trace (baggage), this span is where the application's part of the trace starts.
                root = claim != format(span.context.trace_id, "032x")
            else:
                root = False
                if ancestor is not parent_entry:
                    # Parents in between are filtered out: hang the span under its nearest exported
                    # ancestor instead of leaving a parent id that will never arrive.
                    export_parent = ancestor[0].context
        if root:
            extra[attr.IS_APP_ROOT] = True
            extra[attr.AS_ROOT] = True

        masker = self._masker
        events = span.events
        if masker is not None:
            masked_events = any(masker.touches(event.attributes) for event in events)
            if not (extra or export_parent is not parent or masker.touches(attributes) or masked_events):
                return span
            merged = masker.attributes({**attributes, **extra})
            if masked_events:
                events = tuple(
                    Event(event.name, masker.attributes(event.attributes or {}), event.timestamp)
                    if masker.touches(event.attributes)
                    else event
                    for event in events
                )
        elif not extra and export_parent is parent:
            return span
        else:
            merged = {**attributes, **extra}
        return _copy(span, merged, events, export_parent)


def _copy(
    span: ReadableSpan, attributes: dict[str, AttributeValue], events: Sequence[Event], parent: SpanContext | None
) -> ReadableSpan:
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _shutdown_at_exit(ref: Callable[[], LangfuseSpanProcessor | None]) -> None:
    processor = ref()
    if processor is not None:
        processor.shutdown()


def _reinit_in_child(ref: Callable[[], LangfuseSpanProcessor | None]) -> None:
    processor = ref()
    if processor is not None:
        processor._after_fork_in_child()
