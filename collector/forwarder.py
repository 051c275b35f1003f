"""Forwarders: WAL consumers that deliver what was received to other OTLP or Langfuse backends.

Each configured ``otlp/<name>``, ``otlphttp/<name>`` or ``langfuse/<name>`` exporter is one
:class:`WalForwarder`: a thread with its own committed WAL offset (consumer
``forward-<type>-<name>``). It reads the stored OTLP requests of the signals and projects it
forwards, sends them (several records merged into one request: concatenated protobuf messages
are one message whose repeated fields are joined) and commits only after the downstream
accepted. A downstream outage therefore costs lag, never data, and never slows ingest or the
Parquet pipeline until the WAL backlog bound answers 429. Transient failures are retried forever
with capped exponential backoff and jitter; permanent rejections are counted, logged and skipped.
After a stop or a crash the uncommitted tail is sent again (at least once; Spanfuse downstreams
deduplicate on read).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterable

from collector.config import Config, Forwarder, LangfuseForwarder, OtlpGrpcForwarder, OtlpHttpForwarder
from collector.ingest import LOGS, TRACES, SignalSpec
from collector.telemetry import Telemetry
from exporters.forward.base import Backoff, Outcome, Result, Sender, TlsOptions
from storage.wal import WalRecord, WriteAheadLog

log = logging.getLogger("spanfuse.forwarder")

CONSUMER_PREFIX = "forward-"
SPECS: dict[int, SignalSpec] = {TRACES.signal: TRACES, LOGS.signal: LOGS}
_READ_BYTES = 4 * 1024 * 1024
_BATCH_BYTES = 1024 * 1024  # per request: well under the 4 MiB a gRPC receiver accepts by default
_BATCH_RECORDS = 256  # bounds the one-by-one resend that isolates a rejected record
_LOG_INTERVAL = 30.0  # repeated failures are logged at most this often (with a count of the rest)
_ERROR_PAUSE = 1.0


def consumer_name(exporter: str) -> str:
    """The WAL consumer of the exporter keyed ``exporter`` (``otlp/b`` → ``forward-otlp-b``)."""
    return CONSUMER_PREFIX + exporter.replace("/", "-")


def build_sender(settings: Forwarder, user_agent: str = "spanfuse") -> Sender:
    """The wire client for one forwarder's settings."""
    tls = TlsOptions(
        insecure=settings.tls.insecure,
        insecure_skip_verify=settings.tls.insecure_skip_verify,
        ca_file=str(settings.tls.ca_file) if settings.tls.ca_file else None,
        cert_file=str(settings.tls.cert_file) if settings.tls.cert_file else None,
        key_file=str(settings.tls.key_file) if settings.tls.key_file else None,
    )
    headers = dict(settings.headers)
    common = {"compression": settings.compression, "timeout": settings.timeout, "tls": tls, "user_agent": user_agent}
    if isinstance(settings, OtlpGrpcForwarder):
        from exporters.forward.otlp_grpc import OtlpGrpcSender

        return OtlpGrpcSender(settings.target, plaintext=settings.plaintext, headers=headers, **common)
    from exporters.forward.otlp_http import OtlpHttpSender

    if isinstance(settings, LangfuseForwarder):
        token = base64.b64encode(f"{settings.public_key}:{settings.secret_key}".encode()).decode()
        headers = {**headers, "authorization": f"Basic {token}", "x-langfuse-public-key": settings.public_key}
    assert isinstance(settings, OtlpHttpForwarder | LangfuseForwarder)
    urls = {signal: settings.url_for(signal) for signal in settings.signals}
    return OtlpHttpSender(urls, headers=headers, **common)


def count_items(spec: SignalSpec, payload: bytes) -> int:
    """Spans or log records in a serialized export request."""
    message = spec.request_type.FromString(payload)
    outer, middle, inner = spec.path
    return sum(len(getattr(scope, inner)) for group in getattr(message, outer) for scope in getattr(group, middle))


