"""Read the tables through DuckDB, one project at a time, with duplicates folded.

Every query is scoped to one project by reading only that project's partition directories,
and every value from a caller is a bound parameter. ``{observations}``, ``{traces}``,
``{scores}`` and ``{logs}`` in a query stand for that table's live rows: among rows sharing
the table's key the one ingested last, without rows of deleted traces (and deleted scores);
``{observations_with_content}`` is observations with their GenAI log content joined.
A query that runs longer than its timeout is interrupted and raises :class:`QueryTimeout`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from array import array
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.parquet_writer import COMPACTED_FILE_PREFIX, partition_date, vanished_files_named_in
from storage.partition_index import PartitionIndex, distinct_count, may_hold_any
from storage.retired import live_files
from storage.schema import TABLES, TableSpec, hidden_by_deletion
from storage.spill import SpillDirectory

_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Compaction's output files are named so (see storage/compaction.py); each key occurs once in them.
HIVE_OPTIONS = "hive_partitioning = true, hive_types = {'project_id': 'VARCHAR', 'date': 'DATE'}"
_SCHEMA_CACHE_FILES = 100_000  # files whose schema is remembered; past that the memo starts over


def _empty(spec: TableSpec) -> pa.Table:
    schema = spec.schema.append(pa.field("project_id", pa.string())).append(pa.field("date", pa.date32()))
    return schema.empty_table()


def _concat_json_lists(column: str) -> str:
    """SQL aggregate concatenating JSON array texts (in time order) into one JSON array text."""
    return (
        f"'[' || string_agg(substr({column}, 2, length({column}) - 2), ',' ORDER BY timestamp, id) "
        f"FILTER (WHERE {column} IS NOT NULL AND length({column}) > 2) || ']'"
    )


# GenAI content that instrumentations send as log records fills the input/output of the span the
# records point at, whichever arrived first; content on the span itself wins.
OBSERVATIONS_WITH_CONTENT = f"""
    WITH log_content AS (
        SELECT trace_id, span_id,
               {_concat_json_lists("input_messages")} AS input_messages,
               {_concat_json_lists("output_messages")} AS output_messages
        FROM {{logs}}
        WHERE span_id IS NOT NULL AND (input_messages IS NOT NULL OR output_messages IS NOT NULL)
        GROUP BY trace_id, span_id
    )
    SELECT o.* REPLACE (coalesce(o.input, c.input_messages) AS input, coalesce(o.output, c.output_messages) AS output)
    FROM {{observations}} o
    LEFT JOIN log_content c ON c.trace_id = o.trace_id AND c.span_id = o.id
