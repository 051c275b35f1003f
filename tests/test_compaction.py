"""Compaction folds duplicates and small files without changing what reads return; retention drops old days."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

from collector.batch import StopFlag, compact, compact_in_worker, init_worker
from collector.server import COMPACTION_BEHIND_FILES, compaction_pause
from storage import compaction
from storage.compaction import CompactionStats, Compactor, partitions
from storage.parquet_writer import COMPACTED_FILE_PREFIX, PartitionedWriter
from storage.query import TableQuery
from storage.retired import RETIRED_SECONDS, RETIRED_SUFFIX, live_files, live_paths, remove_expired
from tests.conftest import wait_until
from tests.faults.helpers import send
from tests.otlp_helpers import basic_auth, make_span, trace_request

DAY_US = 86_400_000_000
NOW = time.time()
TODAY_US = int(NOW // 86400) * DAY_US


def _observation(span_id: str, trace_id: str, start_us: int, name: str) -> dict:
    return {
        "id": span_id,
        "trace_id": trace_id,
        "type": "SPAN",
        "name": name,
        "start_time": start_us,
        "level": "DEFAULT",
    }


def _write(writer: PartitionedWriter, rows: list[dict], seq: int, project: str = "p") -> None:
    writer.add("observations", project, rows, {"ingested_at": seq * 1000, "ingest_seq": seq})
    writer.flush()


def _files(root: Path, date: str, project: str = "p") -> list[Path]:
    partition = root / "tables/observations" / f"project_id={project}" / f"date={date}"
    return [partition / name for name in live_files(partition)]


def test_merging_small_files_keeps_the_latest_version_of_each_row(tmp_path):
    writer = PartitionedWriter(tmp_path)
    for seq in range(10):  # every flush re-sends span "a" (a retry) with a newer name
        _write(
            writer,
            [
                _observation("a", "t1", TODAY_US + 5, f"v{seq}"),
                _observation(f"b{seq}", f"t{seq % 3}", TODAY_US + seq, "b"),
            ],
            seq,
        )
    date = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    assert len(_files(tmp_path, date)) == 10
    query = TableQuery(tmp_path)
    before = query.query("p", "SELECT id, name FROM {observations} ORDER BY id")

    stats = Compactor(tmp_path, min_files=8).run_once(now=NOW)
    assert (stats.partitions, stats.files_in, stats.files_out, stats.rows_out) == (1, 10, 1, 11)
    [merged] = _files(tmp_path, date)
    table = pq.read_table(merged)
    assert table.num_rows == 11  # the nine stale copies of "a" are gone
    assert table.column("trace_id").to_pylist() == sorted(table.column("trace_id").to_pylist())
    metadata = pq.ParquetFile(merged).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert query.query("p", "SELECT id, name FROM {observations} ORDER BY id") == before
    assert {r["name"] for r in before if r["id"] == "a"} == {"v9"}
    query.close()


def test_the_deduplicator_keeps_each_keys_first_row_across_batches_as_reads_partition_keys():
    """Nulls are one key and differ from "" (as ``PARTITION BY`` in reads); runs span batch edges."""
    import pyarrow as pa

    dedup = compaction._Deduplicator(("id", "observation_id"))

    def batch(ids: list[str], observations: list[str | None]) -> pa.RecordBatch:
        return pa.record_batch({"id": ids, "observation_id": observations, "n": list(range(len(ids)))})

    kept = [
        dedup(batch(["a", "a", "a", "a", "b"], [None, None, "", "x", "x"])),
        dedup(batch(["b", "b", "c"], ["x", "y", None])),  # the first row repeats the last one before
        dedup(batch(["c"], [None])),
        dedup(batch([], [])),
        dedup(batch(["d", "e"], ["x", "x"])),
    ]
    rows = [(r["id"], r["observation_id"]) for b in kept for r in b.to_pylist()]
    assert rows == [("a", None), ("a", ""), ("a", "x"), ("b", "x"), ("b", "y"), ("c", None), ("d", "x"), ("e", "x")]
    unique = batch(["f", "g"], [None, "z"])
    assert dedup(unique) is unique  # nothing dropped: the batch is passed on, not copied


def test_few_files_of_today_are_left_alone(tmp_path):
    writer = PartitionedWriter(tmp_path)
    for seq in range(3):
        _write(writer, [_observation(f"s{seq}", "t", TODAY_US + seq, "x")], seq)
    assert Compactor(tmp_path, min_files=8).run_once(now=NOW).partitions == 0


def test_a_finished_quiet_day_is_merged_whole(tmp_path):
    writer = PartitionedWriter(tmp_path)
    for seq in range(3):
        _write(writer, [_observation(f"s{seq}", "t", TODAY_US - DAY_US + seq, "x")], seq)
    compactor = Compactor(tmp_path, min_files=8, settle_seconds=0)
    stats = compactor.run_once(now=time.time() + 1)
    assert (stats.partitions, stats.files_in) == (1, 3)
    yesterday = (dt.datetime.fromtimestamp(NOW, dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    assert len(_files(tmp_path, yesterday)) == 1


def test_a_quiet_days_only_flush_file_is_rewritten_once_as_a_compacted_file(tmp_path):
    writer = PartitionedWriter(tmp_path)
    rows = [_observation(f"s{i}", f"t{(i * 7) % 5}", TODAY_US - DAY_US + i, "x") for i in range(10)]
    _write(writer, [*rows, _observation("s0", "t0", TODAY_US - DAY_US, "retried")], 1)
    _write(writer, [_observation("today", "t", TODAY_US, "x")], 2)
    yesterday = (dt.datetime.fromtimestamp(NOW, dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    [flushed] = _files(tmp_path, yesterday)
    assert pq.ParquetFile(flushed).metadata.row_group(0).column(0).compression == "LZ4"
    compactor = Compactor(tmp_path, min_files=8, settle_seconds=0)

    stats = compactor.run_once(now=time.time() + 1)
    assert (stats.partitions, stats.files_in, stats.files_out) == (1, 1, 1)  # today's lone file is left alone
    [compacted] = _files(tmp_path, yesterday)
    assert compacted.name.startswith("part-c")
    table = pq.read_table(compacted)
    assert table.num_rows == 10
    assert table.column("trace_id").to_pylist() == sorted(table.column("trace_id").to_pylist())
    assert pq.ParquetFile(compacted).metadata.row_group(0).column(0).compression == "ZSTD"
    assert compactor.run_once(now=time.time() + 1).partitions == 0  # once only
    assert _files(tmp_path, yesterday) == [compacted]


def test_retention_deletes_whole_old_partitions_only(tmp_path):
    writer = PartitionedWriter(tmp_path)
    _write(
        writer,
        [
            _observation("old", "t", TODAY_US - 10 * DAY_US, "old"),
            _observation("recent", "t", TODAY_US - 2 * DAY_US, "recent"),
            _observation("now", "t", TODAY_US, "now"),
        ],
        1,
    )
    stats = Compactor(tmp_path, retention_days=7).run_once(now=NOW)
    assert stats.partitions_deleted == 1
    query = TableQuery(tmp_path)
    assert {r["id"] for r in query.observations("p")} == {"recent", "now"}
    query.close()
    assert len(partitions(tmp_path, "observations")) == 2


def test_retention_zero_keeps_everything(tmp_path):
    writer = PartitionedWriter(tmp_path)
    _write(writer, [_observation("ancient", "t", 0, "epoch")], 1)
    assert Compactor(tmp_path, retention_days=0).run_once(now=NOW).partitions_deleted == 0
    assert _files(tmp_path, "1970-01-01")


def test_queries_never_cross_projects(tmp_path):
    writer = PartitionedWriter(tmp_path)
    _write(writer, [_observation("mine", "t", TODAY_US, "x")], 1, project="a")
    _write(writer, [_observation("theirs", "t", TODAY_US, "x")], 2, project="b")
    query = TableQuery(tmp_path)
    assert [r["id"] for r in query.observations("a")] == ["mine"]
    assert [r["id"] for r in query.observations("b")] == ["theirs"]
    assert query.observations("c") == []
    query.close()


def test_rows_written_after_compaction_still_fold_with_the_compacted_file(tmp_path):
    """A compacted partition is read without the dedup step; once a new copy of a key lands beside
    it, the partition is folded again and the newest copy wins."""
    writer = PartitionedWriter(tmp_path)
    for seq in range(8):
        _write(
            writer,
            [_observation("a", "t1", TODAY_US + 5, f"v{seq}"), _observation(f"b{seq}", "t2", TODAY_US, "b")],
            seq,
        )
    Compactor(tmp_path, min_files=8).run_once(now=NOW)
    date = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    [compacted] = _files(tmp_path, date)
    query = TableQuery(tmp_path)
    assert query._files("observations", "p", None)[:2] == ([str(compacted)], [])
    rows = query.query("p", "SELECT id, name FROM {observations} ORDER BY id")
    assert len(rows) == 9 and {r["name"] for r in rows if r["id"] == "a"} == {"v7"}

    _write(writer, [_observation("a", "t1", TODAY_US + 5, "v8")], 8)  # a late retry of "a"
    assert query._files("observations", "p", None)[0] == []
    rows = query.query("p", "SELECT id, name FROM {observations} ORDER BY id")
    assert len(rows) == 9 and {r["name"] for r in rows if r["id"] == "a"} == {"v8"}
    query.close()


def test_one_pass_keeps_merging_while_a_partition_has_enough_small_files(tmp_path, monkeypatch):
    # A busy day writes small files faster than one merge (capped in bytes) per pass takes them:
    # a pass goes on until fewer than ``min_files`` small files are left.
    writer = PartitionedWriter(tmp_path)
    for seq in range(24):
        _write(writer, [_observation(f"s{seq}-{i}", f"t{i}", TODAY_US + seq, "x") for i in range(20)], seq)
    date = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    one_file = max(f.stat().st_size for f in _files(tmp_path, date))
    monkeypatch.setattr(compaction, "MAX_MERGE_BYTES", 4 * one_file)  # a merge takes about four files

    stats = Compactor(tmp_path, min_files=4).run_once(now=NOW)
    assert stats.merges > 1 and not stats.unfinished
    assert len(_files(tmp_path, date)) < 24 // 4  # a merge per pass would have left 21
    assert Compactor(tmp_path, min_files=4).run_once(now=NOW).merges == 0  # nothing was left for later
    query = TableQuery(tmp_path)
    assert query.query("p", "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM {observations}") == [
        {"n": 480, "ids": 480}
    ]
    query.close()


def test_a_pass_opens_one_duckdb_for_all_its_merges_and_closes_it_at_the_end(tmp_path, monkeypatch):
    """Merges reuse the memory of the ones before (storage.compaction: _connection); none outlives the pass."""
    writer = PartitionedWriter(tmp_path)
    for seq in range(24):
        _write(writer, [_observation(f"s{seq}-{i}", f"t{i}", TODAY_US + seq, "x") for i in range(20)], seq)
        _write(writer, [_observation(f"o{seq}", "t0", TODAY_US + seq, "x")], seq, project="q")
    date = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    one_file = max(f.stat().st_size for f in _files(tmp_path, date))
    monkeypatch.setattr(compaction, "MAX_MERGE_BYTES", 4 * one_file)
    opened: list[object] = []
    connect = compaction.duckdb.connect

    def counted(*args, **kwargs):
        opened.append(con := connect(*args, **kwargs))
        return con

    monkeypatch.setattr(compaction.duckdb, "connect", counted)
    stats = Compactor(tmp_path, min_files=4).run_once(now=NOW)
    assert stats.merges >= 6 and stats.partitions == 2
    assert len(opened) == 1
    with pytest.raises(Exception, match="closed"):
        opened[0].execute("SELECT 1")
    assert not [p for p in (tmp_path / "tmp" / "compaction").iterdir()]  # its spill directory went with it
    query = TableQuery(tmp_path)
    assert query.query("p", "SELECT count(*) AS n FROM {observations}") == [{"n": 480}]
    assert query.query("q", "SELECT count(*) AS n FROM {observations}") == [{"n": 24}]
    query.close()


def test_a_pass_out_of_time_says_so_and_the_next_one_goes_on(tmp_path, monkeypatch):
    writer = PartitionedWriter(tmp_path)
    for seq in range(12):
        _write(writer, [_observation(f"s{seq}", "t", TODAY_US + seq, "x")], seq)
    date = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    monkeypatch.setattr(compaction, "MAX_MERGE_BYTES", 2 * max(f.stat().st_size for f in _files(tmp_path, date)))
    compactor = Compactor(tmp_path, min_files=2)

    first = compactor.run_once(now=NOW, budget_seconds=0)  # out of time after its first merge
    assert (first.partitions, first.merges, first.unfinished) == (1, 1, True)
    assert len(_files(tmp_path, date)) == 11
    assert first.most_files_waiting == 11  # the merged file is still small
    second = compactor.run_once(now=NOW)
    assert second.merges > 1 and not second.unfinished
    assert len(_files(tmp_path, date)) <= 11 - second.merges
    assert compactor.run_once(now=NOW).merges == 0


def test_passes_out_of_time_take_turns_between_busy_partitions(tmp_path, monkeypatch):
    writer = PartitionedWriter(tmp_path)
    for seq in range(6):
        for project in ("a", "b"):
            _write(writer, [_observation(f"{project}{seq}", "t", TODAY_US + seq, "x")], seq, project)
    date = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    largest = max(f.stat().st_size for p in ("a", "b") for f in _files(tmp_path, date, p))
    monkeypatch.setattr(compaction, "MAX_MERGE_BYTES", 2 * largest)
    compactor = Compactor(tmp_path, min_files=2)

    merged_by_pass = []
    for _ in range(4):
        before = {p: len(_files(tmp_path, date, p)) for p in ("a", "b")}
        stats = compactor.run_once(now=NOW, budget_seconds=0)
        assert stats.merges == 1
        after = {p: len(_files(tmp_path, date, p)) for p in ("a", "b")}
        assert stats.most_files_waiting == max(after.values())
        time.sleep(0.01)  # the next compacted file is visibly newer
        merged_by_pass.append(next(p for p in ("a", "b") if after[p] < before[p]))
    assert merged_by_pass == ["a", "b", "a", "b"]


def _big_partition(root: Path, files: int, rows_per_file: int) -> tuple[str, dict[Path, bytes]]:
    """A partition of ``files`` flush files: its date and each file's bytes."""
    writer = PartitionedWriter(root)
    for seq in range(files):
        rows = [_observation(f"s{seq}-{n}", f"t{n % 97}", TODAY_US + n, "x") for n in range(rows_per_file)]
        _write(writer, rows, seq)
    date = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    return date, {f: f.read_bytes() for f in _files(root, date)}


