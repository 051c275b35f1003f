"""The collector's own metrics, served as Prometheus text at ``GET /metrics``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # the *_created series only add noise to a scrape

_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


Reader = Callable[[], dict[tuple[str, ...], float]]


class _ReadAtScrape(Collector):
    """Values read at scrape time from callables (WAL size, backlog, consumer lag, fsyncs)."""

    def __init__(self) -> None:
        self.sources: list[tuple[type, str, str, tuple[str, ...], Reader]] = []

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        for family_type, name, doc, labels, read in self.sources:
            family = family_type(name, doc, labels=list(labels))
            for label_values, value in read().items():
                family.add_metric(list(label_values), value)
            yield family


class Telemetry:
    """All counters of one server instance, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        labels = ("project", "transport", "signal")
        self.received = Counter("spanfuse_received_items", "Spans or log records received.", labels, registry=r)
        self.accepted = Counter(
            "spanfuse_accepted_items", "Spans or log records acknowledged (durable in the WAL).", labels, registry=r
        )
        self.rejected = Counter(
            "spanfuse_rejected_items", "Spans or log records refused, by reason.", (*labels, "reason"), registry=r
        )
        self.requests = Counter(
            "spanfuse_requests", "Export requests answered, by outcome.", ("transport", "signal", "outcome"), registry=r
        )
        self.consumed = Counter(
            "spanfuse_consumer_records", "WAL records processed by a consumer.", ("consumer",), registry=r
        )
        self.consumer_errors = Counter(
            "spanfuse_consumer_errors", "Failures inside a WAL consumer, by kind.", ("consumer", "kind"), registry=r
        )
        self.mapping_warnings = Counter(
            "spanfuse_mapping_warnings", "Spans kept with a mapping problem.", ("project",), registry=r
        )
        self.rows_written = Counter("spanfuse_rows_written", "Rows written to Parquet.", ("table",), registry=r)
        self.flushes = Counter("spanfuse_flushes", "Parquet flushes.", registry=r)
        self.flush_seconds = Histogram(
            "spanfuse_flush_duration_seconds", "Time to publish one flush.", buckets=_DURATION_BUCKETS, registry=r
        )
        self.batch_cpu_seconds = Counter(
            "spanfuse_batch_cpu_seconds", "CPU time spent mapping and writing batches.", registry=r
        )
        self.compactions = Counter("spanfuse_compactions", "Partitions compacted.", ("table",), registry=r)
        self.compaction_seconds = Histogram(
            "spanfuse_compaction_duration_seconds",
            "Time to compact one partition.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.partitions_expired = Counter(
            "spanfuse_retention_partitions_deleted", "Partitions deleted by retention.", registry=r
        )
        self.forward_sent_records = Counter(
            "spanfuse_forwarder_sent_records", "WAL records delivered downstream.", ("exporter",), registry=r
        )
        self.forward_sent_items = Counter(
            "spanfuse_forwarder_sent_items",
            "Spans or log records a forwarder delivered downstream.",
            ("exporter", "signal"),
            registry=r,
        )
        self.forward_retries = Counter(
            "spanfuse_forwarder_retries",
            "Failed deliveries a forwarder will retry, by reason (http_503, grpc_unavailable, connect_error…).",
            ("exporter", "reason"),
            registry=r,
        )
        self.forward_rejected = Counter(
            "spanfuse_forwarder_rejected_items",
            "Spans or log records the downstream refused for good (skipped, not retried), by reason.",
            ("exporter", "signal", "reason"),
            registry=r,
        )
        self._scraped = _ReadAtScrape()
        r.register(self._scraped)

    def gauge(self, name: str, doc: str, read: Reader, labels: tuple[str, ...] = ()) -> None:
        """Expose ``read()`` (label values -> value) as a gauge evaluated at scrape time."""
        self._scraped.sources.append((GaugeMetricFamily, name, doc, labels, read))

    def counter(self, name: str, doc: str, read: Reader, labels: tuple[str, ...] = ()) -> None:
        """Expose a monotonic value kept elsewhere (e.g. by the WAL) as a counter."""
        self._scraped.sources.append((CounterMetricFamily, name, doc, labels, read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
