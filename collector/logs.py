"""Structured logging: one line per event, ``time level logger message key=value …``.

Secrets never reach the log: nothing logs request headers or configuration values.
"""

from __future__ import annotations

import logging
import sys
import time


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created)) + f".{int(record.msecs):03d}Z"


def configure_logging(level: str = "INFO") -> None:
    """Send the ``spanfuse`` loggers to stderr in the one-line format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("spanfuse")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
