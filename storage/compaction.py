"""Compaction and retention of the partitioned tables.

Compaction merges a partition's small files into one file sorted by the table's clustering
column (row groups of 8,192 rows, bloom filter on the lookup column) and folds duplicates
(same key: the row ingested last wins). The merged file is published before the inputs are
retired, and retired files are deleted only minutes later (:mod:`storage.retired`), so a read
that listed them still finds them; a reader that sees both for a moment still reads each row
once, because reads deduplicate too. A crash in between leaves both, and the next run folds them.
Rows of deleted traces and scores (tombstones in the ``deletions`` table) received before the
deletion are dropped when their partition is merged; until then reads hide them.

Retention deletes whole ``date=`` partitions older than the configured number of days.

Damaged files (truncated, or unreadable when merged) are moved to ``<root>/quarantine/`` and
logged; the rest of the partition is merged as usual, so one bad file never stalls compaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.fsutil import fsync_dir, publish
from storage.parquet_writer import (
    COMPACTED_FILE_PREFIX,
    parquet_options,
    partition_date,
    quarantine_damaged_files,
    quarantine_logged,
    unreadable,
)
from storage.retired import RETIRED_SECONDS, live_files, remove_expired, retire
from storage.schema import TABLES, TRACE_COLUMN, TableSpec, hidden_by_deletion
from storage.spill import SpillDirectory, reclaim_spill_directories

log = logging.getLogger("spanfuse.compaction")

SMALL_FILE_BYTES = 32 * 1024 * 1024
SPILL_USER = "compaction"  # names its spill directories (storage.spill.SpillDirectory)
MAX_MERGE_BYTES = 64 * 1024 * 1024  # per merge; with DuckDB spilling its sort, memory stays under ~1 GiB
# Small row groups: a lookup by trace id decodes only the row group whose (sorted) id range holds
# it. With 100k-row groups, reading one trace's observations at 10M took 81 ms in-process, 36 here;
# scans and file sizes measured the same.
ROW_GROUP_ROWS = 8192


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns (absent ones as nulls, e.g. from older files)."""
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema.with_metadata(None)).cast(schema)


@dataclass
class CompactionStats:
    partitions: int = 0  # partitions merged (once or more)
    merges: int = 0
    files_in: int = 0
    files_out: int = 0
    rows_out: int = 0
    partitions_deleted: int = 0
    files_quarantined: int = 0
    durations: list[tuple[str, float]] = field(default_factory=list)
    unfinished: bool = False  # the pass ran out of time with merges left to do
    most_files_waiting: int = 0  # when unfinished: small files left in the partition with the most


def partitions(root: Path, table: str) -> list[Path]:
    """Every ``project_id=…/date=…`` directory of ``table``."""
    return sorted(p for p in (root / "tables" / table).glob("project_id=*/date=*") if p.is_dir())


def _partition_date(partition: Path) -> dt.date | None:
    try:
        return partition_date(partition)
    except ValueError:
        return None


def _last_compacted(partition: Path) -> float:
    """When compaction last wrote a file into ``partition`` (0 if never): the least recent goes first."""
    compacted = [name for name in live_files(partition) if name.startswith(COMPACTED_FILE_PREFIX)]
    return max(((partition / name).stat().st_mtime for name in compacted), default=0.0)


class _Deduplicator:
    """Keeps the first row of each run of equal keys across a stream of key-sorted batches.

    Keys compare as reads partition them (``PARTITION BY`` in :mod:`storage.query`): two nulls are
    the same key, a null and a value are not. A batch without duplicates, the usual case, is
    returned as it is, not copied.
    """

    def __init__(self, key: tuple[str, ...]) -> None:
        self.key = key
        self.last: tuple[object, ...] | None = None

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        rows = batch.num_rows
        if rows == 0:
            return batch
        columns = [batch.column(name) for name in self.key]
        first = tuple(column[0].as_py() for column in columns)
        new_key: pa.Array = pa.array([first != self.last])
        self.last = tuple(column[rows - 1].as_py() for column in columns)
        if rows > 1:
            changed = [_differs_from_previous(column) for column in columns]
            new_key = pa.concat_arrays([new_key, functools.reduce(pc.or_, changed)])
        return batch if pc.all(new_key).as_py() else batch.filter(new_key)


