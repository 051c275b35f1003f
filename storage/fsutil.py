"""Filesystem helpers for crash-safe publishing: write to a temporary name, fsync, rename.

Everything that touches the disk layout goes through here, so the storage root can later be
an object store behind the same few calls.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".tmp"


def fsync_dir(directory: str | Path) -> None:
    """Make a rename or unlink inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_path(final: Path) -> Path:
    """A unique sibling of ``final`` that readers' ``*.parquet`` globs never match."""
    return final.with_name(f"{final.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def publish(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)``, fsync it, then atomically rename it to ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(final)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)


def atomic_write_bytes(final: Path, data: bytes) -> None:
    """Replace ``final`` with ``data`` so a crash leaves either the old or the new content."""
    publish(final, lambda tmp: tmp.write_bytes(data))


QUARANTINE_DIR = "quarantine"


def quarantine(data_dir: Path, path: Path) -> Path:
    """Move a damaged ``path`` under ``<data_dir>/quarantine/`` (same relative path), out of every reader's way.

    Nothing is deleted: an operator can inspect or restore the file. Returns its new location.
    """
    relative = path.relative_to(data_dir) if path.is_relative_to(data_dir) else Path(path.name)
    target = data_dir / QUARANTINE_DIR / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}")
    os.replace(path, target)
    fsync_dir(path.parent)
    fsync_dir(target.parent)
    return target


def quarantine_bytes(data_dir: Path, name: str, data: bytes) -> Path:
    """Keep ``data`` durably as ``<data_dir>/quarantine/<name>`` (a unique name if that is taken
    by other bytes; the same bytes again are kept once). For data that cannot be stored where it
    belongs; returns where it is.
    """
    target = data_dir / QUARANTINE_DIR / name
    if target.exists():
        if target.stat().st_size == len(data) and target.read_bytes() == data:
            return target  # set aside again, as when its batch is retried
        target = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}")
    atomic_write_bytes(target, data)
    return target


def entries(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of ``directory``; none if it is gone (or is not a directory)."""
    try:
        with os.scandir(directory) as found:
            return list(found)
    except (FileNotFoundError, NotADirectoryError):
        return []


def remove_files(root: Path, pattern: str = "*") -> list[tuple[Path, int]]:
    """Delete the files under ``root`` (at any depth) whose names match ``pattern``; returns the
    path and size of each one removed."""
    removed = []
    if root.exists():
        for path in root.rglob(pattern):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file():
                    size = path.stat().st_size
                    path.unlink()
                    removed.append((path, size))
    return removed


def remove_stray_temporaries(root: Path) -> list[Path]:
    """Delete temporary files left by a crash under ``root``; returns what was removed."""
    return [path for path, _ in remove_files(root, f"*{TMP_SUFFIX}")]
