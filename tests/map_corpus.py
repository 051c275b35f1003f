"""Map a corpus of OTLP requests and print the rows: ``python -m tests.map_corpus CORPUS``.

The corpus is a JSON list of ``[signal, hex of the serialized request]``. The output is the
``repr`` of every mapped row in order (NaN-safe, order-sensitive), so two runs compare as text.
Run as a separate process so that the caller decides, by ``SPANFUSE_NATIVE``, whether the
compiled mapper or the plain source maps it (see tests/test_native_mapper.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import collector  # noqa: F401  (loads the compiled mapper when one matches the sources)
from collector import native
from collector.ingest import LOGS
from collector.wire import TraceRequest
from semconv.mapping import map_logs_request, map_traces_request


def main(path: str) -> None:
    print(f"build: {native.active_build()}")
    for signal, payload in json.loads(Path(path).read_text()):
        data = bytes.fromhex(payload)
        if signal == "traces":
            mapped = map_traces_request(TraceRequest.FromString(data))
            print(repr((mapped.observations, mapped.traces, mapped.warnings)))
        else:
            print(repr(map_logs_request(LOGS.request_type.FromString(data), received_ns=1)))


if __name__ == "__main__":
    main(sys.argv[1])
