"""Compaction and retention of the partitioned tables.

Compaction merges a partition's small files into one file sorted by the table's clustering
column (row groups of ~100k rows, bloom filter on the lookup column) and folds duplicates
(same key: the row ingested last wins). The merged file is published before the inputs are
deleted; a reader that sees both for a moment still reads each row once, because reads
deduplicate too. A crash in between leaves both, and the next run folds them.

Retention deletes whole ``date=`` partitions older than the configured number of days.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from storage.fsutil import fsync_dir, publish
from storage.parquet_writer import write_parquet
from storage.schema import TABLES, TableSpec

log = logging.getLogger("spanfuse.compaction")

SMALL_FILE_BYTES = 32 * 1024 * 1024
MAX_MERGE_BYTES = 128 * 1024 * 1024  # bounds the memory one merge needs
ROW_GROUP_ROWS = 100_000


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns (absent ones as nulls, e.g. from older files)."""
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema.with_metadata(None)).cast(schema)


@dataclass
class CompactionStats:
    partitions: int = 0
    files_in: int = 0
    files_out: int = 0
    rows_out: int = 0
    partitions_deleted: int = 0
    durations: list[tuple[str, float]] = field(default_factory=list)


def partitions(root: Path, table: str) -> list[Path]:
    """Every ``project_id=…/date=…`` directory of ``table``."""
    return sorted(p for p in (root / "tables" / table).glob("project_id=*/date=*") if p.is_dir())


def _partition_date(partition: Path) -> dt.date | None:
    try:
        return dt.date.fromisoformat(partition.name.removeprefix("date="))
    except ValueError:
        return None


class Compactor:
    """Merges small files and applies retention; call :meth:`run_once` periodically."""

    def __init__(
        self,
        root: str | Path,
        *,
        min_files: int = 8,
        small_file_bytes: int = SMALL_FILE_BYTES,
        retention_days: int = 0,
        settle_seconds: float = 120.0,
    ) -> None:
        self.root = Path(root)
        self.min_files = min_files
        self.small_file_bytes = small_file_bytes
        self.retention_days = retention_days
        self.settle_seconds = settle_seconds

    def run_once(self, now: float | None = None) -> CompactionStats:
        now = time.time() if now is None else now
        stats = CompactionStats()
        today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        for name, spec in TABLES.items():
            for partition in partitions(self.root, name):
                date = _partition_date(partition)
                if self._expired(date, today):
                    shutil.rmtree(partition, ignore_errors=True)
                    fsync_dir(partition.parent)
                    stats.partitions_deleted += 1
                    log.info("retention deleted partition=%s", partition.relative_to(self.root))
                    continue
                chosen = self._select(partition, date, today, now)
                if chosen:
                    started = time.perf_counter()
                    rows = self.merge(spec, partition, chosen)
                    stats.durations.append((name, time.perf_counter() - started))
                    stats.partitions += 1
                    stats.files_in += len(chosen)
                    stats.files_out += 1
                    stats.rows_out += rows
        return stats

    def _expired(self, date: dt.date | None, today: dt.date) -> bool:
        return bool(self.retention_days) and date is not None and (today - date).days >= self.retention_days

    def _select(self, partition: Path, date: dt.date | None, today: dt.date, now: float) -> list[Path]:
        """Files worth merging: many small ones, or any several once the day is over and quiet."""
        sizes = {f: f.stat() for f in sorted(partition.glob("*.parquet"))}
        if len(sizes) < 2:
            return []
        small = [f for f, st in sizes.items() if st.st_size < self.small_file_bytes]
        settled = (
            date is not None and date < today and all(now - st.st_mtime > self.settle_seconds for st in sizes.values())
        )
        chosen = list(sizes) if settled else small if len(small) >= self.min_files else []
        budget, capped = MAX_MERGE_BYTES, []
        for f in sorted(chosen, key=lambda f: sizes[f].st_size):
            budget -= sizes[f].st_size
            if capped and budget < 0:
                break
            capped.append(f)
        return capped if len(capped) >= 2 else []

    def merge(self, spec: TableSpec, partition: Path, files: list[Path]) -> int:
        """Replace ``files`` of one partition by a single deduplicated, sorted file."""
        key = ", ".join(spec.key)
        con = duckdb.connect(config={"threads": 1, "memory_limit": "512MB"})
        try:
            arrow = con.sql(
                "SELECT * FROM read_parquet($files, union_by_name = true, hive_partitioning = false) "
                f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY ingested_at DESC, ingest_seq DESC) = 1 "
                f"ORDER BY {spec.sort_by}",
                params={"files": [str(f) for f in files]},
            ).to_arrow_table()
        finally:
            con.close()
        arrow = conform(arrow, spec.schema)
        final = partition / f"part-c{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
        publish(final, lambda tmp: write_parquet(arrow, tmp, spec, row_group_size=ROW_GROUP_ROWS))
        for f in files:
            if f != final:
                f.unlink(missing_ok=True)
        fsync_dir(partition)
        log.info(
            "compacted partition=%s files_in=%d rows_out=%d",
            partition.relative_to(self.root),
            len(files),
            arrow.num_rows,
        )
        return arrow.num_rows
