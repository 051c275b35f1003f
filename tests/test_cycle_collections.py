"""A running collector is left out of the cycle collector's passes; a reload lets the old one go."""

from __future__ import annotations

import gc
import weakref

from collector.lifecycle import leave_out_of_cycle_collections
from collector.server import Server
from tests.conftest import make_config


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cycle collector frees it


def test_what_exists_is_left_out_and_garbage_is_collected_first(tmp_path):
    server = Server(make_config(tmp_path / "data"))
    server.start()
    garbage = _Node()
    gone = weakref.ref(garbage)
    del garbage
    try:
        frozen = leave_out_of_cycle_collections()
        assert frozen > 10_000  # the collector, its libraries' modules, protobuf's descriptors
        assert gone() is None  # collected before the freeze, not kept for ever
        made_after = _Node()
        later = weakref.ref(made_after)
        del made_after
        gc.collect()
        assert later() is None  # what comes after is collected as usual
        assert gc.get_freeze_count() > 10_000  # (frozen objects are still freed when unreferenced)
    finally:
        gc.unfreeze()
        server.stop()


def test_after_unfreezing_a_stopped_collector_is_freed(tmp_path):
    # What a reload does (collector.lifecycle.serve_until_stopped): unfreeze, replace the collector.
    # Before, FastAPI's process-wide cache of endpoints held the OTLP and /metrics endpoints, made
    # per application, and through them the whole collector: every reload kept the old one.
    server = Server(make_config(tmp_path / "data"))
    server.start()
    old = weakref.ref(server)
    try:
        leave_out_of_cycle_collections()
    finally:
        gc.unfreeze()
    server.stop()
    del server
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert old() is None