def _left_as_it_was(root: Path, date: str, contents: dict[Path, bytes]) -> None:
    assert _files(root, date) == sorted(contents)
    assert all(f.read_bytes() == data for f, data in contents.items())
    assert not [p for p in root.rglob("*") if p.is_file() and ".tmp" in p.name]


def test_an_interrupted_merge_leaves_its_files_as_they_were_and_the_next_pass_merges_them(tmp_path, monkeypatch):
    """A stopping collector interrupts compaction: the merge being streamed is abandoned."""
    date, contents = _big_partition(tmp_path, files=8, rows_per_file=4_000)  # 4 row groups streamed
    compactor = Compactor(tmp_path, min_files=8)
    deduplicate = compaction._Deduplicator.__call__

    def interrupted_after_first_batch(self, batch):
        compactor.interrupt()  # as the collector's stop would, from another thread
        return deduplicate(self, batch)

    monkeypatch.setattr(compaction._Deduplicator, "__call__", interrupted_after_first_batch)
    stats = compactor.run_once(now=NOW)
    assert (stats.unfinished, stats.merges, stats.files_quarantined) == (True, 0, 0)
    _left_as_it_was(tmp_path, date, contents)

    monkeypatch.setattr(compaction._Deduplicator, "__call__", deduplicate)
    stats = Compactor(tmp_path, min_files=8).run_once(now=NOW)
    assert (stats.merges, stats.rows_out) == (1, 32_000)
    assert TableQuery(tmp_path).query("p", "SELECT count(*) AS n FROM {observations}") == [{"n": 32_000}]


