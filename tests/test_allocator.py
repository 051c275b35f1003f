"""Where compaction runs, freed memory is kept for the next merge and given back when the pass ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector import allocator

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter: malloc's thresholds are the process's, and this one's are whatever the
# tests before left them.
_PROBE = """
import sys
from collector import allocator

def rss_kib():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1])

if sys.argv[1] == "fixed":
    assert allocator.reuse_freed_memory()
blocks = [bytearray(1 << 20) for _ in range(48)]  # 48 MiB, each MiB touched (zero-filled)
held = rss_kib()
del blocks
freed = rss_kib()
allocator.give_back_freed_memory()
print(held, freed, rss_kib())
"""

pytestmark = pytest.mark.skipif(allocator.glibc() is None, reason="glibc's malloc only")


def _probe(mode: str) -> tuple[int, int, int]:
    """RSS (KiB) holding 48 MiB of 1 MiB blocks, after freeing them, and after giving memory back."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    held, freed, trimmed = map(int, out.stdout.split())
    return held, freed, trimmed


def test_freed_blocks_are_kept_for_reuse_until_given_back():
    mib = 1024
    held, freed, trimmed = _probe("default")
    assert held - freed > 40 * mib  # glibc's own thresholds: straight back to the kernel, fetched again next time
    held, freed, trimmed = _probe("fixed")
    assert held - freed < 8 * mib  # kept: the next merge reuses these pages instead of faulting in new ones
    assert freed - trimmed > 40 * mib  # and given back at the end of the pass
