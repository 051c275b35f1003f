"""Shared fixtures: a collector on free loopback ports, in-process or as a real subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from collector.config import Config, parse_config
from collector.server import Server

ROOT = Path(__file__).resolve().parent.parent
PK, SK = "pk-lf-test", "sk-lf-test"


def config_dict(data_dir: Path, parquet: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    """A valid configuration on port 0 (free ports).

    ``parquet`` adds settings to ``exporters.parquet``; other ``sections`` replace top-level keys.
    """
    doc: dict[str, Any] = {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}
        },
        "exporters": {"parquet": {"path": str(data_dir), "flush_interval": "200ms", **(parquet or {})}},
        "service": {
            "pipelines": {
                "traces": {"receivers": ["otlp"], "exporters": ["parquet"]},
                "logs": {"receivers": ["otlp"], "exporters": ["parquet"]},
            }
        },
        "projects": [
            {"id": "default", "name": "Default", "public_key": PK, "secret_key": SK},
            {"id": "other", "name": "Other", "public_key": "pk-lf-other", "secret_key": "sk-lf-other"},
        ],
    }
    doc.update(sections)
    return doc


def make_config(data_dir: Path, **sections: Any) -> Config:
    return parse_config(yaml.safe_dump(config_dict(data_dir, **sections)), environ={})


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start in-process servers (stopped at teardown): ``start_server(**config_sections)``."""
    servers: list[Server] = []

    def start(**sections: Any) -> Server:
        data_dir = sections.pop("data_dir", tmp_path / "data")
        server = Server(make_config(data_dir, **sections))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``spanfuse serve`` as a real child process with fixed ports (for kill/restart tests)."""

    def __init__(self, tmp_path: Path, **sections: Any) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.data_dir = tmp_path / "data"
        doc = config_dict(self.data_dir, **sections)
        protocols = doc["receivers"]["otlp"]["protocols"]
        protocols["grpc"]["endpoint"] = f"127.0.0.1:{self.grpc_port}"
        protocols["http"]["endpoint"] = f"127.0.0.1:{self.http_port}"
        self.config_path = tmp_path / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(doc))
        self.log_path = tmp_path / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, preexec: Callable[[], None] | None = None) -> None:
        """Start it and wait until it listens; ``preexec`` runs in the child before ``exec``."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=log,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own process group, as a shell gives a foreground job
            preexec_fn=preexec,
        )
        log.close()
        wait_until(self._listening, timeout=30)

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def signal_group(self, sig: int) -> int:
        """``sig`` to the whole process group, collector and workers, as a terminal's Ctrl-C
        (SIGINT) or systemd's default stop (SIGTERM) send it; the collector's exit code."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # the collector's threads' stacks, into its log
            time.sleep(1)
            log = self.log_path.read_text()[-20000:]
            raise AssertionError(f"no exit 60 s after {sig!r}; its log:\n{log}") from None

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    made: list[ServerProcess] = []

    def make(**sections: Any) -> ServerProcess:
        proc = ServerProcess(tmp_path, **sections)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.close()


def rss_growth_at_peak(action: Callable[[], None]) -> int:
    """How far this process's resident memory rose above its level before ``action``, at the
    highest point while it ran (Linux's peak RSS, reset first; the growth at the end where the
    reset is not allowed)."""
    status = Path("/proc/self/status")
    before = psutil.Process().memory_info().rss
    try:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := RSS now
        peaked = True
    except OSError:
        peaked = False
    action()
    if not peaked:
        return psutil.Process().memory_info().rss - before
    match = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
    assert match is not None
    return int(match.group(1)) * 1024 - before