def test_an_interrupt_from_another_thread_while_merging_ends_the_merge(tmp_path):
    """Wherever it lands: DuckDB's sort (interrupted in DuckDB) or the streaming (a flag checked per batch)."""
    date, contents = _big_partition(tmp_path, files=8, rows_per_file=20_000)
    compactor = Compactor(tmp_path, min_files=8)

    def interrupt_once_merging() -> None:
        deadline = time.monotonic() + 60
        while compactor._con is None and time.monotonic() < deadline:
            time.sleep(0.001)
        compactor.interrupt()

    interrupter = threading.Thread(target=interrupt_once_merging)
    interrupter.start()
    stats = compactor.run_once(now=NOW)
    interrupter.join()
    assert (stats.unfinished, stats.merges, stats.files_quarantined) == (True, 0, 0)
    _left_as_it_was(tmp_path, date, contents)


def test_a_pass_started_after_the_stop_merges_nothing_in_a_worker_process(tmp_path):
    """The collector's stop event reaches pool workers through their initializer."""
    date, contents = _big_partition(tmp_path, files=8, rows_per_file=100)
    context = multiprocessing.get_context("forkserver")
    stopping = StopFlag(context)
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=init_worker, initargs=(str(tmp_path), [], stopping)
    ) as pool:
        stopping.set()
        stats = pool.submit(compact_in_worker, str(tmp_path), 0).result()
    assert (stats.unfinished, stats.merges) == (True, 0)
    _left_as_it_was(tmp_path, date, contents)
    assert compact(str(tmp_path), 0, None, StopFlag(context)).merges == 1  # not stopping: merged


