"""Buffer rows per Hive partition and publish them as Parquet files.

Layout: ``<root>/tables/<table>/project_id=<p>/date=<YYYY-MM-DD>/part-<ms>-<writer>-<n>.parquet``.
Each file is written under a temporary name, fsynced and renamed, so a reader never sees half a
file and a crash leaves at most a stray temporary (removed at start-up).

These flush files are short-lived: compaction (:mod:`storage.compaction`) rewrites them as
``part-c…`` files, sorted and zstd-compressed. So a flush writes the cheapest file that reads
well: LZ4 and in arrival order. Sorting and zstd cost a worker about a tenth of its time per span
(4.0 of 8.7 µs in Parquet writing), and with one row group per flush file the order bought no
pruning.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import struct
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.fsutil import publish, quarantine
from storage.schema import TABLES, TableSpec

log = logging.getLogger("spanfuse.storage")

_MICROS_PER_DAY = 86_400_000_000
_MAGIC = b"PAR1"
_CONVERT_ROWS = 256  # pending rows of a partition converted to Arrow at once
_EPOCH = dt.date(1970, 1, 1)
FLUSH_COMPRESSION = "lz4"
COMPACTED_FILE_PREFIX = "part-c"  # compaction's output; flush files are ``part-<ms>-…``


def partition_dir(root: Path, table: str, project_id: str, date: str) -> Path:
    return root / "tables" / table / f"project_id={project_id}" / f"date={date}"


def partition_date(partition: Path) -> dt.date:
    """The day of a ``date=`` partition directory (ValueError for any other name)."""
    return dt.date.fromisoformat(partition.name.removeprefix("date="))


def _date_of(micros: int, cache: dict[int, str]) -> str:
    day = micros // _MICROS_PER_DAY
    text = cache.get(day)
    if text is None:
        try:
            text = (_EPOCH + dt.timedelta(days=day)).isoformat()
        except OverflowError:  # beyond year 9999: keep the row, file it under the last date
            text = "9999-12-31"
        cache[day] = text
    return text


class _Buffer:
    """The rows of one partition: Arrow tables of the rows converted so far, and rows still pending."""

    __slots__ = ("convert", "pending", "rows", "runs", "tables")

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.pending: list[dict[str, Any]] = []
        # One (row count, ingest values) per add: the next ``count`` pending rows share these columns.
        self.runs: list[tuple[int, dict[str, Any]]] = []
        self.rows = 0
        self.convert = True  # False once pending rows failed to convert: the flush fails on them


@dataclass
class FlushResult:
    files: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    rows_by_table: dict[str, int] = field(default_factory=dict)

    def add(self, other: FlushResult) -> None:
        """Count ``other`` (a later flush) in this one."""
        self.files += other.files
        self.rows += other.rows
        self.bytes += other.bytes
        self.seconds += other.seconds
        for table, rows in other.rows_by_table.items():
            self.rows_by_table[table] = self.rows_by_table.get(table, 0) + rows


class PartitionedWriter:
    """Collects rows for every (table, project, date) and writes one file per partition per flush."""

    def __init__(self, root: str | Path, *, compression: str = FLUSH_COMPRESSION) -> None:
        self.root = Path(root)
        self.compression = compression
        self.writer_id = uuid.uuid4().hex[:8]
        self._sequence = 0
        self._buffers: dict[tuple[str, str, str], _Buffer] = {}
        self._names = {name: spec.schema.names for name, spec in TABLES.items()}
        self._dates: dict[int, str] = {}
        self.buffered_rows = 0

    def add(self, table: str, project_id: str, rows: list[dict[str, Any]], ingest: dict[str, Any]) -> None:
        """Buffer ``rows`` of ``table``; ``ingest`` holds columns shared by all of them.

        Rows may be kept as they are until the flush, so they must not change after this call.
        """
        if not rows:
            return
        spec = TABLES[table]
        shared = {name: ingest[name] for name in self._names[table] if name in ingest}
        time_column = spec.time_column
        days = [row[time_column] // _MICROS_PER_DAY for row in rows]
        if days.count(days[0]) == len(days):  # the usual case: one request, one day
            self._append(spec, project_id, _date_of(rows[0][time_column], self._dates), rows, shared)
            return
        by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_partition[_date_of(row[time_column], self._dates)].append(row)
        for date, part_rows in by_partition.items():
            self._append(spec, project_id, date, part_rows, shared)

    def _append(
        self, spec: TableSpec, project_id: str, date: str, rows: list[dict[str, Any]], shared: dict[str, Any]
    ) -> None:
        key = (spec.name, project_id, date)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = _Buffer()
        buffer.pending.extend(rows)
        buffer.runs.append((len(rows), shared))
        buffer.rows += len(rows)
        self.buffered_rows += len(rows)
        # Converted as rows arrive, so the buffer holds Arrow data instead of the mapper's dicts (about
        # half the memory); in chunks, since converting tiny adds one at a time costs more than they do.
        if len(buffer.pending) >= _CONVERT_ROWS and buffer.convert:
            try:
                buffer.tables.append(_to_arrow(spec, buffer.pending, buffer.runs))
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                buffer.convert = False  # keep them: the flush raises on them, as it always has
                return
            buffer.pending, buffer.runs = [], []

    def flush(self) -> FlushResult:
        """Write every buffered partition durably; afterwards nothing is buffered."""
        started = time.perf_counter()
        result = FlushResult()
        buffers, self._buffers = self._buffers, {}
        self.buffered_rows = 0
        for (table, project_id, date), buffer in buffers.items():
            spec = TABLES[table]
            tables = buffer.tables
            if buffer.pending:
                tables = [*tables, _to_arrow(spec, buffer.pending, buffer.runs)]
            arrow = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
            self._sequence += 1
            name = f"part-{int(time.time() * 1000)}-{self.writer_id}-{self._sequence:06d}.parquet"
            final = partition_dir(self.root, table, project_id, date) / name
            publish(final, partial(write_parquet, arrow, spec=spec, compression=self.compression))
            result.files += 1
            result.rows += buffer.rows
            result.rows_by_table[table] = result.rows_by_table.get(table, 0) + buffer.rows
            result.bytes += final.stat().st_size
        result.seconds = time.perf_counter() - started
        return result

    def discard(self) -> None:
        """Forget everything buffered (after a failed flush the rows are read again from the WAL)."""
        self._buffers = {}
        self.buffered_rows = 0


def _to_arrow(spec: TableSpec, rows: list[dict[str, Any]], runs: list[tuple[int, dict[str, Any]]]) -> pa.Table:
    """``rows`` as a table of ``spec.schema`` (a missing key is a null); ``runs`` give the ingest columns."""
    shared = {name for _, values in runs for name in values}
    # One struct conversion walks each row dict once, in C; a map column takes a dict as it is.
    struct = pa.array(rows, type=_row_type(spec, frozenset(shared)))
    children = iter(struct.flatten())
    columns = []
    for f in spec.schema:
        if f.name not in shared:
            columns.append(next(children))
            continue
        values: list[Any] = []
        start = 0
        for count, run in runs:
            if f.name in run:
                values += [run[f.name]] * count
            else:
                values += [row.get(f.name) for row in rows[start : start + count]]
            start += count
        columns.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(columns, schema=spec.schema)


_ROW_TYPES: dict[tuple[str, frozenset[str]], pa.StructType] = {}


def _row_type(spec: TableSpec, shared: frozenset[str]) -> pa.StructType:
    """The struct of ``spec``'s columns except the ``shared`` ones (built from the ingest values)."""
    key = (spec.name, shared)
    row_type = _ROW_TYPES.get(key)
    if row_type is None:
        row_type = _ROW_TYPES[key] = pa.struct([f for f in spec.schema if f.name not in shared])
    return row_type