"""


# The placeholder for observations with their log content joined (see TableQuery._source).
WITH_CONTENT = "observations_with_content"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")

DateWindow = tuple[dt.date | None, dt.date | None]
NO_DAYS: DateWindow = (dt.date.max, dt.date.min)  # a window no partition lies in: nothing is read


_READ_ATTEMPTS = 3  # listings of the files a query reads, when files listed vanish under it


def _newest_ingest(path: Path) -> int | None:
    """The latest ``ingested_at`` (µs) of a file's rows, from its footer's statistics; None if it
    has none or cannot be read."""
    try:
        metadata = pq.read_metadata(path)
        column = metadata.schema.names.index("ingested_at")
        stats = [metadata.row_group(i).column(column).statistics for i in range(metadata.num_row_groups)]
    except (OSError, ValueError, pa.ArrowException):
        return None
    if not stats or not all(s is not None and s.has_min_max for s in stats):
        return None
    return max(s.max_raw for s in stats)


class QueryTimeout(Exception):
    """A query ran longer than its time limit and was cut off."""


class TableQuery:
    """DuckDB over the Parquet tables under ``root``; safe to share between threads."""

    def __init__(self, root: str | Path, *, threads: int = 2, memory_limit: str = "1GB", timeout: float = 10.0) -> None:
        self.root = Path(root)
        self.timeout = timeout
        # The metadata cache keeps footers (row-group stats, bloom filter offsets) of files already
        # read: repeated lookups skip re-reading them, which dominates small queries.
        # Large sorts and aggregations spill under the data directory, not the working directory.
        self._spill = SpillDirectory(self.root, "query")
        self._db = duckdb.connect(
            config={"threads": threads, "memory_limit": memory_limit, "temp_directory": str(self._spill.path)}
        )
        self._db.execute("SET GLOBAL parquet_metadata_cache = true")
        self._lock = threading.Lock()
        # Stand-ins for tables a project has no files of yet: created once in the (in-memory)
        # catalog that every cursor shares — registering them per query cost milliseconds.
        for name, spec in TABLES.items():
            self._db.register("empty_source", _empty(spec))
            self._db.execute(f"CREATE TABLE empty_{name} AS SELECT * FROM empty_source")
            self._db.unregister("empty_source")
        self._trace_facts = PartitionIndex("id")  # traces files: which trace ids each holds
        self._trace_spans = PartitionIndex("trace_id")  # observations files: the same
        self._schemas: dict[Path, bool] = {}
        self._deleted: dict[str, tuple[tuple[Path, ...], tuple[pa.Array, pa.Array]]] = {}  # see _trace_tombstones
        self._later_rows: dict[Path, bool] = {}  # see _may_hold_later_rows

    def close(self) -> None:
        self._db.close()
        self._spill.close()

    def partitions(self, table: str, project_id: str, dates: DateWindow | None) -> list[tuple[Path, list[str]]]:
        """The ``date=`` partitions of one table of one project (within ``dates``, inclusive, if
        given) that hold Parquet files, with those files' names."""
        if not _PROJECT_ID.match(project_id):
            raise ValueError(f"invalid project id {project_id!r}")
        first, last = dates or (None, None)
        found = []
        for partition in sorted((self.root / "tables" / table / f"project_id={project_id}").glob("date=*")):
            try:
                day = partition_date(partition)
            except ValueError:
                continue
            if (first is not None and day < first) or (last is not None and day > last):
                continue
            names = live_files(partition)
            if names:
                found.append((partition, names))
        return found

    def _files(self, table: str, project_id: str, dates: DateWindow | None) -> tuple[list[str], list[str], bool]:
        """What ``read_parquet`` reads for one table of one project, as (files known to hold each
        key once, files of partitions that may hold copies, whether every file listed has the
        table's current schema). A partition that is one compacted file holds no duplicates
        (compaction drops them), so reads skip the dedup window there — the bulk of the data once
        compaction has run. Partitions outside ``dates`` are never opened."""
        clean, dirty, uniform = [], [], True
        for partition, names in self.partitions(table, project_id, dates):
            if len(names) == 1 and names[0].startswith(COMPACTED_FILE_PREFIX):
                clean.append(str(partition / names[0]))
            else:
                dirty.extend(str(partition / name) for name in names)
            uniform = uniform and all(self._current_schema(table, partition / name) for name in names)
        return clean, dirty, uniform

    def _current_schema(self, table: str, path: Path) -> bool:
        """Whether ``path`` has exactly ``table``'s current columns (remembered per file: files
        never change). Files written by older versions may lack columns added since."""
        known = self._schemas.get(path)
        if known is None:
            try:
                known = pq.read_schema(path).remove_metadata().equals(TABLES[table].schema)
            except Exception:  # gone or damaged: the read reports it; unify by name meanwhile
                return False
            if len(self._schemas) >= _SCHEMA_CACHE_FILES:
                self._schemas.clear()
            self._schemas[path] = known
        return known

    def read_trace_index(self, project_id: str) -> None:
        """Read the trace indexes of one project's files now (see :meth:`trace_dates`)."""
        self._trace_facts.load(self.partitions("traces", project_id, None))
        self._trace_spans.load(self.partitions("observations", project_id, None))

    def count_trace_ids(self, project_id: str) -> int | None:
        """How many traces a project has — distinct trace ids of its ``traces`` and
        ``observations`` files, deleted traces left out — from the in-memory trace indexes
        (:func:`storage.partition_index.distinct_count`). None when the caller's query must count:
        a file could not be read (the query reports the damage), or a deleted trace may have rows
        received after its deletion, which it shows."""
        deleted, deleted_at = self._trace_tombstones(project_id)
        files = []
        for index, table in ((self._trace_facts, "traces"), (self._trace_spans, "observations")):
            partitions = self.partitions(table, project_id, None)
            for (partition, names), (_, hashes) in zip(partitions, index.load(partitions), strict=True):
                for name, file_hashes in zip(names, hashes, strict=True):
                    if file_hashes is None:
                        return None
                    if len(deleted) and self._may_hold_later_rows(partition / name, file_hashes, deleted, deleted_at):
                        return None
                    files.append(file_hashes)
        return distinct_count(files, deleted)

    def deleted_trace_hashes(self, project_id: str) -> pa.Array:
        """The hashes (as the trace indexes keep them) of a project's deleted trace ids, as an
        int64 array. Read again only when its tombstone files change: 10k tombstones take ~0.3 s."""
        return self._trace_tombstones(project_id)[0]

    def _trace_tombstones(self, project_id: str) -> tuple[pa.Array, pa.Array]:
        """The hashes of a project's deleted trace ids and, for each, when it was last deleted
        (µs, int64); see :meth:`deleted_trace_hashes`."""
        tombstones = tuple(p / name for p, names in self.partitions("deletions", project_id, None) for name in names)
        known = self._deleted.get(project_id)
        if known is not None and known[0] == tombstones:
            return known[1]
        sql = "SELECT id, epoch_us(max(deleted_at)) AS at FROM {deletions} WHERE kind = 'trace' GROUP BY id"
        latest: dict[int, int] = {}
        for row in self.query(project_id, sql) if tombstones else []:
            key = hash(row["id"])
            latest[key] = max(latest.get(key, row["at"]), row["at"])
        keys = sorted(latest)
        found = (pa.array(keys, pa.int64()), pa.array([latest[k] for k in keys], pa.int64()))
        self._deleted[project_id] = (tombstones, found)  # a race only reads the same files twice
        self._later_rows.clear()  # verdicts against the tombstones before
        return found

    def _may_hold_later_rows(self, path: Path, hashes: array, deleted: pa.Array, deleted_at: pa.Array) -> bool:
        """Whether the file ``path`` (its trace-id ``hashes``) may hold rows of a deleted trace
        received after the deletion: its newest ``ingested_at`` (footer statistics) is later than
        a deletion of a trace it may hold. Remembered per file until the tombstones change."""
        known = self._later_rows.get(path)
        if known is None:
            newest = _newest_ingest(path)
            later = deleted if newest is None else deleted.filter(pc.less(deleted_at, newest))
            if len(self._later_rows) >= _SCHEMA_CACHE_FILES:
                self._later_rows.clear()
            known = self._later_rows[path] = may_hold_any(hashes, later)
        return known

    def trace_dates(self, project_id: str, *trace_ids: str) -> list[dt.date]:
        """The days whose ``traces`` partitions may hold facts of any of ``trace_ids``, oldest
        first (from an in-memory index of the files, see :mod:`storage.partition_index`)."""
        return self._trace_facts.dates(self.partitions("traces", project_id, None), *trace_ids)

    def observation_trace_hashes(
        self, partitions: list[tuple[Path, list[str]]]
    ) -> list[tuple[Path, list[array | None]]]:
        """Per partition of ``partitions`` (all ``observations`` partitions of one project, as
        :meth:`partitions` lists them), the trace-id hashes of each of its files (the index behind
        :meth:`observation_dates`; None for a file that could not be read)."""
        return self._trace_spans.load(partitions)

    def observation_dates(self, project_id: str, *trace_ids: str) -> list[dt.date]:
        """The days whose ``observations`` partitions may hold observations of any of
        ``trace_ids``, oldest first (the same kind of index as :meth:`trace_dates`)."""
        return self._trace_spans.dates(self.partitions("observations", project_id, None), *trace_ids)

    def latest_date(self, project_id: str, tables: tuple[str, ...], not_after: dt.date | None = None) -> dt.date | None:
        """The newest ``date=`` partition holding files of any of ``tables`` for one project; with
        ``not_after``, the newest on or before it if there is one (days after it are left out: a
        span stamped by a clock far ahead must not pass for the project's latest day)."""
        days = [
            partition_date(partition) for table in tables for partition, _ in self.partitions(table, project_id, None)
        ]
        if not_after is not None:
            days = [day for day in days if day <= not_after] or days
        return max(days, default=None)

    def _live_rows(self, table: str, clean: list[str], dirty: list[str], uniform: bool, params: list[Any]) -> str:
        """SQL for the rows of ``clean`` files as they are and of ``dirty`` partitions deduplicated.

        Files of mixed schemas are unified by column name; that costs a schema read per file on
        every query, so files that all have the current schema are read without it."""
        options = HIVE_OPTIONS if uniform else f"{HIVE_OPTIONS}, union_by_name = true"
        parts = []
        if clean:
            params.append(clean)
            parts.append(f"SELECT * FROM read_parquet(?, {options})")
        if dirty:
            params.append(dirty)
            # A row's date partition comes from its own time, so every copy of a key is in the same
            # date=: partitioning the window by date as well lets date filters prune whole directories.
            key = ", ".join(("date", *TABLES[table].key))
            parts.append(
                f"SELECT * FROM read_parquet(?, {options}) "
                f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY ingested_at DESC, ingest_seq DESC) = 1"
            )
        return " UNION ALL BY NAME ".join(f"({part})" for part in parts)

    def _source(
        self, table: str, project_id: str, params: list[Any], dates: DateWindow | None, deletions: list[str]
    ) -> str:
        """SQL for the live rows of one table; ``deletions`` are the project's tombstone files.

        ``observations_with_content`` is observations with GenAI log content joined
        (:data:`OBSERVATIONS_WITH_CONTENT`) — plain observations when no log files are in reach.
        """
        if table == WITH_CONTENT:
            clean, dirty, _ = self._files("logs", project_id, dates)
            if not clean and not dirty:
                return self._source("observations", project_id, params, dates, deletions)
            return f"({self._expand(OBSERVATIONS_WITH_CONTENT, project_id, params, dates, deletions)})"
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        clean, dirty, uniform = self._files(table, project_id, dates)
        if not clean and not dirty:
            return f"(SELECT * FROM empty_{table})"
        rows = self._live_rows(table, clean, dirty, uniform, params)
        if table == "deletions" or not deletions:
            return f"({rows})"
        params.append(deletions)
        tombstones = f"SELECT kind, id, deleted_at FROM read_parquet(?, {HIVE_OPTIONS}, union_by_name = true)"
        hidden = f"SELECT 1 FROM ({tombstones}) d WHERE {hidden_by_deletion(table)}"
        return f"(SELECT t.* FROM ({rows}) t WHERE NOT EXISTS ({hidden}))"

    def query(
        self,
        project_id: str,
        sql: str,
        params: tuple[Any, ...] | list[Any] = (),
        timeout: float | None = None,
        dates: DateWindow | None = None,
    ) -> list[dict[str, Any]]:
        """Run ``sql`` for one project; ``{table}`` placeholders expand to its live rows.

        Placeholders are replaced in the order they appear, so their bound parameters come
        first, then ``params``. ``dates`` (first, last; inclusive, either may be None) limits every
        placeholder to the ``date=`` partitions in that window. Raises :class:`QueryTimeout`
        after ``timeout`` seconds. Files are listed again if one listed is removed before DuckDB
        opens it.
        """
        attempt = 1
        while True:
            bound: list[Any] = []
            # Tombstones are never windowed (a deletion may be recorded on any day), and a repeated
            # tombstone hides the same rows: every placeholder reads all of them, without dedup.
            clean, dirty, _ = self._files("deletions", project_id, None)
            deletions = clean + dirty
            text = self._expand(sql, project_id, bound, dates, deletions)
            try:
                return self._run(text, [*bound, *params], timeout, {})
            except duckdb.IOException as exc:
                # DuckDB opens files as its scan reaches them, and one went meanwhile (a retired
                # merge input whose time was up, retention, a quarantine): a new listing has not it.
                if attempt == _READ_ATTEMPTS or not vanished_files_named_in(self.root, str(exc)):
                    raise
                attempt += 1

    def query_tables(
        self, sql: str, params: list[Any], tables: dict[str, pa.Table], timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Run ``sql`` over Arrow ``tables`` already in memory (named as in the dict), not over
        stored files: e.g. to fold rows a previous query read. Timeout as for :meth:`query`."""
        return self._run(sql, params, timeout, tables)

    def _run(
        self, text: str, params: list[Any], timeout: float | None, tables: dict[str, pa.Table]
    ) -> list[dict[str, Any]]:
        cursor = self._cursor()  # its own connection: registered tables stay local to it
        timer = threading.Timer(timeout or self.timeout, cursor.interrupt)
        timer.start()
        try:
            for name, table in tables.items():
                cursor.register(name, table)
            result = cursor.execute(text, params)
            columns = [d[0] for d in result.description]
            return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]
        except duckdb.InterruptException:
            raise QueryTimeout(f"query took longer than {timeout or self.timeout:g} s and was stopped") from None
        finally:
            timer.cancel()
            cursor.close()

    def _expand(
        self, sql: str, project_id: str, params: list[Any], dates: DateWindow | None, deletions: list[str]
    ) -> str:
        """``sql`` with each ``{table}`` placeholder replaced by its source, in order of appearance."""
        return _PLACEHOLDER.sub(lambda m: self._source(m.group(1), project_id, params, dates, deletions), sql)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._db.cursor()

    # ---------------------------------------------------------------- simple reads
    def count(self, project_id: str, table: str) -> int:
        return self.query(project_id, f"SELECT count(*) AS n FROM {{{table}}}")[0]["n"]

    def observations(self, project_id: str, trace_id: str | None = None) -> list[dict[str, Any]]:
        """Observations of a project (optionally of one trace), oldest first, with log content joined."""
        where, params = ("WHERE o.trace_id = ?", (trace_id,)) if trace_id is not None else ("", ())
        return self.query(project_id, f"SELECT * FROM {{{WITH_CONTENT}}} o {where} ORDER BY o.start_time, o.id", params)

    def recent_traces(self, project_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The latest traces: id, start, duration, span count, errors, name and service of the root."""
        return self.query(
            project_id,
            """
            WITH spans AS (
                SELECT trace_id,
                       min(start_time) AS start_time,
                       max(coalesce(end_time, start_time)) AS end_time,
                       count(*) AS spans,
                       count(*) FILTER (WHERE level = 'ERROR') AS errors,
                       arg_min(name, (parent_observation_id IS NOT NULL, start_time)) AS root_name,
                       arg_min(service_name, (parent_observation_id IS NOT NULL, start_time)) AS service_name
                FROM {observations} GROUP BY trace_id
            ),
            facts AS (
                SELECT id, arg_max(name, ingested_at) FILTER (WHERE name IS NOT NULL) AS name
                FROM {traces} GROUP BY id
            )
            SELECT spans.trace_id, spans.start_time, spans.end_time, spans.spans, spans.errors,
                   coalesce(facts.name, spans.root_name) AS name, spans.service_name
            FROM spans LEFT JOIN facts ON facts.id = spans.trace_id
            ORDER BY spans.start_time DESC LIMIT ?
            """,
            (limit,),
        )