def test_compaction_pauses_less_the_further_it_falls_behind():
    finished = CompactionStats(merges=3)
    behind = CompactionStats(merges=3, unfinished=True, most_files_waiting=COMPACTION_BEHIND_FILES)
    losing = CompactionStats(merges=3, unfinished=True, most_files_waiting=COMPACTION_BEHIND_FILES + 1)
    assert compaction_pause(finished, interval=60, pass_seconds=12) == 60
    assert compaction_pause(behind, interval=60, pass_seconds=12) == 12  # half of one worker
    assert compaction_pause(behind, interval=5, pass_seconds=12) == 5
    assert compaction_pause(losing, interval=60, pass_seconds=12) == 0  # a whole worker until caught up


def test_a_running_collector_compacts_in_its_workers_and_logs_it_in_its_own_format(server_process):
    # Merges run in pool workers: their log lines must reach the collector's log, formatted as its own.
    server = server_process(parquet={"flush_interval": "100ms", "compaction_interval": "1s", "workers": 1})
    server.start()
    url = f"http://127.0.0.1:{server.http_port}/v1/traces"
    headers = {"authorization": basic_auth(), "content-type": "application/x-protobuf"}
    flushed = server.data_dir / "tables" / "observations"
    for i in range(Compactor(server.data_dir).min_files):  # one flush file each: enough to merge
        body = trace_request([make_span(name=f"s{i}")]).SerializeToString()
        assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 200
        wait_until(lambda n=i + 1: len(list(flushed.glob("**/*.parquet"))) >= n)
    line = re.compile(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO spanfuse\.compaction compacted "
        r"partition=tables/observations/project_id=default/date=\S+ files_in=8 rows_in=8 rows_out=8$",
        re.MULTILINE,
    )
    wait_until(lambda: line.search(server.log_path.read_text()), timeout=20)
    assert [f.name.startswith(COMPACTED_FILE_PREFIX) for f in live_paths(flushed)] == [True]
    assert server.terminate() == 0


