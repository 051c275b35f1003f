"""glibc's malloc thresholds, fixed where compaction runs.

A merge sorts a few hundred MB in DuckDB and hands the result on in buffers of some MB each. glibc
serves blocks that large with a fresh ``mmap`` and gives them back to the kernel when they are
freed (its thresholds start at 128 KiB and rise only as it sees such blocks come and go), so every
merge took new pages, each zeroed by the kernel first. Even with one DuckDB instance for the whole
pass (``storage.compaction``), merges faulted in ~0.7 new pages a span; with the thresholds fixed
at the highest values glibc's own adjustment reaches (mmap above 32 MiB, trim above 64 MiB), 0.4,
and a merge takes about a fifth less CPU (``bench/compaction.py``). The memory still goes back
when a pass ends (:func:`give_back_freed_memory`).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import platform

log = logging.getLogger("spanfuse.allocator")

# mallopt(3) parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES  # what glibc sets beside a raised mmap threshold


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The C library, where it is glibc; None elsewhere (musl, macOS: no such thresholds)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


@functools.cache
def reuse_freed_memory() -> bool:
    """Fix this process's malloc thresholds as above (the first call does it); False where the C
    library is not glibc or it refused them."""
    libc = glibc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if not ok:
        log.warning("malloc thresholds not set: mallopt refused them")
    return ok


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the kernel (``malloc_trim``): after a pass, a worker's
    memory is what its batches need, not what the pass's merges peaked at."""
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)
