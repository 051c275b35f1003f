"""Files written before a column was added are read next to current ones (the column reads NULL)."""

from __future__ import annotations

import datetime as dt
import time

import pyarrow.parquet as pq

from storage.parquet_writer import PartitionedWriter, partition_dir
from storage.query import TableQuery

DAY_US = 86_400_000_000
TODAY_US = int(time.time() // 86400) * DAY_US


def _observation(span_id: str, start_us: int) -> dict:
    return {
        "id": span_id,
        "trace_id": "t1",
        "type": "SPAN",
        "name": span_id,
        "start_time": start_us,
        "level": "DEFAULT",
    }


def _write(root, rows, seq):
    writer = PartitionedWriter(root)
    writer.add("observations", "p", rows, {"ingested_at": seq, "ingest_seq": seq})
    writer.flush()


def _age(path, column: str, name: str | None = None) -> None:
    """Rewrite ``path`` as an older version wrote it: without ``column`` (optionally renamed)."""
    table = pq.read_table(path)
    table = table.select([c for c in table.schema.names if c not in (column, "project_id", "date")])
    target = path.with_name(name) if name else path
    pq.write_table(table, target)
    if target != path:
        path.unlink()


def test_old_and_new_files_in_one_partition_are_read_together(tmp_path):
    _write(tmp_path, [_observation("old", TODAY_US + 1)], 1)
    [old] = partition_dir(tmp_path, "observations", "p", _date()).glob("*.parquet")
    _age(old, "matched_model")
    _write(tmp_path, [_observation("new", TODAY_US + 2) | {"matched_model": "gpt-4o"}], 2)
    rows = TableQuery(tmp_path).query("p", "SELECT id, matched_model FROM {observations} ORDER BY id")
    assert rows == [{"id": "new", "matched_model": "gpt-4o"}, {"id": "old", "matched_model": None}]


def test_an_old_compacted_partition_is_read_next_to_a_new_one(tmp_path):
    _write(tmp_path, [_observation("old", TODAY_US - DAY_US)], 1)
    [old] = partition_dir(tmp_path, "observations", "p", _date(-1)).glob("*.parquet")
    _age(old, "matched_model", name="part-c1-old.parquet")  # as compaction names its output
    _write(tmp_path, [_observation("new", TODAY_US) | {"matched_model": "gpt-4o"}], 2)
    query = TableQuery(tmp_path)
    rows = query.query("p", "SELECT id, matched_model FROM {observations} ORDER BY id")
    assert rows == [{"id": "new", "matched_model": "gpt-4o"}, {"id": "old", "matched_model": None}]
    # The same query again, now with every file's schema remembered.
    assert query.query("p", "SELECT id, matched_model FROM {observations} ORDER BY id") == rows


def _date(offset: int = 0) -> str:
    return (dt.datetime.fromtimestamp(TODAY_US / 1e6, dt.UTC).date() + dt.timedelta(days=offset)).isoformat()
