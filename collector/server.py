"""Wire the collector from a :class:`~collector.config.Config` and run it.

Start order: data directory and WAL recovery, the Parquet pipeline, the forwarders (WAL
consumers of their own; offsets of forwarders no longer configured are dropped), maintenance,
then the listeners. Stop order is the reverse of what matters for durability: listeners first
(their in-flight requests still reach the WAL), then the forwarders are told to stop (what they
have not committed is sent again next start), the WAL, the pipeline's final flush.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from collector import native
from collector.admission import RequestBudget
from collector.api.common import ApiContext
from collector.app import create_app
from collector.auth import Authenticator
from collector.config import MIB, Config
from collector.forwarder import WalForwarder, build_forwarders, drop_stale_consumers
from collector.http_server import HttpServer
from collector.ingest import Ingestor
from collector.pipeline import ParquetPipeline
from collector.receivers.grpc import OtlpGrpcReceiver
from collector.receivers.http import OtlpHttpHandler
from collector.telemetry import Telemetry
from storage.compaction import CompactionStats
from storage.fsutil import remove_stray_temporaries
from storage.lease import Lease, lease_data_directory
from storage.query import TableQuery
from storage.spill import reclaim_spill_directories
from storage.wal import WriteAheadLog

log = logging.getLogger("spanfuse.server")

# A compaction pass starts no merge after this long (a stop ends it at once).
COMPACTION_PASS_SECONDS = 10.0
# A pass that ran out of time leaving a partition more small files than this is losing ground.
COMPACTION_BEHIND_FILES = 64


def compaction_pause(stats: CompactionStats, interval: float, pass_seconds: float) -> float:
    """Seconds until the next compaction pass, after one that took ``pass_seconds``.

    A pass that finished waits ``interval``. One that ran out of time is followed after a pause as
    long as itself: compaction then takes half of one worker, and batches keep the rest. When even
    that leaves small files piling up (sustained load beyond what both can do), passes follow each
    other without a pause: a whole worker compacts, the WAL's bound slows ingest down to what is
    both written and compacted, and the file count (which every query pays for) stays bounded.
    """
    if not stats.unfinished:
        return interval
    if stats.most_files_waiting > COMPACTION_BEHIND_FILES:
        return 0.0
    return min(interval, pass_seconds)


def spanfuse_version() -> str:
    try:
        return version("spanfuse")
    except PackageNotFoundError:
        return "0.0.0"


class Server:
    """One collector process: receivers, WAL, Parquet pipeline, maintenance, query layer."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.telemetry = Telemetry()
        wal_settings = config.storage.wal
        self.wal = WriteAheadLog(
            self.data_dir / "wal",
            segment_bytes=wal_settings.segment_size_mib * MIB,
            max_backlog_bytes=wal_settings.max_backlog_mib * MIB,
            fsync=wal_settings.fsync,
        )
        self.auth = Authenticator(config)
        admission = config.receivers.otlp.admission
        self.ingestor = Ingestor(self.wal, self.telemetry, RequestBudget(admission.request_limit_mib * MIB))
        self.query = TableQuery(self.data_dir)
        self.pipeline: ParquetPipeline | None = None
        self.forwarders: list[WalForwarder] = []
        self.grpc: OtlpGrpcReceiver | None = None
        self.http: HttpServer | None = None
        self._maintenance: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = False
        self._lease: Lease | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Raises :class:`OSError` if it cannot: another collector on the data directory, a port in use."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # First: what follows removes and rewrites files only a collector of its own may touch.
        self._lease = lease_data_directory(self.data_dir)
        for path in remove_stray_temporaries(self.data_dir / "tables"):
            log.warning("removed unfinished file path=%s", path.relative_to(self.data_dir))
        reclaim_spill_directories(self.data_dir)
        recovery = self.wal.open()
        log.info(
            "wal opened dir=%s segments=%d truncated_bytes=%d damaged_regions=%d",
            self.wal.directory,
            recovery.segments,
            recovery.truncated_bytes,
            len(recovery.damaged_regions),
        )
        exporter = self.config.exporters.parquet
        self.pipeline = ParquetPipeline(
            self.wal,
            self.data_dir,
            self.telemetry,
            pricing=self.config.pricing,
            workers=exporter.workers,
            flush_interval=exporter.flush_interval,
        )
        self.pipeline.start()
        self.forwarders = build_forwarders(self.config, self.wal, self.telemetry, f"spanfuse/{spanfuse_version()}")
        drop_stale_consumers(self.wal, self.forwarders)
        for forwarder in self.forwarders:
            forwarder.start()
            log.info(
                "forwarding exporter=%s endpoint=%s signals=%s projects=%s",
                forwarder.exporter,
                forwarder.settings.endpoint,
                ",".join(sorted(s.name for s in forwarder.specs)),
                ",".join(forwarder.settings.projects) if forwarder.settings.projects is not None else "*",
            )
        self._register_gauges()
        self._maintenance = threading.Thread(target=self._maintain, name="maintenance", daemon=True)
        self._maintenance.start()
        self._start_listeners()
        log.info("data directory path=%s", self.data_dir.resolve())
        build = native.active_build()
        log.info("mapper %s", f"compiled build={build}" if build else "plain Python (no build matches the sources)")

    def _start_listeners(self) -> None:
        protocols = self.config.receivers.otlp.protocols
        if protocols.grpc is not None:
            self.grpc = OtlpGrpcReceiver(
                protocols.grpc.endpoint,
                self.ingestor,
                self.auth,
                self.telemetry,
                max_message_bytes=protocols.grpc.max_recv_msg_size_mib * MIB,
            )
            self.grpc.start()
            log.info("listening transport=grpc endpoint=%s port=%d", protocols.grpc.endpoint, self.grpc.port)
        if protocols.http is not None:
            handler = OtlpHttpHandler(
                self.ingestor, self.auth, self.telemetry, max_body_bytes=protocols.http.max_request_body_size
            )
            api = ApiContext(self.config, self.auth, self.query, self.ingestor, spanfuse_version())
            app = create_app(handler, self.telemetry, api)
            self.http = HttpServer(protocols.http.endpoint, app)
            self.http.start()
            log.info("listening transport=http endpoint=%s port=%d", protocols.http.endpoint, self.http.port)

    def stop(self, drain: bool = True) -> None:
        """Stop listening, finish in-flight requests, flush, commit. Safe to call twice.

        ``drain``: first write what the WAL holds (for at most the pipeline's ``drain_seconds``);
        without it, the WAL keeps it for the next collector on this data directory."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        log.info("shutting down")
        if self.http is not None:
            self.http.stop()
        if self.grpc is not None:
            self.grpc.stop()
        for forwarder in self.forwarders:
            forwarder.request_stop()  # all at once: a backoff wait ends now, an RPC in flight is cancelled
        self.wal.close()
        if self.pipeline is not None:
            self.pipeline.stop(drain)
        for forwarder in self.forwarders:
            forwarder.join()
        if self._maintenance is not None:
            self._maintenance.join(timeout=60)
        self.query.close()
        if self._lease is not None:
            self._lease.release()
        log.info("stopped")

    # ------------------------------------------------------------------ internals
    def _maintain(self) -> None:
        self._warm_trace_index()
        exporter = self.config.exporters.parquet
        wait = exporter.compaction_interval
        while not self._stopping.wait(wait):
            started = time.monotonic()
            try:
                assert self.pipeline is not None
                stats = self.pipeline.compact(exporter.retention_days, COMPACTION_PASS_SECONDS)
            except Exception as exc:
                if isinstance(exc, BrokenProcessPool):  # a worker was killed (OOM killer, say): no traceback
                    log.warning("compaction pass ended: a worker process died; new workers start")
                else:
                    log.exception("compaction failed")
                wait = exporter.compaction_interval
                continue
            wait = compaction_pause(stats, exporter.compaction_interval, time.monotonic() - started)
            for table, seconds in stats.durations:
                self.telemetry.compactions.labels(table).inc()
                self.telemetry.compaction_seconds.observe(seconds)
            self.telemetry.partitions_expired.inc(stats.partitions_deleted)

    def _warm_trace_index(self) -> None:
        """Read the trace indexes of every project now, so that the first lookups by id and trace
        counts after a start are as fast as the rest (seconds per million traces, in the background).
        Logs ``trace indexes read`` when done: until then lookups by id may be slower."""
        started = time.monotonic()
        for project in self.config.projects:
            if self._stopping.is_set():
                return
            try:
                self.query.read_trace_index(project.id)
            except Exception:
                log.exception("reading the trace index failed project=%s", project.id)
        log.info("trace indexes read projects=%d seconds=%.1f", len(self.config.projects), time.monotonic() - started)

    def _register_gauges(self) -> None:
        wal, t = self.wal, self.telemetry
        t.gauge("spanfuse_wal_size_bytes", "Bytes of WAL on disk.", lambda: {(): wal.size_bytes()})
        t.gauge(
            "spanfuse_wal_backlog_bytes",
            "WAL bytes not yet consumed by every consumer.",
            lambda: {(): wal.backlog_bytes()},
        )
        budget = self.ingestor.budget
        t.gauge(
            "spanfuse_receiver_request_bytes",
            "Bytes of requests the receivers hold now (received, not yet answered).",
            lambda: {(): budget.held_bytes},
        )
        t.gauge(
            "spanfuse_receiver_request_limit_bytes",
            "Request bytes held at which receivers answer 429 / RESOURCE_EXHAUSTED.",
            lambda: {(): budget.limit_bytes},
        )
        t.gauge(
            "spanfuse_wal_backlog_limit_bytes",
            "Backlog at which ingest answers 429.",
            lambda: {(): wal.max_backlog_bytes},
        )
        t.gauge(
            "spanfuse_consumer_lag_bytes",
            "WAL bytes a consumer has not committed.",
            lambda: {(name,): wal.durable_offset - offset for name, offset in wal.committed().items()},
            labels=("consumer",),
        )
        t.gauge(
            "spanfuse_forwarder_lag_bytes",
            "WAL bytes a forwarder has not yet delivered (or skipped).",
            lambda: {(f.exporter,): f.lag_bytes() for f in self.forwarders},
            labels=("exporter",),
        )
        t.counter("spanfuse_wal_fsyncs", "WAL group commits.", lambda: {(): wal.fsyncs})
        t.counter("spanfuse_wal_fsync_seconds", "Time spent in WAL fsync.", lambda: {(): wal.fsync_seconds})

    @property
    def grpc_port(self) -> int:
        return self.grpc.port if self.grpc else 0

    @property
    def http_port(self) -> int:
        return self.http.port if self.http else 0
