"""Leases: an exclusive ``flock`` on a file, held by one living process.

The kernel drops the lock when the process ends, however it ends (SIGKILL, the OOM killer), so a
lease never outlives its holder and never needs clearing by hand. Two uses: one collector per data
directory (:func:`lease_data_directory`), and spill directories that may be removed once their
process is gone (``storage.spill``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import weakref
from pathlib import Path

DATA_DIRECTORY_LEASE = "LOCK"


class DirectoryInUse(OSError):
    """Another living process holds the lease of a directory only one may write."""


class Lease:
    """An exclusive lock on ``path`` (created if missing) until :meth:`release`, the object being
    collected, or the end of the process. Raises :class:`BlockingIOError` if another holds it."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self._release = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        self._release()


def is_held(path: Path) -> bool:
    """Whether a living process holds the lease on ``path`` (False if there is no such file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def lease_data_directory(data_dir: Path) -> Lease:
    """The lease of a collector's data directory, with the holder's pid in it for the next one's
    error. Raises :class:`DirectoryInUse` while another process holds it: two collectors appending
    to one WAL and merging the same files would lose data."""
    path = data_dir / DATA_DIRECTORY_LEASE
    try:
        lease = Lease(path)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (pid {int(path.read_text())})"
        raise DirectoryInUse(
            errno.EBUSY, f"data directory {data_dir} is in use by another collector{holder}; run one per data directory"
        ) from None
    os.ftruncate(lease.fd, 0)
    os.pwrite(lease.fd, f"{os.getpid()}\n".encode(), 0)
    return lease
