"""Leases: an exclusive ``flock`` on a file, held by one living process.

The kernel drops the lock when the process ends, however it ends (SIGKILL, the OOM killer), so a
lease never outlives its holder and never needs clearing by hand. Two uses: one collector per data
directory (:func:`lease_data_directory`), and spill directories that may be removed once their
process is gone (``storage.spill``). On a file system without locks (some network shares) there
are no leases: :func:`take` says so, and :func:`is_held` answers yes, the safe answer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import weakref
from pathlib import Path

log = logging.getLogger("spanfuse.storage")

DATA_DIRECTORY_LEASE = "LOCK"


class DirectoryInUse(OSError):
    """Another living process holds the lease of a directory only one may write."""


# What flock answers where the file system has no locks.
_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL})


class Lease:
    """An exclusive lock on a file, held until :meth:`release`, the object being collected, or the
    end of the process. Made by :func:`take`."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._release = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        self._release()


def take(path: Path) -> Lease | None:
    """The lease on ``path`` (created if missing); None where the file system has no locks.
    Raises :class:`BlockingIOError` while another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError) and exc.errno in _NO_LOCKS:
            return None
        raise
    return Lease(fd)


def is_held(path: Path) -> bool:
    """Whether a living process holds the lease on ``path`` (False if there is no such file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:  # not ours to look at: as good as held
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held; or no locks here, and then nobody can tell
        return True
    finally:
        os.close(fd)
    return False


def lease_data_directory(data_dir: Path) -> Lease | None:
    """The lease of a collector's data directory, with the holder's pid in it for the next one's
    error (None, logged, where the file system has no locks). Raises :class:`DirectoryInUse` while
    another process holds it: two collectors appending to one WAL and merging the same files
    would lose data."""
    path = data_dir / DATA_DIRECTORY_LEASE
    try:
        lease = take(path)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (pid {int(path.read_text())})"
        raise DirectoryInUse(
            errno.EBUSY, f"data directory {data_dir} is in use by another collector{holder}; run one per data directory"
        ) from None
    if lease is None:
        log.warning("data directory not locked (its file system has no locks): run one collector per data directory")
        return None
    with contextlib.suppress(OSError):  # only for the message: a full disk must not stop the start
        os.ftruncate(lease.fd, 0)
        os.pwrite(lease.fd, f"{os.getpid()}\n".encode(), 0)
    return lease