def _differs_from_previous(column: pa.Array) -> pa.Array:
    """For rows 1… of ``column``: whether each differs from the row before it (nulls equal each other)."""
    after, before = column.slice(1), column.slice(0, len(column) - 1)
    differs = pc.not_equal(after, before)
    if column.null_count:
        differs = pc.if_else(pc.is_null(differs), pc.xor(pc.is_null(after), pc.is_null(before)), differs)
    return differs


class MergeInterrupted(Exception):
    """A merge abandoned by :meth:`Compactor.interrupt`; its input files are untouched."""


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
        retired_seconds: float = RETIRED_SECONDS,
    ) -> None:
        self.root = Path(root)
        self.min_files = min_files
        self.small_file_bytes = small_file_bytes
        self.retention_days = retention_days
        self.settle_seconds = settle_seconds
        self.retired_seconds = retired_seconds  # how long merged inputs stay for reads (storage.retired)
        # Set by interrupt() (from another thread): the merge in progress ends and none starts.
        self._interrupted = False
        self._con: duckdb.DuckDBPyConnection | None = None  # while a merge runs: what interrupt() ends
        self._lock = threading.Lock()
        # One DuckDB instance for all the merges of a pass (see _connection), and where it spills.
        self._db: tuple[duckdb.DuckDBPyConnection, SpillDirectory] | None = None

    def interrupt(self) -> None:
        """End the pass soon, from any thread: the merge in progress is abandoned (its files stay as
        they were, nothing is lost) and no other starts. For a collector that is stopping."""
        with self._lock:
            self._interrupted = True
            if self._con is not None:
                self._con.interrupt()  # a sort in progress ends now; streaming checks the flag

    def run_once(self, now: float | None = None, *, budget_seconds: float | None = None) -> CompactionStats:
        """One pass: retention, then merges until no partition has files worth merging.

        A busy partition gets as many merges as it needs (each one capped at ``MAX_MERGE_BYTES``), so
        its small files never pile up faster than passes take them. Partitions take turns, one merge
        each per round, the one compacted least recently first. After ``budget_seconds`` no new merge
        starts (a pass makes one at least): ``stats.unfinished`` says so, and the next pass goes on
        from there. :meth:`interrupt` ends the pass at once, its merge in progress abandoned.
        """
        now = time.time() if now is None else now
        deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
        stats = CompactionStats()
        today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        stats.files_quarantined += len(quarantine_damaged_files(self.root))
        reclaim_spill_directories(self.root)
        pending: list[tuple[TableSpec, Path, dt.date | None]] = []
        for name, spec in TABLES.items():
            for partition in partitions(self.root, name):
                date = _partition_date(partition)
                if self._expired(date, today):
                    shutil.rmtree(partition, ignore_errors=True)
                    fsync_dir(partition.parent)
                    stats.partitions_deleted += 1
                    log.info("retention deleted partition=%s", partition.relative_to(self.root))
                else:
                    remove_expired(partition, now, self.retired_seconds)
                    pending.append((spec, partition, date))
        pending.sort(key=lambda item: _last_compacted(item[1]))  # a pass out of time starves none
        try:
            stats.partitions = self._merge_all(pending, today, now, deadline, stats)
        finally:
            self.close()
        return stats

    def _merge_all(
        self,
        pending: list[tuple[TableSpec, Path, dt.date | None]],
        today: dt.date,
        now: float,
        deadline: float | None,
        stats: CompactionStats,
    ) -> int:
        """The merges of :meth:`run_once`, partitions taking turns; how many partitions it merged."""
        merged: set[Path] = set()
        while pending and not stats.unfinished:
            again = []
            for spec, partition, date in pending:
                chosen = self._select(partition, date, today, now)
                if not chosen:
                    continue
                if self._interrupted or (deadline is not None and stats.merges and time.monotonic() > deadline):
                    stats.unfinished = True
                    if not self._interrupted:  # out of time: how far behind (a stop needn't wait to know)
                        stats.most_files_waiting = max(self._small_files(p) for _, p, _ in pending)
                    break
                if self._merge_counted(spec, partition, chosen, stats):
                    merged.add(partition)
                    again.append((spec, partition, date))
            pending = again
        return len(merged)

    def _merge_counted(self, spec: TableSpec, partition: Path, chosen: list[Path], stats: CompactionStats) -> bool:
        """:meth:`merge` ``chosen`` and count it in ``stats``; False if it failed on a damaged file."""
        started = time.perf_counter()
        try:
            rows = self.merge(spec, partition, chosen)
        except MergeInterrupted:
            log.info("compaction interrupted partition=%s", partition.relative_to(self.root))
            stats.unfinished = True
            return False
        except (OSError, duckdb.Error, pa.ArrowException) as exc:
            # Raised on a file whose footer looked whole but whose data is not: find and quarantine
            # it; the partition is merged again next pass.
            bad = self._quarantine_unreadable(chosen)
            stats.files_quarantined += len(bad)
            log.error("compaction of partition=%s failed error=%s", partition.relative_to(self.root), exc)
            if not bad:
                raise
            return False
        stats.durations.append((spec.name, time.perf_counter() - started))
        stats.merges += 1
        stats.files_in += len(chosen)
        stats.files_out += 1
        stats.rows_out += rows
        return True

    def _quarantine_unreadable(self, files: list[Path]) -> list[Path]:
        """Read each of ``files`` whole; quarantine (and return) the ones that cannot be read."""
        bad = []
        for f in files:
            reason = unreadable(f)
            if reason is not None and quarantine_logged(self.root, f, reason):
                bad.append(f)
        return bad

    def _expired(self, date: dt.date | None, today: dt.date) -> bool:
        return bool(self.retention_days) and date is not None and (today - date).days >= self.retention_days

    def _select(self, partition: Path, date: dt.date | None, today: dt.date, now: float) -> list[Path]:
        """Files worth merging: many small ones, or any several once the day is over and quiet.

        A quiet day's only file is rewritten once if it is a flush file (LZ4, unsorted), so every
        settled partition ends as compacted files.
        """
        sizes = {partition / name: (partition / name).stat() for name in live_files(partition)}
        if not sizes:
            return []
        settled = (
            date is not None and date < today and all(now - st.st_mtime > self.settle_seconds for st in sizes.values())
        )
        if len(sizes) == 1:
            (only,) = sizes
            return [only] if settled and not only.name.startswith(COMPACTED_FILE_PREFIX) else []
        small = [f for f, st in sizes.items() if st.st_size < self.small_file_bytes]
        chosen = list(sizes) if settled else small if len(small) >= self.min_files else []
        budget, capped = MAX_MERGE_BYTES, []
        for f in sorted(chosen, key=lambda f: sizes[f].st_size):
            budget -= sizes[f].st_size
            if capped and budget < 0:
                break
            capped.append(f)
        return capped if len(capped) >= 2 else []

    def _small_files(self, partition: Path) -> int:
        """How many of ``partition``'s files are small enough to be merged again."""
        return sum(1 for name in live_files(partition) if (partition / name).stat().st_size < self.small_file_bytes)

    def _deleted_traces(self, spec: TableSpec, partition: Path) -> list[str]:
        """Tombstone files of the partition's project, when ``spec``'s rows belong to traces."""
        if spec.name not in TRACE_COLUMN:
            return []
        project = self.root / "tables" / "deletions" / partition.parent.name
        return [str(day / name) for day in sorted(project.glob("date=*")) for name in live_files(day)]

    @staticmethod
    def _without_deleted(spec: TableSpec) -> str:
        """SQL dropping from a merge the rows that tombstones in ``$deletions`` hide from reads."""
        return (
            "WHERE NOT EXISTS (SELECT 1 FROM read_parquet($deletions, union_by_name = true, "
            f"hive_partitioning = false) d WHERE {hidden_by_deletion(spec.name)})"
        )

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """The pass's DuckDB connection, opened by its first merge and kept until :meth:`close`.

        Later merges sort in the memory the earlier ones freed: with an instance per merge, each
        took all its memory fresh from the kernel, which zeroes every page first (1.3 page faults
        a span against 0.7), and merges took about a quarter more CPU.
        """
        if self._db is None:
            spill = SpillDirectory(self.root, SPILL_USER)
            con = duckdb.connect(
                config={
                    "threads": 1,
                    "memory_limit": "512MB",
                    "temp_directory": str(spill.path),
                    "preserve_insertion_order": False,
                }
            )
            # Off on a connection's own statements (cursors have it off): a merge past 2 s drew a
            # progress bar on stdout, into the collector's log.
            con.execute("SET enable_progress_bar = false")
            self._db = (con, spill)
        return self._db[0]

    def close(self) -> None:
        """Close the DuckDB connection merges share (its memory goes back to the system); a later
        merge opens another. :meth:`run_once` calls it when its pass ends."""
        with self._lock:  # interrupt() never reaches a closed connection
            self._con = None
            if self._db is not None:
                con, spill = self._db
                self._db = None
                con.close()
                spill.close()

    def merge(self, spec: TableSpec, partition: Path, files: list[Path]) -> int:
        """Replace ``files`` of one partition by a single deduplicated, sorted file.

        Rows stream from DuckDB (which sorts within its memory limit, spilling to disk) to the
        Parquet writer a row group at a time, so memory stays bounded whatever the partition size.
        """
        key = ", ".join(spec.key)
        final = partition / f"{COMPACTED_FILE_PREFIX}{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
        rows_in = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        with self._lock:
            if self._interrupted:
                raise MergeInterrupted
            con = self._con = self._connection()
        rows_out = 0
        deleted, params = self._deleted_traces(spec, partition), {"files": [str(f) for f in files]}
        if deleted:
            params["deletions"] = deleted

        def write(tmp: Path) -> None:
            nonlocal rows_out
            # Sorting spills to disk within the memory limit (a window function would not), so
            # duplicates are dropped while streaming: the newest copy of a key comes first.
            reader = con.sql(
                "SELECT * FROM read_parquet($files, union_by_name = true, hive_partitioning = false) t "
                f"{self._without_deleted(spec) if deleted else ''} "
                f"ORDER BY {spec.sort_by}, {key}, ingested_at DESC, ingest_seq DESC",
                params=params,
            ).to_arrow_reader(ROW_GROUP_ROWS)
            options = parquet_options(spec, spec.schema.names, rows_in, ROW_GROUP_ROWS)
            options.pop("row_group_size")
            dedup = _Deduplicator(spec.key)
            with pq.ParquetWriter(tmp, spec.schema, **options) as writer:
                pending: list[pa.RecordBatch] = []
                pending_rows = 0
                for batch in reader:
                    if self._interrupted:
                        raise MergeInterrupted
                    batch = dedup(batch)
                    pending.append(batch)
                    pending_rows += batch.num_rows
                    if pending_rows >= ROW_GROUP_ROWS:
                        writer.write_table(conform(pa.Table.from_batches(pending), spec.schema), ROW_GROUP_ROWS)
                        rows_out += pending_rows
                        pending, pending_rows = [], 0
                if pending:
                    writer.write_table(conform(pa.Table.from_batches(pending), spec.schema), ROW_GROUP_ROWS)
                    rows_out += pending_rows

        try:
            publish(final, write)
        except Exception:
            self.close()  # the next merge starts afresh, whatever state this one left DuckDB in
            if self._interrupted:  # however DuckDB or Arrow reported it
                raise MergeInterrupted from None
            raise
        finally:
            with self._lock:
                self._con = None
        # Deleted later (storage.retired): a read may have listed them and not yet opened them.
        retire(partition, final.name, [f.name for f in files if f != final])
        log.info(
            "compacted partition=%s files_in=%d rows_in=%d rows_out=%d",
            partition.relative_to(self.root),
            len(files),
            rows_in,
            rows_out,
        )
        return rows_out