class _Quiet:
    """Logs a repeated message at most every ``interval`` seconds, saying how many were held back."""

    def __init__(self, interval: float = _LOG_INTERVAL) -> None:
        self.interval = interval
        self._last = float("-inf")
        self._held = 0

    def log(self, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._held += 1
            return
        if self._held:
            message += " (%d similar messages in the last %.0fs)"
            args = (*args, self._held, now - self._last)
        self._last, self._held = now, 0
        log.log(level, message, *args)


class WalForwarder:
    """One forwarding exporter: reads the WAL from its committed offset and delivers downstream."""

    def __init__(
        self,
        exporter: str,
        settings: Forwarder,
        signals: Iterable[str],
        wal: WriteAheadLog,
        telemetry: Telemetry,
        *,
        sender: Sender | None = None,
        user_agent: str = "spanfuse",
    ) -> None:
        self.exporter = exporter
        self.settings = settings
        self.consumer = consumer_name(exporter)
        self.specs = [spec for spec in (TRACES, LOGS) if spec.name in set(signals)]
        self.signals = {spec.signal for spec in self.specs}
        self.projects = frozenset(settings.projects) if settings.projects is not None else None
        self.wal = wal
        self.telemetry = telemetry
        self.sender = sender if sender is not None else build_sender(settings, user_agent)
        self.reader = wal.consumer(self.consumer, new_at_end=True)  # a new forwarder sends what arrives from now on
        retry = settings.retry_on_failure
        self.backoff = Backoff(retry.initial_interval, retry.max_interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"forward-{exporter}", daemon=True)
        self._failing_since: float | None = None
        self._retry_log = _Quiet()
        self._reject_log = _Quiet(interval=5.0)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Stop after the current attempt; a backoff wait or an RPC in progress is cut short."""
        self._stop.set()
        self.sender.interrupt()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread (an HTTP request in flight may take up to its timeout), then close."""
        self._thread.join(timeout if timeout is not None else self.settings.timeout + 5)
        if self._thread.is_alive():
            log.warning("forwarder did not stop in time exporter=%s", self.exporter)
        self.sender.close()

    def stop(self) -> None:
        self.request_stop()
        self.join()

    def lag_bytes(self) -> int:
        """WAL bytes not yet committed by this forwarder (delivered, skipped or filtered out)."""
        committed = self.wal.committed().get(self.consumer, self.reader.position)
        return max(0, self.wal.durable_offset - committed)

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.wal.wait_for_data(self.reader.position, 0.25):
                    continue
                records = self.reader.read(_READ_BYTES)
                if self.reader.skipped_bytes:
                    self.telemetry.consumer_errors.labels(self.consumer, "damaged_bytes").inc(self.reader.skipped_bytes)
                    self.reader.skipped_bytes = 0
                self._forward(records)
            except Exception:  # a bug must not end forwarding for good: read again from the commit point
                log.exception("forwarder failed exporter=%s; retrying from its committed offset", self.exporter)
                self.telemetry.consumer_errors.labels(self.consumer, "internal").inc()
                self.reader.position = self.wal.committed().get(self.consumer, self.reader.position)
                self._stop.wait(_ERROR_PAUSE)

    def _wanted(self, record: WalRecord) -> bool:
        return record.signal in self.signals and (self.projects is None or record.project_id in self.projects)

    def _forward(self, records: list[WalRecord]) -> None:
        """Deliver the wanted records in batches of one signal; commit after each delivered batch."""
        batch: list[WalRecord] = []
        size = 0
        for record in records:
            if not self._wanted(record):
                continue
            full = size + len(record.payload) > _BATCH_BYTES or len(batch) >= _BATCH_RECORDS
            if batch and (record.signal != batch[0].signal or full):
                if not self._deliver(batch):
                    return
                self._commit(batch[-1].next_offset)
                batch, size = [], 0
            batch.append(record)
            size += len(record.payload)
        if batch and not self._deliver(batch):
            return
        self.telemetry.consumed.labels(self.consumer).inc(len(records))
        self._commit(self.reader.position)  # past the filtered-out records too

    def _commit(self, offset: int) -> None:
        if offset != self.wal.committed().get(self.consumer):
            self.reader.commit(offset)

    def _deliver(self, batch: list[WalRecord]) -> bool:
        """Send ``batch`` until the downstream accepts or refuses it for good; False when stopping."""
        spec = SPECS[batch[0].signal]
        payload = batch[0].payload if len(batch) == 1 else b"".join(r.payload for r in batch)
        while not self._stop.is_set():
            result = self.sender.send(spec.name, payload)
            if result.outcome is Outcome.SENT:
                self._delivered(spec, batch, payload, result)
                return True
            if result.outcome is Outcome.REJECTED:
                if result.payload_problem and len(batch) > 1:
                    # One bad record must not take the good ones with it: find it by sending them one by one.
                    return all(self._deliver([record]) for record in batch)
                self._rejected(spec, batch, payload, result)
                return True
            if not self.settings.retry_on_failure.enabled:
                self._rejected(spec, batch, payload, result, reason="retry_disabled")
                return True
            self._retrying(result)
        return False

    # ------------------------------------------------------------------ accounting
    def _delivered(self, spec: SignalSpec, batch: list[WalRecord], payload: bytes, result: Result) -> None:
        t = self.telemetry
        items = count_items(spec, payload)
        t.forward_sent_records.labels(self.exporter).inc(len(batch))
        t.forward_sent_items.labels(self.exporter, spec.name).inc(max(0, items - result.rejected_items))
        if result.rejected_items:
            t.forward_rejected.labels(self.exporter, spec.name, "partial_success").inc(result.rejected_items)
            self._reject_log.log(
                logging.WARNING,
                "downstream dropped part of a request exporter=%s %s=%d message=%s",
                self.exporter,
                spec.name,
                result.rejected_items,
                result.message,
            )
        if self._failing_since is not None:
            log.info(
                "forwarder delivering again exporter=%s after_seconds=%.1f failed_attempts=%d",
                self.exporter,
                time.monotonic() - self._failing_since,
                self.backoff.attempts,
            )
            self._failing_since = None
        self.backoff.reset()

    def _rejected(
        self, spec: SignalSpec, batch: list[WalRecord], payload: bytes, result: Result, reason: str | None = None
    ) -> None:
        items = count_items(spec, payload)
        self.telemetry.forward_rejected.labels(self.exporter, spec.name, reason or result.reason).inc(items)
        # Bad credentials or a wrong path reject everything: say so loudly, but not once per request.
        self._reject_log.log(
            logging.ERROR,
            "downstream refused data for good, skipped exporter=%s reason=%s records=%d %s=%d message=%s",
            self.exporter,
            reason or result.reason,
            len(batch),
            spec.name,
            items,
            result.message,
        )
        self.backoff.reset()

    def _retrying(self, result: Result) -> None:
        self.telemetry.forward_retries.labels(self.exporter, result.reason).inc()
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        delay = self.backoff.next_delay(result.retry_after)
        self._retry_log.log(
            logging.WARNING,
            "downstream unavailable, retrying exporter=%s reason=%s message=%s lag_bytes=%d next_attempt_in=%.2fs",
            self.exporter,
            result.reason,
            result.message,
            self.lag_bytes(),
            delay,
        )
        self._stop.wait(delay)


def build_forwarders(config: Config, wal: WriteAheadLog, telemetry: Telemetry, user_agent: str) -> list[WalForwarder]:
    """A forwarder for every exporter listed in a pipeline, forwarding that pipeline's signals."""
    forwarders = []
    for exporter, settings in config.exporters.forwarders.items():
        signals = [signal for signal, p in config.service.pipelines.items() if exporter in p.exporters]
        if not signals:
            log.warning("exporter is configured but in no pipeline, not started exporter=%s", exporter)
            continue
        forwarders.append(WalForwarder(exporter, settings, signals, wal, telemetry, user_agent=user_agent))
    return forwarders


def drop_stale_consumers(wal: WriteAheadLog, forwarders: Iterable[WalForwarder]) -> list[str]:
    """Forget the WAL offsets of forwarders no longer configured, so they stop pinning segments."""
    active = {f.consumer for f in forwarders}
    dropped = []
    for name in wal.committed():
        if name.startswith(CONSUMER_PREFIX) and name not in active:
            wal.drop_consumer(name)
            dropped.append(name)
            log.warning("dropped the WAL offset of a forwarder no longer configured consumer=%s", name)
    return dropped