def _stored_names(data_dir: Path) -> list[str]:
    files = live_paths(data_dir / "tables" / "observations")
    return [name for f in files for name in pq.read_table(f, columns=["name"]).column("name").to_pylist()]


def test_a_running_collector_replaces_workers_killed_while_idle_with_one_warning(server_process):
    # The OOM killer takes the workers while no batch comes: compaction meets the broken pool
    # first. One warning line each, no traceback, new workers at once, and ingest goes on.
    server = server_process(parquet={"flush_interval": "100ms", "compaction_interval": "1s", "workers": 1})
    server.start()
    assert server.proc is not None

    def export(name: str) -> None:
        assert send(server.http_port, server.grpc_port, [make_span(name=name)], "http").ok
        wait_until(lambda: name in _stored_names(server.data_dir), timeout=20)

    export("before")  # the pool's worker exists now: it wrote this batch
    (forkserver,) = [p for p in psutil.Process(server.proc.pid).children() if "forkserver" in " ".join(p.cmdline())]
    workers = forkserver.children()
    assert workers
    for worker in workers:
        worker.kill()
    log = server.log_path
    wait_until(lambda: "compaction pass ended: a worker process died" in log.read_text(), timeout=20)
    wait_until(lambda: "worker processes died; starting new ones" in log.read_text(), timeout=20)
    export("after")
    assert server.terminate() == 0
    assert "Traceback" not in log.read_text()
    assert sorted(_stored_names(server.data_dir)) == ["after", "before"]


