"""The client side imports with only the OpenTelemetry SDK: no server dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SERVER_ONLY = ["fastapi", "starlette", "uvicorn", "duckdb", "pyarrow", "grpc", "yaml", "pydantic", "orjson"]


def test_exporters_import_without_server_dependencies():
    # Make every server-only package unimportable, then import the client side.
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SERVER_ONLY!r}:
            raise ImportError("blocked server dependency: " + name)
        return None
sys.meta_path.insert(0, Block())
import exporters
import opentelemetry.sdk.trace
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "spanfuse"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0
    assert "serve" in result.stdout and "traces" in result.stdout
