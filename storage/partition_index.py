"""Which ``date=`` partitions hold a given key, without opening every day's file.

A lookup by id with no time to go by (``GET /traces/{id}``) would otherwise make DuckDB open
and probe one file per day of data. Parquet files here are immutable — written once under their
final name, later removed whole by compaction — so what a file holds can be remembered by its
path: this index keeps, per file, the sorted hashes of one column's values and answers with
the partitions whose files may hold the key. A hash collision only adds a partition to read
(the query still filters on the exact value); a file it has not seen yet is read on first use;
files that disappeared are forgotten.

The same hashes count a project's distinct trace ids (:func:`distinct_count`) without a query.

Memory: 8 bytes per distinct value per file (about 8 MB per million traces and index).
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from array import array
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.parquet_writer import partition_date


def _hashes(path: Path, column: str) -> array:
    """Sorted hashes of the distinct non-null values of ``column`` in one Parquet file."""
    values = pq.read_table(path, columns=[column]).column(0).unique().drop_null().to_pylist()
    return array("q", sorted(hash(value) for value in values))


def _may_hold(hashes: array | None, wanted: int) -> bool:
    """Whether a file with these sorted ``hashes`` may hold a value hashing to ``wanted``; an
    unreadable file (None) may hold anything — the read that follows reports its damage."""
    if hashes is None:
        return True
    at = bisect.bisect_left(hashes, wanted)
    return at < len(hashes) and hashes[at] == wanted


def may_hold_any(hashes: array | None, wanted: pa.Array) -> bool:
    """Whether a file with these ``hashes`` (None when unreadable) may hold any of the ``wanted``
    hashes (an int64 array); the check runs in Arrow, over a view of the file's hashes."""
    if hashes is None:
        return True
    if not hashes or not len(wanted):
        return False
    view = pa.Array.from_buffers(pa.int64(), len(hashes), [None, pa.py_buffer(hashes)])
    return bool(pc.any(pc.is_in(view, value_set=wanted)).as_py())


def distinct_count(files: list[array], excluded: pa.Array) -> int:
    """How many distinct hashes the ``files`` hold together, not counting those in ``excluded``
    (an int64 array, as :meth:`storage.query.TableQuery.deleted_trace_hashes` gives).

    Counted in Arrow (the arrays are viewed, not copied): a Python set of a million hashes takes
    several times longer. Two values with one hash count once — with 64-bit hashes, about one
    chance in ten million at a million values.
    """
    chunks = [pa.Array.from_buffers(pa.int64(), len(h), [None, pa.py_buffer(h)]) for h in files if h]
    if not chunks:
        return 0
    distinct = pc.unique(pa.chunked_array(chunks, pa.int64()))
    if len(excluded):
        distinct = distinct.filter(pc.invert(pc.is_in(distinct, value_set=excluded)))
    return len(distinct)


class PartitionIndex:
    """Per-file value hashes of one column of one table; safe to share between threads."""

    def __init__(self, column: str) -> None:
        self.column = column
        self._partitions: dict[Path, dict[str, array | None]] = {}
        self._lock = threading.Lock()

    def dates(self, partitions: list[tuple[Path, list[str]]], *values: str) -> list[dt.date]:
        """The dates of ``partitions`` with a file that may hold any of ``values``, oldest first.

        ``partitions`` are all partitions of one table of one project, as
        ``TableQuery.partitions`` lists them (directory, Parquet file names).
        """
        wanted = [hash(value) for value in values]
        return [
            partition_date(partition)
            for partition, files in self.load(partitions)
            if any(_may_hold(hashes, h) for hashes in files for h in wanted)
        ]

    def load(self, partitions: list[tuple[Path, list[str]]]) -> list[tuple[Path, list[array | None]]]:
        """The hashes of every file of ``partitions`` (as :meth:`dates` takes them), reading the
        files not seen yet; partitions and files no longer listed are forgotten."""
        self._forget_others(partitions)
        return [(partition, self._files(partition, names)) for partition, names in partitions]

    def _forget_others(self, partitions: list[tuple[Path, list[str]]]) -> None:
        if not partitions:
            return
        parent, listed = partitions[0][0].parent, {partition for partition, _ in partitions}
        with self._lock:
            for gone in [p for p in self._partitions if p.parent == parent and p not in listed]:
                del self._partitions[gone]

    def _files(self, partition: Path, names: list[str]) -> list[array | None]:
        """The hashes of each of ``names`` in ``partition``, read once per file; files of the
        partition no longer listed are forgotten."""
        with self._lock:
            known = self._partitions.get(partition, {})
        current = {name: known[name] if name in known else self._read(partition / name) for name in names}
        with self._lock:
            self._partitions[partition] = current
        return list(current.values())

    def _read(self, path: Path) -> array | None:
        try:
            return _hashes(path, self.column)
        except Exception:  # gone or damaged: see dates()
            return None
