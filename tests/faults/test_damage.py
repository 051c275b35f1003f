"""Damaged files: start-up and compaction set them aside, report them, and lose nothing else.

- A half-written part file (a crash mid-write of a non-temporary file, a partial copy) and a file
  of garbage in a table partition are moved to ``data/quarantine/`` at start-up, each named in a
  log line; every other row stays readable over the REST API.
- A stray temporary file from a crash, and the spill files of a DuckDB sort killed midway, are
  removed at start-up, and logged; a compaction pass removes those of a merge killed with its worker.
- A file whose footer looks whole but whose data is not (arrives while running) is quarantined by
  the next compaction pass, which still merges the rest of the partition.
- End to end through a real process: SIGKILL, then a garbled frame mid-segment and a torn tail
  in the WAL; the restarted server reports what it skipped and serves every other acknowledged span.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from storage.compaction import SPILL_USER, Compactor
from storage.parquet_writer import parquet_damage
from storage.query import TableQuery
from storage.retired import live_paths
from tests.conftest import PK, SK, config_dict, wait_until
from tests.faults.helpers import Ledger, check_exactly_once, numbered_spans, record, send, stored


def _part_files(data_dir: Path) -> list[Path]:
    return live_paths(data_dir / "tables" / "observations")


def _seed(server, ledger: Ledger, prefix: str, requests: int = 3) -> None:
    for number in range(requests):
        spans = numbered_spans(f"{prefix}{number}", 10)
        outcome = send(server.http_port, server.grpc_port, spans, ("http", "grpc")[number % 2])
        assert outcome.ok, outcome
        record(ledger, spans, outcome)
    wait_until(lambda: len(stored(server.query)) == len(ledger.acked), timeout=30)


def _rest_ids(server) -> set[str]:
    response = httpx.get(
        f"http://127.0.0.1:{server.http_port}/api/public/observations", params={"limit": 100}, auth=(PK, SK), timeout=30
    )
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["data"]}


def test_startup_quarantines_broken_part_files_removes_temporaries_and_serves_the_rest(start_server, tmp_path, caplog):
    data_dir = tmp_path / "data"
    settings = {"data_dir": data_dir, "parquet": {"flush_interval": "100ms", "workers": 0}}
    server = start_server(**settings)
    ledger = Ledger()
    _seed(server, ledger, "seed")
    server.stop()

    good = _part_files(data_dir)[0]
    partition = good.parent
    half = partition / "part-0000000000000-crashed-000001.parquet"  # a crash mid-write of a final name
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = partition.parent / "date=2024-01-01" / "part-0000000000000-copied-000001.parquet"
    garbage.parent.mkdir()
    garbage.write_bytes(b"PAR1" + os.urandom(3000))
    stray = partition / "part-0000000000001-crashed-000002.parquet.1a2b3c4d.tmp"
    stray.write_bytes(good.read_bytes()[:100])

    with caplog.at_level(logging.INFO):
        server = start_server(**settings)
    messages = [r.getMessage() for r in caplog.records]
    for damaged in (half, garbage):
        relative = damaged.relative_to(data_dir)
        assert any("quarantined" in m and str(relative) in m for m in messages), messages
        assert not damaged.exists()
        assert (data_dir / "quarantine" / relative).exists(), "a damaged file was deleted, not set aside"
    assert any("removed unfinished file" in m and stray.name in m for m in messages), messages
    assert not stray.exists()

    assert _rest_ids(server) == set(ledger.acked)
    _seed(server, ledger, "after")
    check_exactly_once(stored(server.query), ledger.acked)


# A DuckDB sort larger than its memory limit, in its own spill directory: it spills, as a big
# compaction merge does. Or (with no output path) a process that holds a spill directory with a
# file in it and waits: one spilling right now, say a `spanfuse traces` beside the collector.
_SPILLER = """
import sys, time, duckdb
from pathlib import Path
from storage.spill import SpillDirectory
spill = SpillDirectory(Path(sys.argv[1]), sys.argv[2])
print(spill.path, flush=True)
if len(sys.argv) < 4:
    (spill.path / "duckdb_temp_storage_DEFAULT-0.tmp").write_bytes(b"x" * 4096)
    time.sleep(120)
