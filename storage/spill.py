"""Where DuckDB spills large sorts: a private directory per DuckDB instance, leased while it lives.

DuckDB removes its spill files when it closes, but a process killed mid-sort (the OOM killer's
likeliest victim is a large compaction merge) leaves them behind: gigabytes. Each instance spills
into its own directory, ``<data>/tmp/<user>/<pid>-<random>/``, and holds the lease
(``storage.lease``) of the ``lease`` file in it for as long as it lives. So
:func:`reclaim_spill_directories` can run at any time and from any process: it removes exactly the
directories no living process holds — never the files of a query still running, say a
``spanfuse traces`` beside the collector on the same data directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
import weakref
from pathlib import Path

from storage.fsutil import entries, remove_files
from storage.lease import Lease, is_held, take

log = logging.getLogger("spanfuse.storage")

SPILL_DIR = "tmp"
_LEASE = "lease"
_NEW = "."  # a directory being set up, perhaps not yet leased
_SETUP_SECONDS = 60.0  # after which a directory still being set up was abandoned


class SpillDirectory:
    """A new spill directory of ``user`` ("compaction", "query") under ``data_dir``, leased until
    :meth:`close` (or the end of the process). Give DuckDB :attr:`path` as its ``temp_directory``."""

    def __init__(self, data_dir: Path, user: str) -> None:
        parent = data_dir / SPILL_DIR / user
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Set up under a hidden name and renamed once leased: a visible directory always has a lease.
        setup = parent / f"{_NEW}{name}"
        lease = None
        try:
            parent.mkdir(parents=True, exist_ok=True)
            setup.mkdir()
            lease = take(setup / _LEASE)  # None without file-system locks: reclaim then leaves it
            self.path = parent / name
            os.rename(setup, self.path)
        except OSError as exc:
            # No room for a directory (a full disk) must not stop a collector from starting: spill,
            # if ever, to the system's temporary directory, in one only we can read (spills hold
            # prompts), or failing that one DuckDB makes if it ever needs it.
            if lease is not None:
                lease.release()
            shutil.rmtree(setup, ignore_errors=True)
            lease = None
            try:
                self.path = Path(tempfile.mkdtemp(prefix=f"spanfuse-{user}-"))
            except OSError:
                self.path = Path(tempfile.gettempdir()) / f"spanfuse-{user}-{name}"
            log.warning("no spill directory under the data directory (%s); spilling to %s", exc, self.path)
        # Also released when the object is collected unclosed, or at interpreter exit.
        self._release = weakref.finalize(self, _release, self.path, lease, os.getpid())

    def close(self) -> None:
        """Remove the directory and what is left in it, and give up the lease."""
        self._release()


def _release(path: Path, lease: Lease | None, owner: int) -> None:
    if os.getpid() == owner:  # not in a forked child: the parent still spills there
        shutil.rmtree(path, ignore_errors=True)
    if lease is not None:
        lease.release()


def reclaim_spill_directories(data_dir: Path) -> tuple[int, int]:
    """Remove the spill directories under ``data_dir`` whose process has ended; returns the
    (files, bytes) removed, and logs them. Safe while other processes spill there: their
    directories are leased."""
    files = size = 0
    root = data_dir / SPILL_DIR
    for user in entries(root):
        if not user.is_dir(follow_symlinks=False):
            continue
        for entry in entries(Path(user.path)):
            path = Path(entry.path)
            if entry.name.startswith(_NEW) and not _older_than(path, _SETUP_SECONDS):
                continue  # being set up: its lease may not be taken yet
            # A file straight in the user's directory was spilled there by a version before leases.
            removed = _remove_if_unleased(path) if entry.is_dir(follow_symlinks=False) else _remove_file(path)
            files += len(removed)
            size += sum(length for _, length in removed)
    if files:
        log.warning("removed spill files of a killed process files=%d bytes=%d", files, size)
    return files, size


def _remove_if_unleased(directory: Path) -> list[tuple[Path, int]]:
    # Names are never reused, so a directory whose lease is free (or gone) stays unused.
    if is_held(directory / _LEASE):
        return []  # a living process spills here
    removed = [(path, length) for path, length in remove_files(directory) if path.name != _LEASE]
    shutil.rmtree(directory, ignore_errors=True)
    return removed


def _remove_file(path: Path) -> list[tuple[Path, int]]:
    with contextlib.suppress(FileNotFoundError):
        length = path.lstat().st_size
        path.unlink()
        return [(path, length)]
    return []


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.lstat().st_mtime > seconds
    except FileNotFoundError:
        return False
