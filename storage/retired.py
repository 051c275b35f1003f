"""Compaction inputs kept for a while after their merge, for the reads that listed them.

DuckDB opens a query's Parquet files as its scan reaches them, seconds after the query listed
them. A merge that deleted its inputs at once made such a read fail on a file it had listed
(500s on the REST API while compaction worked through many partitions, as in a backfill). So a
merge publishes its output and then *retires* its inputs: a marker ``<output stem>.retired``
in the partition names them. Listings (:func:`live_files`) leave retired files out — a read
that lists afterwards reads the merged file alone — while every file an earlier listing found
is still there: retired files are deleted (:func:`remove_expired`) only ``RETIRED_SECONDS``
later, longer than any read may run. ClickHouse keeps replaced parts a while for the same
reason (``old_parts_lifetime``).

A crash between the publish and the marker leaves inputs and output both live; reads and the
next merge deduplicate them, as they did before markers existed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from storage.fsutil import atomic_write_bytes, entries, fsync_dir

RETIRED_SUFFIX = ".retired"
# Twice the longest time limit of any read (the workers' own reads, 60 s; the API's are 10 s).
RETIRED_SECONDS = 120.0


def _names(partition: Path) -> tuple[list[str], list[str]]:
    """(Parquet file names, marker names) in ``partition``; both empty if it is gone."""
    names = [entry.name for entry in entries(partition)]
    return [n for n in names if n.endswith(".parquet")], [n for n in names if n.endswith(RETIRED_SUFFIX)]


# Markers never change once published (written under a temporary name, with unique names), so
# every listing need not read them again; bounded like the other per-file caches.
_MARKERS: dict[Path, frozenset[str]] = {}
_MARKERS_KEPT = 8192


def _retired_by(marker: Path) -> frozenset[str]:
    """The file names a marker retires (none if it was removed meanwhile: so were they, or soon)."""
    names = _MARKERS.get(marker)
    if names is None:
        try:
            names = frozenset(marker.read_text("utf-8").split())
        except FileNotFoundError:
            return frozenset()
        if len(_MARKERS) >= _MARKERS_KEPT:
            _MARKERS.clear()
        _MARKERS[marker] = names
    return names


def live_files(partition: Path) -> list[str]:
    """Names of ``partition``'s Parquet files that no merge has retired, sorted."""
    files, markers = _names(partition)
    if markers:
        retired = frozenset().union(*(_retired_by(partition / marker) for marker in markers))
        files = [name for name in files if name not in retired]
    return sorted(files)


def retire(partition: Path, merged: str, names: list[str]) -> None:
    """Mark ``names`` of ``partition`` as replaced by its file ``merged`` (durably)."""
    marker = partition / f"{Path(merged).stem}{RETIRED_SUFFIX}"
    atomic_write_bytes(marker, "".join(f"{name}\n" for name in names).encode())


def remove_expired(partition: Path, now: float, after: float = RETIRED_SECONDS) -> int:
    """Delete the files retired more than ``after`` seconds before ``now``, then their markers.

    Returns how many files were deleted. A marker goes only once its files are gone, so a crash
    in between leaves it to the next call.
    """
    removed = 0
    for marker_name in _names(partition)[1]:
        marker = partition / marker_name
        try:
            if now - marker.stat().st_mtime < after:
                continue
        except FileNotFoundError:
            continue
        for name in _retired_by(marker):
            with contextlib.suppress(FileNotFoundError):
                (partition / name).unlink()
                removed += 1
        fsync_dir(partition)
        marker.unlink(missing_ok=True)
        _MARKERS.pop(marker, None)
        fsync_dir(partition)
    return removed


def live_paths(directory: Path) -> list[Path]:
    """Every live Parquet file at any depth under ``directory`` (e.g. ``<data>/tables``), sorted."""
    partitions = {path.parent for path in directory.rglob("*.parquet")}
    return sorted(partition / name for partition in partitions for name in live_files(partition))