def _compacted_partition_and_reader(tmp_path: Path) -> tuple[PartitionedWriter, Path, TableQuery]:
    """A partition that is one compacted file of 800 rows, and a reader of it."""
    writer = PartitionedWriter(tmp_path)
    _flush_files(writer, 0, 8)
    Compactor(tmp_path, min_files=8).run_once(now=NOW)
    date = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    (listed,) = _files(tmp_path, date)
    return writer, listed, TableQuery(tmp_path)


def _flush_files(writer: PartitionedWriter, first: int, count: int) -> None:
    for seq in range(first, first + count):
        _write(writer, [_observation(f"s{seq}-{n}", "t", TODAY_US + n, "x") for n in range(100)], seq)


@pytest.mark.parametrize(("expired", "counted"), [(False, 800), (True, 1_600)])
def test_a_read_whose_listed_files_a_merge_replaced(tmp_path, monkeypatch, expired, counted):
    # DuckDB opens files as its scan reaches them. A merge that finished between a read's listing
    # and the open used to delete the listed file at once (the REST API answered 500 while a
    # backfill's partitions were compacted). Its inputs now stay, retired, for longer than reads
    # run: the read counts what it listed. Should a listed file be gone all the same (its time
    # was up, retention, a quarantine), the read lists again and counts the merged file.
    writer, listed, query = _compacted_partition_and_reader(tmp_path)
    run = query._run
    merged_meanwhile = []

    def merge_before_the_first_run(text, *args):
        if not merged_meanwhile:
            _flush_files(writer, 8, 8)
            merged_meanwhile.append(Compactor(tmp_path, min_files=8).run_once(now=NOW).merges)
            assert str(listed) in repr(args)  # a one-file partition is read by name
            assert listed.exists() and listed.name not in live_files(listed.parent)  # retired
            if expired:  # both merges' inputs: 8 flush files, then the listed file and 8 more
                assert remove_expired(listed.parent, time.time(), after=0) == 8 + 9
        return run(text, *args)

    monkeypatch.setattr(query, "_run", merge_before_the_first_run)
    assert query.query("p", "SELECT count(*) AS n FROM {observations}") == [{"n": counted}]
    assert merged_meanwhile == [1]
    assert query.query("p", "SELECT count(*) AS n FROM {observations}") == [{"n": 1_600}]
    (merged,) = live_files(listed.parent)
    assert merged.startswith(COMPACTED_FILE_PREFIX) and merged != listed.name


def test_retired_files_are_deleted_once_their_time_is_up(tmp_path):
    writer = PartitionedWriter(tmp_path)
    _flush_files(writer, 0, 8)
    partition = _files(tmp_path, dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat())[0].parent
    inputs = sorted(partition.iterdir())
    assert Compactor(tmp_path, min_files=8).run_once(now=NOW).merges == 1
    on_disk = sorted(p.name for p in partition.iterdir())
    (merged,) = live_files(partition)
    (marker,) = [name for name in on_disk if name.endswith(RETIRED_SUFFIX)]
    assert on_disk == sorted([merged, marker, *(p.name for p in inputs)])  # the inputs are kept a while
    assert remove_expired(partition, time.time(), after=RETIRED_SECONDS) == 0
    # A pass deletes them (then the marker) once they have been retired for its retired_seconds.
    Compactor(tmp_path, min_files=8, retired_seconds=0).run_once()
    assert sorted(p.name for p in partition.iterdir()) == [merged]
    assert TableQuery(tmp_path).count("p", "observations") == 800


def test_merges_draw_no_progress_bar_into_the_log(tmp_path, monkeypatch, capfd):
    # DuckDB draws a progress bar on stdout for a statement running past 2 s on a connection of
    # its own (cursors have it off): big merges drew bars into the collector's log.
    connect = compaction.duckdb.connect

    def as_if_slow(*args, **kwargs):
        con = connect(*args, **kwargs)
        con.execute("SET progress_bar_time = 10")  # ms: as if every merge took longer than 2 s
        return con

    _big_partition(tmp_path, files=8, rows_per_file=20_000)
    monkeypatch.setattr(compaction.duckdb, "connect", as_if_slow)
    capfd.readouterr()
    assert Compactor(tmp_path, min_files=8).run_once(now=NOW).merges == 1
    out, err = capfd.readouterr()
    assert "%" not in out + err, (out + err)[:300]
