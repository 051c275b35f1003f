"""The command line: ``spanfuse traces`` reads what the collector stored; ``serve`` reports start-up errors."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ROOT, config_dict, wait_until
from tests.faults.helpers import send
from tests.otlp_helpers import basic_auth, make_span, trace_request


def test_traces_command_lists_the_latest_traces(server):
    trace_id = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    spans = [
        make_span(trace_id, bytes.fromhex("00f067aa0ba902b7"), name="checkout"),
        make_span(trace_id, parent=bytes.fromhex("00f067aa0ba902b7"), name="db", error="timeout"),
    ]
    response = httpx.post(
        f"http://127.0.0.1:{server.http_port}/v1/traces",
        content=trace_request(spans, service="shop").SerializeToString(),
        headers={"content-type": "application/x-protobuf", "authorization": basic_auth()},
    )
    assert response.status_code == 200
    wait_until(lambda: len(server.query.observations("default")) == 2)
    result = subprocess.run(
        [sys.executable, "-m", "collector", "traces", "--data-dir", str(server.data_dir), "--project", "default"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if trace_id.hex() in line)
    cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
    assert cells[3:] == ["2", "1", "checkout", "shop"]  # spans, errors, name, service


def test_traces_command_on_an_empty_project(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "collector", "traces", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0
    assert "no traces yet" in result.stdout


def _traces(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", "traces", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_traces_command_refuses_bad_arguments_in_one_line_and_makes_nothing(server, tmp_path):
    mistyped, data = tmp_path / "dta", str(server.data_dir)
    cases = {
        ("--data-dir", str(mistyped)): f"spanfuse: no data directory at {mistyped}",
        ("--data-dir", data, "--project", "x';drop"): "spanfuse: cannot read traces: invalid project id",
        ("--data-dir", data, "-n", "0"): "expected a positive whole number, got '0'",
        ("--data-dir", data, "-n", "ten"): "expected a positive whole number, got 'ten'",
    }
    for args, message in cases.items():
        result = _traces(*args)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
    assert not mistyped.exists()


def _serve(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``spanfuse serve`` with ``config``, expected to end by itself."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "collector", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_serve_reports_a_busy_port_in_one_line_naming_it(tmp_path, transport):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        endpoint = f"127.0.0.1:{busy.getsockname()[1]}"
        doc = config_dict(tmp_path / "data")
        doc["receivers"]["otlp"]["protocols"] = {transport: {"endpoint": endpoint}}
        result = _serve(doc, tmp_path)
    assert result.returncode == 1
    expected = {
        "http": f"HTTP endpoint {endpoint}: Address already in use",
        "grpc": f"gRPC endpoint {endpoint}: cannot listen there (address in use or not available)",
    }
    assert f"spanfuse: cannot start: {expected[transport]}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_names_a_data_directory_it_cannot_use(tmp_path):
    not_a_directory = tmp_path / "data"
    not_a_directory.write_text("a file where the data directory should be")
    result = _serve(config_dict(not_a_directory), tmp_path)
    assert result.returncode == 1
    assert f"spanfuse: cannot start: {not_a_directory}" in result.stderr
    assert "Not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_collector_on_a_data_directory_in_use_refuses_to_start_and_changes_nothing(server, tmp_path):
    # Two collectors appending to one WAL and merging the same files would lose data. The second
    # one here has ports of its own; `server` (in this process) holds the data directory.
    writing = server.data_dir / "tables" / "observations" / "part-1.parquet.1a2b3c4d.tmp"  # a write in progress
    writing.parent.mkdir(parents=True, exist_ok=True)
    writing.write_bytes(b"PAR1")
    doc = config_dict(server.data_dir)
    doc["receivers"]["otlp"]["protocols"] = {"http": {"endpoint": "127.0.0.1:0"}, "grpc": {"endpoint": "127.0.0.1:0"}}
    result = _serve(doc, tmp_path)
    assert result.returncode == 1
    in_use = f"data directory {server.data_dir} is in use by another collector (pid {os.getpid()})"
    assert f"spanfuse: cannot start: {in_use}" in result.stderr
    assert "Traceback" not in result.stderr
    assert writing.exists(), "the refused collector removed a file of the running one"
    assert send(server.http_port, server.grpc_port, [make_span(name="still here")], "http").status == "200"
    wait_until(lambda: len(server.query.observations("default")) == 1)


def test_sigusr1_writes_every_threads_stack_to_the_log_and_the_collector_goes_on(server_process):
    server = server_process()
    server.start()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGUSR1)
    # The main thread's stack: it waits for a stop signal.
    wait_until(lambda: "in serve_until_stopped" in server.log_path.read_text())
    assert server._listening()
    assert server.terminate() == 0


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_more_clients_than_the_soft_open_files_limit_are_served(server_process, transport):
    # Every connected exporter holds a descriptor. Started under a soft limit of 128 open files
    # (a shell's or systemd's 1,024, scaled down), the collector stopped accepting connections
    # once its clients used them up; it now raises the soft limit to the hard one, as Go
    # programs such as the OpenTelemetry Collector do.
    server = server_process()
    server.start(preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, 2048)))
    port = server.http_port if transport == "http" else server.grpc_port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    try:
        outcome = send(server.http_port, server.grpc_port, [make_span(name="one-more")], transport)
        assert outcome.ok, outcome
    finally:
        for connection in idle:
            connection.close()
    limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    assert re.search(r"Max open files\s+2048\s+2048", limits), limits
