"""SIGHUP reloads the configuration file, as the OpenTelemetry Collector does; a configuration
that cannot run changes nothing. Against ``spanfuse serve`` as a real process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from typing import Any

import pytest
import yaml

from storage.lease import lease_data_directory
from storage.query import TableQuery
from tests.conftest import ROOT, wait_until
from tests.faults.helpers import send
from tests.otlp_helpers import basic_auth, make_span
from tests.test_durability import _acked, _check_every_acked_span_stored_once, _client_command

THIRD = {"id": "third", "name": "Third", "public_key": "pk-lf-third", "secret_key": "sk-lf-third"}


def _export(server: Any, name: str, auth: str | None = None) -> str:
    """HTTP status of an OTLP/HTTP export of one span called ``name``."""
    return send(server.http_port, server.grpc_port, [make_span(name=name)], "http", auth).status


def _names(server: Any, project: str) -> list[str]:
    query = TableQuery(server.data_dir)
    try:
        return sorted(row["name"] for row in query.query(project, "SELECT name FROM {observations}"))
    finally:
        query.close()


def _reload(server: Any, outcome: str) -> None:
    """SIGHUP the collector, wait for ``outcome`` in its log and for it to listen."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: outcome in server.log_path.read_text(), timeout=30)
    wait_until(server._listening, timeout=30)


def test_sighup_reloads_the_configuration_and_the_data_stays(server_process):
    server = server_process()
    server.start()
    assert _export(server, "before") == "200"
    third = basic_auth(THIRD["public_key"], THIRD["secret_key"])
    assert _export(server, "refused", third) == "401"
    doc = yaml.safe_load(server.config_path.read_text())
    doc["projects"].append(THIRD)
    server.config_path.write_text(yaml.safe_dump(doc))

    _reload(server, "configuration reloaded")
    assert _export(server, "third's", third) == "200"
    assert _export(server, "after") == "200"
    assert server.terminate() == 0
    assert _names(server, "default") == ["after", "before"]
    assert _names(server, "third") == ["third's"]


def test_a_reload_onto_another_data_directory_first_writes_the_old_ones_backlog(server_process, tmp_path):
    # A flush interval longer than the test: only a stop writes. The new collector's WAL is in
    # the new directory, so the old one writes what it acknowledged before it goes.
    server = server_process(parquet={"flush_interval": "1h"})
    server.start()
    assert _export(server, "before") == "200"
    old_dir, new_dir = server.data_dir, tmp_path / "moved"
    doc = yaml.safe_load(server.config_path.read_text())
    doc["exporters"]["parquet"]["path"] = str(new_dir)
    server.config_path.write_text(yaml.safe_dump(doc))

    _reload(server, "configuration reloaded")
    assert _names(server, "default") == ["before"]  # in the old directory, written by the old collector
    assert _export(server, "after") == "200"
    assert server.terminate() == 0
    server.data_dir = new_dir
    assert _names(server, "default") == ["after"]
    assert old_dir.exists()


@pytest.mark.parametrize("fault", ["does not parse", "http port taken", "grpc port taken", "data directory in use"])
def test_a_configuration_that_cannot_run_changes_nothing(server_process, fault, tmp_path):
    server = server_process()
    server.start()
    assert _export(server, "before") == "200"
    doc = yaml.safe_load(server.config_path.read_text())
    with socket.socket() as taken, contextlib.ExitStack() as held:
        if fault == "does not parse":
            server.config_path.write_text("receivers: [otlp\n")
            outcome = "configuration not reloaded, going on as before"
        else:  # only found out by starting with it: the collector starts again as it was
            if fault == "data directory in use":  # by another collector: this test process
                in_use = tmp_path / "in-use"
                in_use.mkdir()
                lease = lease_data_directory(in_use)
                assert lease is not None
                held.callback(lease.release)
                doc["exporters"]["parquet"]["path"] = str(in_use)
            else:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                transport = fault.split()[0]
                doc["receivers"]["otlp"]["protocols"][transport]["endpoint"] = f"127.0.0.1:{taken.getsockname()[1]}"
            server.config_path.write_text(yaml.safe_dump(doc))
            outcome = "starting as before"
        _reload(server, outcome)
        assert _export(server, "after") == "200"
    assert server.terminate() == 0
    log = server.log_path.read_text()
    assert "configuration reloaded" not in log and "Traceback" not in log, log
    assert _names(server, "default") == ["after", "before"]


@pytest.mark.slow
def test_a_reload_under_load_loses_nothing(tmp_path, server_process):
    # A closed terminal, or `systemctl reload` with ExecReload=kill -HUP: the collector restarts
    # inside its process while a retrying client keeps sending; its workers ignore the signal.
    server = server_process(parquet={"flush_interval": "100ms", "workers": 2})
    server.start()
    acked_path = tmp_path / "acked.txt"
    client = subprocess.Popen(_client_command(server, acked_path, requests=300, spans=50), cwd=ROOT)
    try:
        wait_until(lambda: len(_acked(acked_path)) >= 2000, timeout=60)
        assert server.proc is not None
        os.killpg(server.proc.pid, signal.SIGHUP)  # to every process of the job, as a terminal does
        wait_until(lambda: "configuration reloaded" in server.log_path.read_text(), timeout=60)
        assert client.wait(timeout=120) == 0
    finally:
        client.kill()
        client.wait(timeout=30)
    assert server.terminate() == 0
    assert "Traceback" not in server.log_path.read_text()
    _check_every_acked_span_stored_once(server, acked_path)
