"""Run by tests/fuzz/test_c_span_reader_sanitized.py in a process with AddressSanitizer and
UndefinedBehaviorSanitizer preloaded: random and damaged encoded spans through a build of
``semconv/_encoded_span.c`` instrumented by both, each compared with the Python reader.

    python tests/fuzz/sanitized_span_reader.py <instrumented .so> <seed> <seconds>

Prints ``inputs N`` and exits 0; a sanitizer report ends the process first (halt_on_error).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ["SPANFUSE_NATIVE"] = "0"  # the Python readers, to compare with

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from semconv import encoded_span, keyvalue


def _load(path: str) -> Any:  # the C module
    loader = importlib.machinery.ExtensionFileLoader("semconv._encoded_span", path)
    spec = importlib.util.spec_from_loader("semconv._encoded_span", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _value(rng: random.Random, depth: int = 0) -> AnyValue:
    kind = rng.randrange(8 if depth < 4 else 6)
    if kind == 0:
        text = "".join(chr(rng.choice((65, 0xE9, 0x4E2D, 0x1F600, 0))) for _ in range(rng.randrange(6)))
        return AnyValue(string_value=text)
    if kind == 1:
        return AnyValue(int_value=rng.randrange(-(2**63), 2**63))
    if kind == 2:
        return AnyValue(double_value=rng.random())
    if kind == 3:
        return AnyValue(bool_value=rng.random() < 0.5)
    if kind == 4:
        return AnyValue(bytes_value=rng.randbytes(rng.randrange(4)))
    if kind == 5:
        return AnyValue()
    if kind == 6:
        return AnyValue(array_value=ArrayValue(values=[_value(rng, depth + 1) for _ in range(rng.randrange(3))]))
    pairs = [KeyValue(key=str(rng.randrange(9)), value=_value(rng, depth + 1)) for _ in range(rng.randrange(3))]
    return AnyValue(kvlist_value=KeyValueList(values=pairs))


def _span(rng: random.Random) -> bytes:
    span = Span(
        trace_id=rng.randbytes(rng.choice((0, 16, 16, 3))),
        span_id=rng.randbytes(rng.choice((8, 8, 0))),
        name="n" * rng.randrange(4),
        kind=rng.randrange(7),
        start_time_unix_nano=rng.randrange(2**64),
        # Thousands of distinct keys: the C reader's key table fills and starts over.
        attributes=[KeyValue(key=f"k{rng.randrange(5000)}", value=_value(rng)) for _ in range(rng.randrange(6))],
    )
    if rng.random() < 0.3:
        span.status.CopyFrom(Status(code=rng.randrange(4), message="m"))
    if rng.random() < 0.2:
        span.events.add(name="e").attributes.add(key="a", value=_value(rng))
    if rng.random() < 0.2:
        span.links.add(trace_id=rng.randbytes(16), flags=1).attributes.add(key="b", value=_value(rng))
    data = bytearray(span.SerializeToString())
    for _ in range(rng.randrange(4)):  # damage
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    if data and rng.random() < 0.3:
        del data[rng.randrange(len(data)) :]
    return bytes(data)


def main() -> None:
    module = _load(sys.argv[1])
    rng = random.Random(int(sys.argv[2]))
    deadline = time.monotonic() + float(sys.argv[3])
    inputs = 0
    while time.monotonic() < deadline:
        data = _span(rng)
        mine = module.read_span(data, keyvalue.read_key_value)
        try:
            spec = encoded_span._read_span(data)
        except (IndexError, ValueError):
            spec = None
        assert (mine is None) == (spec is None), data
        if mine is not None and spec is not None:
            assert repr(mine[7]) == repr(spec.attributes) and mine[:4] == (
                spec.trace_id,
                spec.span_id,
                spec.parent_span_id,
                spec.name,
            ), data
        module.span_problems([data, data])
        inputs += 1
    print(f"inputs {inputs}")


if __name__ == "__main__":
    main()
