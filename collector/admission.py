"""Admission: a bound on the bytes of requests the receivers hold at once, across transports.

Every request body being received, decompressed, parsed and appended is in memory until it is
answered, so without a bound memory grows with the number of exporters sending at once (600
exporters of 0.8 MB requests took the collector past 800 MiB). A request is admitted while the
bytes held stay within the limit; past it, it is refused at once with a retryable answer (HTTP
429 with ``Retry-After``, gRPC RESOURCE_EXHAUSTED with ``RetryInfo``), and what it sent is dropped.
An HTTP body is held as it arrives, so a client sending slowly holds only what it has sent.
One request alone is always admitted, so a body at the size limit is never refused for good.
Bodies count decompressed; an OTLP/JSON body counts nine times, about what it takes once decoded
(protobuf's decoded form is about twice its bytes, in C; a JSON body's is mostly Python objects).
The OpenTelemetry Collector's OTel-Arrow receiver bounds its requests the same way
(``admission.request_limit_mib``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Busy(Exception):
    """The receivers hold as many request bytes as they may; the client should retry later."""


class RequestBudget:
    """The bytes all receivers' requests in flight may hold together. Thread-safe."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        """Bytes held by requests being handled now."""
        return self._held

    @contextmanager
    def hold(self) -> Iterator[Hold]:
        """A request's share of the budget, given back when the block ends."""
        share = Hold(self)
        try:
            yield share
        finally:
            share.release()

    def _take(self, share: Hold, size: int) -> None:
        with self._lock:
            if self._held != share.size and self._held + size > self.limit_bytes:
                raise Busy(
                    f"the collector holds {self._held >> 20} MiB of requests in flight, its limit "
                    f"{self.limit_bytes >> 20} MiB; retry later"
                )
            self._held += size
        share.size += size

    def _give(self, size: int) -> None:
        with self._lock:
            self._held -= size


class Hold:
    """What one request holds of a :class:`RequestBudget`."""

    def __init__(self, budget: RequestBudget) -> None:
        self.budget = budget
        self.size = 0

    def take(self, size: int) -> None:
        """Hold ``size`` bytes more; raises :class:`Busy` when the budget cannot spare them."""
        if size > 0:
            self.budget._take(self, size)

    def release(self) -> None:
        """Give back everything held (idempotent)."""
        size, self.size = self.size, 0
        if size:
            self.budget._give(size)
