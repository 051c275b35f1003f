"""The C span reader (semconv/_encoded_span.c) reads untrusted bytes: a campaign of random and
damaged spans through a build of it instrumented by AddressSanitizer and UndefinedBehaviorSanitizer,
each span compared with the Python reader. Slow-marked (``make test`` runs it); skipped where the
compiler or the sanitizers' runtimes are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.fuzz.campaign import count, long_campaign

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 60 if long_campaign() else 15


def _runtime(compiler: str, name: str) -> str | None:
    found = subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return found if os.path.isabs(found) and os.path.exists(found) else None


@pytest.mark.slow
def test_the_c_span_reader_under_sanitizers(tmp_path: Path) -> None:
    compiler = shutil.which(os.environ.get("CC", "gcc"))
    runtimes = [_runtime(compiler, name) for name in ("libasan.so", "libubsan.so")] if compiler else [None]
    if compiler is None or None in runtimes:
        pytest.skip("no gcc with AddressSanitizer and UndefinedBehaviorSanitizer runtimes")
    library = tmp_path / "encoded_span_sanitized.so"
    flags = ["-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
    include = sysconfig.get_paths()["include"]
    source = ROOT / "semconv" / "_encoded_span.c"
    subprocess.run([compiler, *flags, f"-I{include}", str(source), "-o", str(library)], check=True, timeout=120)
    env = {
        **os.environ,
        "LD_PRELOAD": " ".join(str(r) for r in runtimes),
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1",  # the interpreter itself leaks by design
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }
    harness = Path(__file__).with_name("sanitized_span_reader.py")
    done = subprocess.run(
        [sys.executable, str(harness), str(library), "27", str(SECONDS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "ERROR: AddressSanitizer" not in done.stderr and "runtime error" not in done.stderr, done.stderr[-4000:]
    inputs = int(done.stdout.split()[-1])
    assert inputs > 1000, done.stdout
    count("c_span_reader:sanitized", "compared", inputs)
