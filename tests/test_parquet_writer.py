"""PartitionedWriter: the files it publishes hold exactly the rows given, typed, in arrival order and partitioned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.parquet_writer import PartitionedWriter
from storage.schema import TABLES

DAY_US = 86_400_000_000
BASE_US = 20_000 * DAY_US  # 2024-10-04


def _observation(i: int, day: int = 0, **extra: Any) -> dict[str, Any]:
    row = {
        "id": f"span-{i:03d}",
        "trace_id": f"trace-{(i * 7) % 5}",  # unsorted, with ties: flush files keep arrival order
        "type": "GENERATION",
        "start_time": BASE_US + day * DAY_US + i,
        "level": "DEFAULT",
    }
    row.update(extra)
    return row


def _expected(table: str, calls: list[tuple[list[dict[str, Any]], dict[str, Any]]], date_day: int) -> pa.Table:
    """What the writer must produce for one partition: one column at a time, ingest values per call."""
    spec = TABLES[table]
    columns: dict[str, list[Any]] = {f.name: [] for f in spec.schema}
    for rows, ingest in calls:
        for row in rows:
            if row[spec.time_column] // DAY_US != date_day:
                continue
            for name, column in columns.items():
                column.append(ingest[name] if name in ingest else row.get(name))
    arrays = []
    for f in spec.schema:
        values = columns[f.name]
        if pa.types.is_map(f.type):
            values = [list(v.items()) if v is not None else None for v in values]
        arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def _partition_files(root: Path, table: str, project: str = "p") -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for path in sorted((root / "tables" / table / f"project_id={project}").glob("date=*/*.parquet")):
        out.setdefault(path.parent.name.removeprefix("date="), []).append(path)
    return out


def test_rows_with_missing_keys_maps_and_several_ingests_read_back_as_given(tmp_path):
    calls = [
        (
            [
                _observation(0, usage_details={"input": 10, "output": 5}, cost_details={"total": 0.25}),
                _observation(1, name="chat", input='{"q": 1}', usage_details={}, cost_details=None),
                _observation(2, day=1, model="gpt-4o", total_cost=1.5, prompt_version=3),
                _observation(3),
            ],
            {"ingested_at": 1_000, "ingest_seq": 7},
        ),
        (
            [_observation(4, usage_details={"total": 9}), _observation(5, day=1, end_time=BASE_US + DAY_US + 99)],
            {"ingested_at": 2_000, "ingest_seq": 8},
        ),
        ([_observation(6, unknown_key="ignored")], {"ingested_at": 3_000, "ingest_seq": 9}),
    ]
    writer = PartitionedWriter(tmp_path)
    for rows, ingest in calls:
        writer.add("observations", "p", rows, ingest)
    assert writer.buffered_rows == 7

    result = writer.flush()

    assert (result.files, result.rows, result.rows_by_table) == (2, 7, {"observations": 7})
    assert writer.buffered_rows == 0
    files = _partition_files(tmp_path, "observations")
    assert sorted(files) == ["2024-10-04", "2024-10-05"]
    assert result.bytes == sum(path.stat().st_size for paths in files.values() for path in paths)
    for date, paths in files.items():
        assert len(paths) == 1
        written = pq.read_table(paths[0])
        assert written.schema.equals(TABLES["observations"].schema)
        day = (BASE_US // DAY_US) + (date == "2024-10-05")
        assert written.equals(_expected("observations", calls, day))


def test_each_table_keeps_its_schema_and_arrival_order(tmp_path):
    traces = [
        {"id": f"t{i % 3}", "observation_id": f"s{i}", "timestamp": BASE_US + i, "tags": ["a", "b"] if i % 2 else None}
        for i in range(6)
    ]
    scores = [
        {
            "id": f"score-{i}",
            "trace_id": None if i == 2 else f"t{3 - i}",  # nulls sort last
            "name": "quality",
            "data_type": "NUMERIC",
            "value": i / 2,
            "source": "API",
            "timestamp": BASE_US + i,
        }
        for i in range(4)
    ]
    writer = PartitionedWriter(tmp_path)
    writer.add("traces", "p", traces, {"ingested_at": 5, "ingest_seq": 1})
    writer.add("scores", "p", scores, {"ingested_at": 6, "ingest_seq": 2})
    result = writer.flush()

    assert result.rows_by_table == {"traces": 6, "scores": 4}
    for table, rows, ingest in (
        ("traces", traces, {"ingested_at": 5, "ingest_seq": 1}),
        ("scores", scores, {"ingested_at": 6, "ingest_seq": 2}),
    ):
        (path,) = _partition_files(tmp_path, table)["2024-10-04"]
        written = pq.read_table(path)
        assert written.schema.equals(TABLES[table].schema)
        assert written.equals(_expected(table, [(rows, ingest)], BASE_US // DAY_US))
    scores_written = pq.read_table(_partition_files(tmp_path, "scores")["2024-10-04"][0])
    assert scores_written.column("trace_id").to_pylist() == ["t3", "t2", None, "t0"]  # compaction sorts, not flushes


def test_files_keep_the_parquet_options(tmp_path):
    writer = PartitionedWriter(tmp_path)
    rows = [_observation(i, input="x" * 50) for i in range(20)]
    writer.add("observations", "p", rows, {"ingested_at": 1, "ingest_seq": 1})
    writer.flush()
    (path,) = _partition_files(tmp_path, "observations")["2024-10-04"]
    meta = pq.ParquetFile(path).metadata
    group = meta.row_group(0)
    chunks = {group.column(i).path_in_schema: group.column(i) for i in range(meta.num_columns)}
    assert {chunk.compression for chunk in chunks.values()} == {"LZ4"}  # short-lived: compaction writes zstd
    assert all(chunk.has_offset_index for chunk in chunks.values())
    assert chunks["trace_id"].bloom_filter_length and chunks["id"].bloom_filter_length
    assert not chunks["name"].bloom_filter_length
    assert not chunks["input"].has_dictionary_page
    assert chunks["trace_id"].has_dictionary_page
    # Statistics where reads filter or prune (ids, times, the ingest columns), none for long text.
    assert all(chunks[c].is_stats_set for c in ("id", "trace_id", "start_time", "ingested_at", "name"))
    assert not any(chunks[c].is_stats_set for c in ("input", "output", "metadata", "attributes"))


def test_one_file_per_partition_per_flush_and_discard(tmp_path):
    writer = PartitionedWriter(tmp_path)
    ingest = {"ingested_at": 1, "ingest_seq": 1}
    writer.add("observations", "p", [_observation(0)], ingest)
    writer.add("observations", "p", [_observation(1)], {"ingested_at": 2, "ingest_seq": 2})
    writer.add("observations", "q", [_observation(2)], ingest)
    writer.add("observations", "p", [], ingest)
    assert writer.flush().files == 2
    assert writer.flush().files == 0  # nothing buffered after a flush

    writer.add("observations", "p", [_observation(3)], ingest)
    writer.discard()
    assert writer.buffered_rows == 0
    assert writer.flush().files == 0
    assert len(_partition_files(tmp_path, "observations")["2024-10-04"]) == 1
    assert len(_partition_files(tmp_path, "observations", "q")["2024-10-04"]) == 1


def test_a_null_in_a_required_column_fails_the_flush_without_publishing(tmp_path):
    writer = PartitionedWriter(tmp_path)
    row = _observation(0)
    del row["trace_id"]
    writer.add("observations", "p", [row], {"ingested_at": 1, "ingest_seq": 1})
    with pytest.raises(pa.ArrowInvalid):
        writer.flush()
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]


def test_a_column_from_ingest_in_one_call_and_from_the_rows_in_another(tmp_path):
    calls = [
        ([_observation(0), _observation(1)], {"ingested_at": 10, "ingest_seq": 1}),
        ([_observation(2, ingested_at=20), _observation(3, ingested_at=30)], {"ingest_seq": 2}),
    ]
    writer = PartitionedWriter(tmp_path)
    for rows, ingest in calls:
        writer.add("observations", "p", rows, ingest)
    writer.flush()
    (path,) = _partition_files(tmp_path, "observations")["2024-10-04"]
    written = pq.read_table(path)
    assert written.equals(_expected("observations", calls, BASE_US // DAY_US))
    assert sorted(written.column("ingested_at").cast("int64").to_pylist()) == [10, 10, 20, 30]


def test_rows_converted_in_chunks_read_back_as_given(tmp_path):
    sizes = [200, 90, 300, 7, 260, 1]  # some adds convert at once, some wait for more rows or the flush
    calls = []
    start = 0
    for seq, size in enumerate(sizes):
        rows = [_observation(i, usage_details={"n": i} if i % 3 else None) for i in range(start, start + size)]
        calls.append((rows, {"ingested_at": 100 + seq, "ingest_seq": seq}))
        start += size
    writer = PartitionedWriter(tmp_path)
    for rows, ingest in calls:
        writer.add("observations", "p", rows, ingest)
    assert writer.flush().rows == sum(sizes)
    (path,) = _partition_files(tmp_path, "observations")["2024-10-04"]
    assert pq.read_table(path).equals(_expected("observations", calls, BASE_US // DAY_US))


def test_rows_that_do_not_convert_fail_the_flush_not_the_add(tmp_path):
    writer = PartitionedWriter(tmp_path)
    ingest = {"ingested_at": 1, "ingest_seq": 1}
    writer.add("observations", "p", [_observation(i, name=i) for i in range(300)], ingest)  # name must be a string
    writer.add("observations", "p", [_observation(i) for i in range(300, 600)], ingest)
    assert writer.buffered_rows == 600
    with pytest.raises(pa.ArrowTypeError):
        writer.flush()
    writer.discard()
    assert writer.buffered_rows == 0
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]