_TEXT_COLUMNS = frozenset(
    {
        "input",
        "output",
        "attributes",
        "events",
        "body",
        "metadata",
        "input_messages",
        "output_messages",
        "resource_attributes",
    }
)


def parquet_options(
    spec: TableSpec, names: list[str], rows: int, row_group_size: int, compression: str = "zstd"
) -> dict[str, Any]:
    """Writer options: zstd, page index, bloom filters on the lookup columns, no dictionaries and
    no statistics for long text (never filtered on: its min and max would be copies of the longest
    values, 1.3 % of a flush file, and taking them 0.6 % of a worker's instructions)."""
    not_text = [c for c in names if c not in _TEXT_COLUMNS]
    return {
        "compression": compression,
        "row_group_size": row_group_size,
        "write_page_index": True,
        "bloom_filter_options": {c: {"ndv": max(rows, 1), "fpp": 0.01} for c in spec.bloom_columns},
        "use_dictionary": not_text,
        "write_statistics": not_text,
    }


def write_parquet(
    table: pa.Table, path: Path, spec: TableSpec, *, row_group_size: int = 128 * 1024, compression: str = "zstd"
) -> None:
    """Write ``table`` as one Parquet file with the table's options (see :func:`parquet_options`)."""
    options = parquet_options(spec, table.column_names, table.num_rows, row_group_size, compression)
    pq.write_table(table, path, **options)


