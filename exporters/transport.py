"""OTLP/HTTP delivery of encoded batches: one POST, retried the way OTLP clients retry.

429, 502, 503 and 504 and connection errors are retried with exponential backoff and jitter,
honouring ``Retry-After`` (seconds); any other status is final. Waits go through a callable so
the processor can cut them short at shutdown.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable, Mapping

import requests

from exporters.compression import gzip_bytes

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # a server asking for longer is treated as asking for a minute


class Outcome(enum.Enum):
    SENT = "sent"
    REJECTED = "rejected"  # a final answer (e.g. 400, 401, 413): retrying cannot help
    GAVE_UP = "gave_up"  # retryable failures until attempts or time ran out


def join_url(base_url: str, path: str) -> str:
    """``base_url`` + ``path`` with exactly one slash between them (sub-path deployments keep their prefix)."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (HTTP dates are not worth parsing here), or None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class OtlpHttpTransport:
    """Posts serialized ``ExportTraceServiceRequest`` bodies to one endpoint."""

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        compression: str = "gzip",
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        max_backoff: float = 32.0,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.compression = compression
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.max_backoff = max_backoff
        self.headers = {"content-type": "application/x-protobuf", **headers}
        if compression == "gzip":
            self.headers["content-encoding"] = "gzip"
        self.retries = 0
        self._logged: set[object] = set()
        self._session = requests.Session()

    def reset_after_fork(self) -> None:
        """A new connection pool: sockets inherited from the parent process must not be shared."""
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def send(self, body: bytes, wait: Callable[[float], bool]) -> Outcome:
        """Deliver ``body``; ``wait(seconds)`` sleeps between attempts and returns True to give up early."""
        if self.compression == "gzip":
            body = gzip_bytes(body)
        for attempt in range(self.max_attempts):
            delay: float | None = None
            try:
                response = self._session.post(self.endpoint, data=body, headers=self.headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                self._log_once(type(error), "export to %s failed (%s); retrying", self.endpoint, error)
            except requests.RequestException as error:
                self._log_once(type(error), "export to %s failed: %s", self.endpoint, error)
                return Outcome.REJECTED
            else:
                status = response.status_code
                if 200 <= status < 400:
                    return Outcome.SENT
                if status not in RETRYABLE_STATUS:
                    self._log_once(
                        status, "export to %s rejected with HTTP %s: %s", self.endpoint, status, response.text[:200]
                    )
                    return Outcome.REJECTED
                delay = retry_after_seconds(response.headers.get("retry-after"))
            if attempt + 1 >= self.max_attempts:
                break
            if delay is None:
                delay = min(self.max_backoff, self.backoff_base * 2**attempt) * random.uniform(0.8, 1.2)
            self.retries += 1
            if wait(delay):
                break
        self._log_once("gave_up", "export to %s gave up after retries; the batch is dropped", self.endpoint)
        return Outcome.GAVE_UP

    def _log_once(self, key: object, message: str, *args: object) -> None:
        # One line per kind of failure, not one per batch: an outage must not flood the app's log.
        if key in self._logged:
            logger.debug(message, *args)
        else:
            self._logged.add(key)
            logger.warning(message + " (further occurrences are logged at DEBUG)", *args)
