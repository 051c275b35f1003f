"""Acknowledged means durable: SIGKILL under load loses nothing and duplicates nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import duckdb
import pytest

from storage.query import TableQuery
from storage.retired import live_paths
from tests.conftest import ROOT, wait_until
from tests.faults.helpers import check_exactly_once, stored


def _client_command(server, acked_path, *, requests: int, spans: int) -> list[str]:
    """The retrying client (tests/durability_client.py) as a separate process's command line."""
    return [
        sys.executable, "-m", "tests.durability_client",
        "--http-port", str(server.http_port), "--grpc-port", str(server.grpc_port),
        "--out", str(acked_path), "--requests", str(requests), "--spans", str(spans),
    ]  # fmt: skip


def _acked(path) -> dict[str, str]:
    if not path.exists():
        return {}
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return {span_id: name for span_id, name in lines}


def _check_every_acked_span_stored_once(server, acked_path) -> None:
    query = TableQuery(server.data_dir)
    try:
        check_exactly_once(stored(query), _acked(acked_path))
    finally:
        query.close()


def _unprocessed_wal_bytes(data_dir) -> int:
    """WAL bytes the Parquet consumer has not committed."""
    wal = data_dir / "wal"
    committed = int((wal / "consumers" / "parquet.offset").read_text())
    return max(int(segment.stem) + segment.stat().st_size for segment in wal.glob("*.wal")) - committed


@pytest.mark.slow
def test_sigkill_under_load_keeps_every_acknowledged_span_exactly_once(tmp_path, server_process):
    server = server_process()
    server.start()
    acked_path = tmp_path / "acked.txt"
    client = subprocess.Popen(
        _client_command(server, acked_path, requests=120, spans=25),
        cwd=ROOT,
    )
    try:
        for _ in range(3):  # kill it mid-stream, several times in a row
            already = len(_acked(acked_path))
            wait_until(lambda already=already: len(_acked(acked_path)) >= already + 150, timeout=60)
            server.kill()
            time.sleep(0.3)  # the client keeps retrying against a dead port
            server.start()
        assert client.wait(timeout=120) == 0
    finally:
        client.kill()
    assert server.terminate() == 0
    unprocessed = _unprocessed_wal_bytes(server.data_dir)
    assert unprocessed == 0, f"the clean stop left {unprocessed} bytes of WAL unprocessed"

    acked = _acked(acked_path)
    assert len(acked) == 120 * 25
    query = TableQuery(server.data_dir)
    try:
        rows = stored(query)  # id, name and the span's attribute, deduplicated as every read is
        counts = query.query("default", "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM {observations}")[0]
    finally:
        query.close()
    assert counts["n"] == counts["ids"], "a span reads more than once"
    lost, duplicated = check_exactly_once(rows, acked)  # every acked span once, with its own name and attribute
    files = [str(path) for path in live_paths(server.data_dir / "tables" / "observations")]
    physical = duckdb.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchall()[0][0]
    print(
        f"sigkill figures: kills=3 acked_spans={len(acked)} lost={lost} duplicated={duplicated} "
        f"rows_on_disk={physical} (replayed rows fold on read)"
    )


@pytest.mark.slow
def test_sigterm_flushes_buffered_rows_before_exit(tmp_path, server_process):
    # A flush interval far longer than the test: only the shutdown flush can write the rows.
    server = server_process(exporters={"parquet": {"path": str(tmp_path / "data"), "flush_interval": "1h"}})
    server.start()
    acked_path = tmp_path / "acked.txt"
    subprocess.run(
        _client_command(server, acked_path, requests=4, spans=5),
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    assert not list(server.data_dir.glob("tables/observations/**/*.parquet"))
    assert server.terminate() == 0
    query = TableQuery(server.data_dir)
    try:
        assert query.count("default", "observations") == 20
    finally:
        query.close()
    log = server.log_path.read_text()
    assert "shutting down" in log and "stopped" in log


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "systemd-stop"])
def test_a_stop_signal_to_every_process_still_drains_the_wal(tmp_path, server_process, sig):
    # A terminal's Ctrl-C sends SIGINT to every process of the job, and systemd's default stop
    # (KillMode=control-group) SIGTERM: to the pool workers too. The stop still lands every
    # acknowledged span in Parquet, through the workers.
    server = server_process(parquet={"flush_interval": "100ms", "workers": 2})
    server.start()
    acked_path = tmp_path / "acked.txt"
    client = subprocess.Popen(_client_command(server, acked_path, requests=400, spans=50), cwd=ROOT)
    try:
        wait_until(lambda: len(_acked(acked_path)) >= 2000, timeout=60)  # workers busy with batches
        assert server.signal_group(sig) == 0
    finally:
        client.kill()
        client.wait(timeout=30)
    log = server.log_path.read_text()
    assert "Traceback" not in log and "unprocessed" not in log, log
    assert f"received {signal.Signals(sig).name}" in log
    assert _unprocessed_wal_bytes(server.data_dir) == 0
    _check_every_acked_span_stored_once(server, acked_path)


@pytest.mark.slow
def test_ctrl_c_again_during_the_stop_exits_at_once_and_the_next_start_lands_the_rest(tmp_path, server_process):
    # A flush interval far longer than the test: the stop's drain has all the work (100k spans, 11 MB
    # of WAL, about 2 s here); the second Ctrl-C comes a moment after the first.
    server = server_process(parquet={"flush_interval": "1h", "workers": 1})
    server.start()
    acked_path = tmp_path / "acked.txt"
    subprocess.run(_client_command(server, acked_path, requests=200, spans=500), cwd=ROOT, check=True, timeout=120)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGINT)
    wait_until(lambda: "shutting down" in server.log_path.read_text(), timeout=30)
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=30) == 130
    log = server.log_path.read_text()
    assert "Ctrl-C during the stop: exiting now" in log and "stopped" not in log, log

    server.start()  # the WAL still holds what the interrupted drain did not commit
    assert server.terminate() == 0
    _check_every_acked_span_stored_once(server, acked_path)