def parquet_damage(path: Path) -> str | None:
    """Why ``path`` cannot be a whole Parquet file (truncated, no magic, bad footer), or None.

    Cheap: reads the first and last 8 bytes only. A crash mid-write or a partly copied file fails
    these checks; readers would otherwise fail on every query that touches the partition.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 12:
                return f"{size} bytes, too short for a Parquet file"
            head = fh.read(4)
            fh.seek(size - 8)
            tail = fh.read(8)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if head != _MAGIC:
        return "no Parquet magic at the start"
    if tail[4:] != _MAGIC:
        return "no Parquet magic at the end (truncated?)"
    (footer,) = struct.unpack("<I", tail[:4])
    if footer + 12 > size:
        return f"footer of {footer} bytes does not fit in a file of {size} bytes"
    return None


def unreadable(path: Path) -> str | None:
    """Like :func:`parquet_damage`, then reads the whole file: why it cannot be read, or None."""
    reason = parquet_damage(path)
    if reason is not None:
        return reason
    try:
        pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        return f"unreadable: {exc}"
    return None


def quarantine_logged(root: Path, path: Path, reason: str) -> bool:
    """Quarantine ``path`` (see :func:`storage.fsutil.quarantine`) and log it; False if it is gone."""
    try:
        target = quarantine(root, path)
    except FileNotFoundError:
        return False  # compacted or expired meanwhile
    log.warning(
        "damaged parquet file quarantined path=%s reason=%s moved_to=%s",
        path.relative_to(root),
        reason,
        target.relative_to(root),
    )
    return True


_NAMED_FILE = re.compile(r"""([^'"\s]+\.parquet)(?![\w.])""")


def vanished_files_named_in(data_dir: str | Path, message: str) -> list[Path]:
    """The table files an error ``message`` names that no longer exist: removed since the read
    listed them (retired compaction inputs whose time was up, retention, a quarantine)."""
    tables = Path(data_dir).resolve() / "tables"
    named = (Path(match.group(1)).resolve() for match in _NAMED_FILE.finditer(message))
    return [path for path in named if path.is_relative_to(tables) and not path.exists()]


def quarantine_named_in(data_dir: str | Path, message: str) -> list[Path]:
    """Quarantine the damaged table files an error ``message`` names (a DuckDB read error, say).

    Only files under ``<data_dir>/tables`` that really are damaged are moved; returns them.
    """
    root = Path(data_dir).resolve()
    tables = root / "tables"
    moved = []
    for match in _NAMED_FILE.finditer(message):
        path = Path(match.group(1)).resolve()  # DuckDB names files as they were globbed, maybe relative
        if not path.is_relative_to(tables) or not path.is_file():
            continue
        reason = unreadable(path)
        if reason is not None and quarantine_logged(root, path, reason):
            moved.append(path)
    return moved


def quarantine_damaged_files(data_dir: str | Path) -> list[tuple[Path, str]]:
    """Move every damaged ``*.parquet`` under ``<data_dir>/tables`` to ``<data_dir>/quarantine``.

    Returns (original path, reason) for each; each one is logged with its path and reason.
    """
    root = Path(data_dir)
    moved: list[tuple[Path, str]] = []
    for path in sorted((root / "tables").glob("*/project_id=*/date=*/*.parquet")):
        reason = parquet_damage(path)
        if reason is None or not quarantine_logged(root, path, reason):
            continue
        moved.append((path, reason))
    return moved
