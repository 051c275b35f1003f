"""Buffer rows per Hive partition and publish them as Parquet files.

Layout: ``<root>/tables/<table>/project_id=<p>/date=<YYYY-MM-DD>/part-<ms>-<writer>-<n>.parquet``.
Each file is written under a temporary name, fsynced and renamed, so a reader never sees half a
file and a crash leaves at most a stray temporary (removed at start-up).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.fsutil import publish
from storage.schema import TABLES, TableSpec

_MICROS_PER_DAY = 86_400_000_000
_EPOCH = dt.date(1970, 1, 1)


def partition_dir(root: Path, table: str, project_id: str, date: str) -> Path:
    return root / "tables" / table / f"project_id={project_id}" / f"date={date}"


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
    __slots__ = ("columns", "rows")

    def __init__(self, names: list[str]) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in names}
        self.rows = 0


@dataclass
class FlushResult:
    files: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    rows_by_table: dict[str, int] = field(default_factory=dict)


class PartitionedWriter:
    """Collects rows for every (table, project, date) and writes one file per partition per flush."""

    def __init__(self, root: str | Path, *, compression: str = "zstd") -> None:
        self.root = Path(root)
        self.compression = compression
        self.writer_id = uuid.uuid4().hex[:8]
        self._sequence = 0
        self._buffers: dict[tuple[str, str, str], _Buffer] = {}
        self._names = {name: spec.schema.names for name, spec in TABLES.items()}
        self._dates: dict[int, str] = {}
        self.buffered_rows = 0

    def add(self, table: str, project_id: str, rows: list[dict[str, Any]], ingest: dict[str, Any]) -> None:
        """Buffer ``rows`` of ``table``; ``ingest`` holds columns shared by all of them."""
        spec = TABLES[table]
        names = self._names[table]
        by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_partition[_date_of(row[spec.time_column], self._dates)].append(row)
        for date, part_rows in by_partition.items():
            key = (table, project_id, date)
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = _Buffer(names)
            columns = buffer.columns
            for name in names:
                column = columns[name]
                if name in ingest:
                    column.extend([ingest[name]] * len(part_rows))
                else:
                    column.extend([row.get(name) for row in part_rows])
            buffer.rows += len(part_rows)
            self.buffered_rows += len(part_rows)

    def flush(self) -> FlushResult:
        """Write every buffered partition durably; afterwards nothing is buffered."""
        started = time.perf_counter()
        result = FlushResult()
        buffers, self._buffers = self._buffers, {}
        self.buffered_rows = 0
        for (table, project_id, date), buffer in buffers.items():
            spec = TABLES[table]
            arrow = _to_arrow(spec, buffer).sort_by(spec.sort_by)
            self._sequence += 1
            name = f"part-{int(time.time() * 1000)}-{self.writer_id}-{self._sequence:06d}.parquet"
            final = partition_dir(self.root, table, project_id, date) / name
            publish(final, lambda tmp, arrow=arrow, spec=spec: write_parquet(arrow, tmp, spec))
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


def _to_arrow(spec: TableSpec, buffer: _Buffer) -> pa.Table:
    arrays = []
    for f in spec.schema:
        values = buffer.columns[f.name]
        if pa.types.is_map(f.type):
            values = [list(v.items()) if v is not None else None for v in values]
        arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=spec.schema)


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


def parquet_options(spec: TableSpec, names: list[str], rows: int, row_group_size: int) -> dict[str, Any]:
    """Writer options: zstd, page index, bloom filters on the lookup columns, no dictionaries for long text."""
    return {
        "compression": "zstd",
        "row_group_size": row_group_size,
        "write_page_index": True,
        "bloom_filter_options": {c: {"ndv": max(rows, 1), "fpp": 0.01} for c in spec.bloom_columns},
        "use_dictionary": [c for c in names if c not in _TEXT_COLUMNS],
    }


def write_parquet(table: pa.Table, path: Path, spec: TableSpec, *, row_group_size: int = 128 * 1024) -> None:
    """Write ``table`` as one Parquet file with the table's options (see :func:`parquet_options`)."""
    pq.write_table(table, path, **parquet_options(spec, table.column_names, table.num_rows, row_group_size))
