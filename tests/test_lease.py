"""Leases (``storage.lease``) and the spill directories they guard: one holder at a time, freed when
the holder ends however it ends, no false "free" on a file system without locks."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import subprocess
import sys

import pytest

from storage import lease as lease_module
from storage.lease import DirectoryInUse, is_held, lease_data_directory, take
from storage.spill import SpillDirectory, reclaim_spill_directories

_HOLD = """
import sys, time
from pathlib import Path
from storage.lease import lease_data_directory
lease = lease_data_directory(Path(sys.argv[1]))  # kept: a lease collected is released
print("held", flush=True)
time.sleep(120)
"""


def test_one_holder_at_a_time_and_free_once_released(tmp_path):
    first = take(tmp_path / "lease")
    assert first is not None
    assert is_held(tmp_path / "lease")
    with pytest.raises(BlockingIOError):
        take(tmp_path / "lease")  # another open file, even in this process
    first.release()
    assert not is_held(tmp_path / "lease")
    again = take(tmp_path / "lease")
    assert again is not None
    again.release()
    assert not is_held(tmp_path / "missing")


def test_a_killed_holder_frees_the_data_directory(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DirectoryInUse, match=f"in use by another collector \\(pid {holder.pid}\\)"):
            lease_data_directory(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    lease = lease_data_directory(tmp_path)  # nothing to clear by hand
    assert lease is not None
    lease.release()


def test_without_file_system_locks_nothing_is_refused_and_nothing_removed(tmp_path, monkeypatch, caplog):
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lease_module.fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING):
        assert lease_data_directory(tmp_path) is None
    assert "data directory not locked" in caplog.text
    spill = SpillDirectory(tmp_path, "query")  # spills without a lease
    (spill.path / "duckdb_temp_storage_DEFAULT-0.tmp").write_bytes(b"x")
    assert reclaim_spill_directories(tmp_path) == (0, 0)  # whose it is cannot be told: kept
    assert spill.path.exists()
    spill.close()
    assert not spill.path.exists()
    monkeypatch.setattr(lease_module.fcntl, "flock", fcntl.flock)


def test_reclaim_takes_what_older_versions_and_killed_set_ups_left_and_nothing_live(tmp_path):
    query = tmp_path / "tmp" / "query"
    query.mkdir(parents=True)
    (query / "duckdb_temp_storage_DEFAULT-0.tmp").write_bytes(b"x" * 10)  # spilled straight here before leases
    young = query / ".1-young"  # being set up right now: its lease may not be taken yet
    young.mkdir()
    abandoned = query / ".2-abandoned"  # a set-up killed before its rename, long ago
    abandoned.mkdir()
    (abandoned / "lease").touch()
    os.utime(abandoned, (0, 0))
    live = SpillDirectory(tmp_path, "query")
    (live.path / "duckdb_temp_block-1.block").write_bytes(b"y" * 5)
    assert reclaim_spill_directories(tmp_path) == (1, 10)
    assert sorted(path.name for path in query.iterdir()) == sorted([young.name, live.path.name])
    live.close()
    assert reclaim_spill_directories(tmp_path) == (0, 0)
    assert [path.name for path in query.iterdir()] == [young.name]