con = duckdb.connect(config={"threads": 1, "memory_limit": "64MB", "temp_directory": str(spill.path)})
rows = "select hash(i)::varchar || repeat('x', 50) s from range(20000000) t(i)"
con.execute(f"copy ({rows} order by s) to '{sys.argv[3]}'")
"""


def _spiller(data_dir: Path, user: str, *output: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process with a spill directory of ``user``, and the directory, once spill files are in it."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SPILLER, str(data_dir), user, *map(str, output)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    spill = Path(process.stdout.readline().strip())
    wait_until(lambda: any(p.suffix == ".tmp" for p in spill.iterdir()), timeout=120)
    return process, spill


def _spill_files_of_a_killed_sort(data_dir: Path, user: str, scratch: Path) -> list[Path]:
    """Start a spilling sort in a spill directory of ``user``, kill it midway; the files it left."""
    sort, spill = _spiller(data_dir, user, scratch / "sorted.parquet")
    sort.kill()
    sort.wait(timeout=30)
    left = [p for p in spill.iterdir() if p.suffix == ".tmp"]
    assert left, "the killed sort left nothing to clean"
    return left


def test_spill_files_of_a_process_killed_mid_sort_are_removed_at_start_and_a_live_ones_kept(
    start_server, tmp_path, caplog
):
    data_dir = tmp_path / "data"
    left = _spill_files_of_a_killed_sort(data_dir, "query", tmp_path)
    live, spilling = _spiller(data_dir, "query")
    try:
        with caplog.at_level(logging.INFO):
            start_server(data_dir=data_dir, parquet={"workers": 0})
        assert any("removed spill files of a killed process" in r.getMessage() for r in caplog.records)
        assert not any(p.exists() for p in left)
        assert any(p.suffix == ".tmp" for p in spilling.iterdir()), "the spill files of a running query were removed"
    finally:
        live.kill()
        live.wait(timeout=30)


def test_a_compaction_pass_removes_the_spill_files_of_a_merge_killed_with_its_worker(tmp_path, caplog):
    # The OOM killer's likeliest victim is a worker in a large merge: the collector goes on, and
    # the next pass removes what the killed one left.
    left = _spill_files_of_a_killed_sort(tmp_path, SPILL_USER, tmp_path)
    with caplog.at_level(logging.INFO):
        Compactor(tmp_path).run_once()
    assert any("removed spill files of a killed process" in r.getMessage() for r in caplog.records)
    assert not any(p.exists() for p in left)
    assert not list((tmp_path / "tmp" / SPILL_USER).iterdir()), "the killed merge's directory is left"


def test_compaction_quarantines_a_file_broken_inside_and_merges_the_rest(start_server, tmp_path, caplog):
    data_dir = tmp_path / "data"
    server = start_server(data_dir=data_dir, parquet={"flush_interval": "100ms", "workers": 0})
    ledger = Ledger()
    for round_ in range(3):  # three flushes: three small files in the partition
        _seed(server, ledger, f"r{round_}-", requests=1)
    good = _part_files(data_dir)
    assert len(good) >= 3
    # Arrives while running: whole magic and footer, garbage where the column data was.
    broken = good[0].parent / "part-0000000000000-copied-000009.parquet"
    data = bytearray(good[0].read_bytes())
    middle = len(data) // 2
    data[40:middle] = os.urandom(middle - 40)
    broken.write_bytes(bytes(data))
    assert parquet_damage(broken) is None  # the cheap check cannot see it; reading it fails

    server.pipeline.pause()
    with caplog.at_level(logging.WARNING):
        stats = Compactor(data_dir, min_files=2).run_once()
    server.pipeline.resume()
    assert stats.files_quarantined == 1, stats
    assert not broken.exists()
    assert (data_dir / "quarantine" / broken.relative_to(data_dir)).exists()
    assert any("quarantined" in r.getMessage() and broken.name in r.getMessage() for r in caplog.records)
    # The next pass merges what is left; every acknowledged span still reads exactly once.
    Compactor(data_dir, min_files=2).run_once()
    assert len(_part_files(data_dir)) == 1
    check_exactly_once(stored(server.query), ledger.acked)
    assert _rest_ids(server) == set(ledger.acked)


def test_a_broken_file_arriving_while_running_costs_one_retry_not_every_read(start_server, tmp_path, caplog):
    data_dir = tmp_path / "data"
    server = start_server(data_dir=data_dir, parquet={"flush_interval": "100ms", "workers": 0})
    ledger = Ledger()
    _seed(server, ledger, "live")
    good = _part_files(data_dir)[0]
    broken = good.parent / "part-0000000000000-copied-000003.parquet"
    broken.write_bytes(good.read_bytes()[:300])  # a copy that stopped part way
    url = f"http://127.0.0.1:{server.http_port}/api/public/observations"
    with caplog.at_level(logging.WARNING):
        first = httpx.get(url, auth=(PK, SK), timeout=30)
    assert first.status_code in (200, 503), first.text
    if first.status_code == 503:
        assert first.headers["retry-after"] == "1" and "set aside" in first.json()["message"]
    assert not broken.exists() and (data_dir / "quarantine" / broken.relative_to(data_dir)).exists()
    assert any("quarantined" in r.getMessage() and broken.name in r.getMessage() for r in caplog.records)
    assert _rest_ids(server) == set(ledger.acked)  # the retry reads everything else


def test_wal_damage_after_sigkill_is_reported_and_everything_else_is_served(tmp_path, server_process):
    data_dir = tmp_path / "data"
    # The first run never flushes: every acknowledged span is only in the WAL when it is killed.
    proc = server_process(exporters={"parquet": {"path": str(data_dir), "flush_interval": "1h"}})
    proc.start()
    ledger = Ledger()
    requests = []
    for number in range(8):
        spans = numbered_spans(f"w{number}", 10)
        outcome = send(proc.http_port, proc.grpc_port, spans, ("http", "grpc")[number % 2])
        assert outcome.ok, outcome
        record(ledger, spans, outcome)
        requests.append(spans)
    proc.kill()

    segment = sorted((data_dir / "wal").glob("*.wal"))[-1]
    data = bytearray(segment.read_bytes())
    frames = [m.start() for m in re.finditer(re.escape((0x53465731).to_bytes(4, "little")), bytes(data))]
    assert len(frames) == 8, frames
    # Garble the body of the 4th record (mid-segment), then a torn write at the tail.
    data[frames[3] + 40 : frames[3] + 60] = os.urandom(20)
    torn = bytes(data[frames[0] : frames[0] + 30])  # the first 30 bytes of a frame that never finished
    segment.write_bytes(bytes(data) + torn)
    damaged = {span.span_id.hex() for span in requests[3]}

    doc = config_dict(data_dir)
    protocols = doc["receivers"]["otlp"]["protocols"]
    protocols["grpc"]["endpoint"] = f"127.0.0.1:{proc.grpc_port}"
    protocols["http"]["endpoint"] = f"127.0.0.1:{proc.http_port}"
    proc.config_path.write_text(yaml.safe_dump(doc))  # flushes again from now on
    proc.start()
    survivors = {k: v for k, v in ledger.acked.items() if k not in damaged}
    query = TableQuery(data_dir)
    try:
        wait_until(lambda: len(stored(query)) >= len(survivors), timeout=30)
        time.sleep(0.5)
        check_exactly_once(stored(query), survivors)
        assert not damaged & {r["id"] for r in stored(query)}
    finally:
        query.close()
    assert proc.terminate() == 0
    log = proc.log_path.read_text()
    assert re.search(r"wal torn tail truncated .* dropped_bytes=30", log), log
    assert re.search(r"wal damaged region skipped", log), log
    print(f"wal damage figures: acked={len(ledger.acked)} damaged_record_spans={len(damaged)} lost_other=0")
