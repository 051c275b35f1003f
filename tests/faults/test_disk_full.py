"""Disk full: ingest answers retryable errors, nothing stored is harmed, and service resumes by itself.

Two ways to fill the disk: a real 16 MiB tmpfs as the data directory, filled with a ballast file
(needs root and ``mount``; skipped otherwise), and injected ``ENOSPC`` from the WAL's writes and
from Parquet / offset publishing (always runs). The same scenario runs on both:

1. spans acknowledged while there is room are stored;
2. the disk fills while acknowledged records wait in the WAL: the Parquet consumer's writes fail,
   its WAL offset does not move, no half-written part file is visible, earlier spans stay readable;
3. new exports are refused with retryable answers (HTTP 503 + ``Retry-After``, gRPC UNAVAILABLE);
4. space returns: exports are accepted again and everything acknowledged lands, without a restart;
5. after a restart the WAL recovers clean and every acknowledged span reads exactly once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import storage.fsutil
import storage.parquet_writer
import storage.wal
from collector.server import Server
from storage.parquet_writer import parquet_damage
from tests.conftest import wait_until
from tests.faults.helpers import (
    RETRYABLE_GRPC,
    RETRYABLE_HTTP,
    Ledger,
    Outcome,
    check_exactly_once,
    numbered_spans,
    record,
    send,
    stored,
)

SPANS_PER_REQUEST = 20
TRANSPORTS = ("http", "grpc")


class TmpfsDisk:
    """A real small filesystem; ``fill`` writes a ballast file until the kernel says ENOSPC."""

    def __init__(self, mountpoint: Path) -> None:
        self.mountpoint = mountpoint
        self.ballast = mountpoint / "ballast"

    def fill(self) -> None:
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):  # down to the last byte
                for _ in range(64 * 1024):  # bounded: 16 MiB / chunk at most, far fewer in practice
                    try:
                        os.write(fd, b"\0" * chunk)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.ballast.unlink()


class InjectedDisk:
    """``ENOSPC`` from the WAL's writes, from fsync when publishing files, and mid-Parquet write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        real_os = os
        disk = self

        def write(fd: int, data: Any) -> int:
            if disk.full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_os.write(fd, data)

        def writev(fd: int, buffers: Any) -> int:
            if disk.full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_os.writev(fd, buffers)

        proxy = SimpleNamespace(**{name: getattr(real_os, name) for name in dir(real_os) if not name.startswith("__")})
        proxy.write, proxy.writev = write, writev
        monkeypatch.setattr(storage.wal, "os", proxy)

        real_fsync_file = storage.fsutil.fsync_file

        def fsync_file(path: Any) -> None:
            if disk.full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync_file(path)

        monkeypatch.setattr(storage.fsutil, "fsync_file", fsync_file)

        real_write_parquet = storage.parquet_writer.write_parquet

        def write_parquet(table: Any, path: Path, spec: Any, **kwargs: Any) -> None:
            real_write_parquet(table, path, spec, **kwargs)
            if disk.full:  # the device filled up half way through the file
                with open(path, "r+b") as fh:
                    fh.truncate(path.stat().st_size // 2)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(storage.parquet_writer, "write_parquet", write_parquet)

    def fill(self) -> None:
        self.full = True

    def free(self) -> None:
        self.full = False


@contextlib.contextmanager
def _mounted_tmpfs(mountpoint: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``mountpoint`` for the block (the test is skipped where mounting is not permitted)."""
    mountpoint.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)]
    done = subprocess.run(mount, capture_output=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=30)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for the test."""
    with _mounted_tmpfs(tmp_path / "fs", "size=16m") as mountpoint:
        yield mountpoint


def _batch_failures(server: Server) -> float:
    return server.telemetry.consumer_errors.labels("parquet", "batch_failed")._value.get()


def _visible_files_are_whole(data_dir: Path) -> None:
    tables = data_dir / "tables"
    assert not list(tables.rglob("*.tmp")), "a temporary file was left behind"
    for path in tables.rglob("*.parquet"):
        assert parquet_damage(path) is None, f"half-written file visible to queries: {path}"


def _send_until_acked(server: Server, ledger: Ledger, prefix: str, requests: int, deadline: float) -> None:
    """Send ``requests`` requests, each retried (as OTLP clients do) until acknowledged or ``deadline``."""
    for number in range(requests):
        spans = numbered_spans(f"{prefix}{number}", SPANS_PER_REQUEST)
        transport = TRANSPORTS[number % 2]
        while True:
            outcome = send(server.http_port, server.grpc_port, spans, transport)
            record(ledger, spans, outcome)
            if outcome.ok:
                break
            assert time.monotonic() < deadline, f"not accepted again after space returned: {outcome}"
            time.sleep(0.2)


def _check_retryable(outcome: Outcome) -> None:
    """A refusal OTLP clients retry: HTTP 429/503 with ``Retry-After``, or a retryable gRPC code."""
    if outcome.status.isdigit():
        assert int(outcome.status) in RETRYABLE_HTTP and outcome.retry_after, outcome
    else:
        assert outcome.status in {code.name for code in RETRYABLE_GRPC}, outcome


def run_disk_full_scenario(start: Callable[[], Server], disk: TmpfsDisk | InjectedDisk) -> dict[str, int]:
    """The scenario of this module's docstring; returns its figures."""
    server = start()
    ledger = Ledger()
    # 1. Room on the disk.
    _send_until_acked(server, ledger, "before", 6, time.monotonic() + 30)
    before = dict(ledger.acked)
    wait_until(lambda: len(stored(server.query)) == len(before), timeout=30)

    # 2. Acknowledged records wait in the WAL while the disk fills; the Parquet consumer fails.
    server.pipeline.pause()
    _send_until_acked(server, ledger, "pending", 2, time.monotonic() + 30)
    committed = server.wal.committed()["parquet"]
    failures = _batch_failures(server)
    disk.fill()
    server.pipeline.resume()
    wait_until(lambda: _batch_failures(server) >= failures + 2, timeout=30)  # retried, failed again
    assert server.wal.committed()["parquet"] == committed, "offset committed for a batch that was not written"
    _visible_files_are_whole(server.data_dir)
    check_exactly_once([r for r in stored(server.query) if r["id"] in before], before)

    # 3. New exports are refused with answers OTLP clients retry.
    refused_before = len(ledger.refusals)
    for number in range(6):
        spans = numbered_spans(f"full{number}", SPANS_PER_REQUEST)
        record(ledger, spans, send(server.http_port, server.grpc_port, spans, TRANSPORTS[number % 2]))
    refusals = ledger.refusals[refused_before:]
    assert len(refusals) >= 4, f"a full disk still accepted {6 - len(refusals)} of 6 requests"
    for outcome in refusals:
        _check_retryable(outcome)
    _visible_files_are_whole(server.data_dir)
    assert len(stored(server.query)) >= len(before)  # reads still answer

    # 4. Space returns: accepted again, everything acknowledged lands, no restart.
    disk.free()
    _send_until_acked(server, ledger, "after", 6, time.monotonic() + 30)
    wait_until(lambda: len(stored(server.query)) == len(ledger.acked), timeout=30)
    lost, duplicated = check_exactly_once(stored(server.query), ledger.acked)
    wait_until(lambda: server.wal.committed()["parquet"] > committed, timeout=10)  # committed right after the files
    _visible_files_are_whole(server.data_dir)

    # 5. A restart finds a clean WAL and the same data.
    server.stop()
    again = start()
    assert again.wal.recovery.truncated_bytes == 0 and not again.wal.recovery.damaged_regions
    check_exactly_once(stored(again.query), ledger.acked)
    figures = {
        "acked_spans": len(ledger.acked),
        "refused_requests": len(ledger.refusals),
        "lost": lost,
        "duplicated": duplicated,
    }
    print(f"disk-full figures ({type(disk).__name__}): {figures}")
    return figures


def test_injected_enospc_is_retryable_harms_nothing_and_recovers(monkeypatch, start_server, tmp_path):
    disk = InjectedDisk(monkeypatch)
    data_dir = tmp_path / "data"
    run_disk_full_scenario(
        lambda: start_server(data_dir=data_dir, parquet={"flush_interval": "100ms", "workers": 0}), disk
    )


@pytest.mark.slow
def test_full_tmpfs_is_retryable_harms_nothing_and_recovers(tmpfs, start_server):
    disk = TmpfsDisk(tmpfs)
    data_dir = tmpfs / "data"
    run_disk_full_scenario(
        lambda: start_server(
            data_dir=data_dir,
            parquet={"flush_interval": "100ms", "workers": 1},
            storage={"wal": {"segment_size_mib": 1}},
        ),
        disk,
    )


@pytest.mark.slow
def test_a_collector_started_on_a_full_disk_refuses_retryably_and_resumes(tmpfs, start_server):
    # A restart (say by systemd) while the disk is full must come up and answer "retry later", not
    # fail to start and turn every client away with connection errors.
    disk = TmpfsDisk(tmpfs)
    disk.fill()
    server = start_server(data_dir=tmpfs / "data", parquet={"flush_interval": "100ms", "workers": 0})
    ledger = Ledger()
    spans = numbered_spans("full", SPANS_PER_REQUEST)
    for transport in TRANSPORTS:
        _check_retryable(send(server.http_port, server.grpc_port, spans, transport))
    disk.free()
    _send_until_acked(server, ledger, "after", 2, time.monotonic() + 30)
    wait_until(lambda: len(stored(server.query)) == len(ledger.acked), timeout=30)
    check_exactly_once(stored(server.query), ledger.acked)


@pytest.mark.slow
def test_a_collector_restarted_where_no_file_can_be_made_starts_and_serves(tmp_path, start_server, caplog):
    # Out of inodes (a disk full of small files): not even a directory can be made. The restarted
    # collector still starts, takes exports into its existing WAL segment, and spills queries (if
    # ever) to the system's temporary directory instead of under the data directory.
    with _mounted_tmpfs(tmp_path / "fs", "size=16m,nr_inodes=200") as mountpoint:
        data_dir = mountpoint / "data"
        settings = {"data_dir": data_dir, "parquet": {"flush_interval": "100ms", "workers": 0}}
        start_server(**settings).stop()
        for number in range(1000):  # bounded: 200 inodes in all
            try:
                (mountpoint / f"small-{number}").touch()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        with caplog.at_level(logging.WARNING):
            server = start_server(**settings)
        assert "no spill directory under the data directory" in caplog.text
        spans = numbered_spans("no-inodes", SPANS_PER_REQUEST)
        assert send(server.http_port, server.grpc_port, spans, "http").ok
        server.stop()
