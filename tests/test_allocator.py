"""tune_malloc: after it, multi-megabyte blocks come from the heap, not fresh mmaps."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a fresh interpreter (the test process's own thresholds have moved already):
# mallinfo2().hblkhd counts the bytes glibc holds in mmapped blocks.
PROBE = """
import ctypes, sys
from dltrain.runtime.allocator import tune_malloc

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in FIELDS.split()]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert tune_malloc() is True
before = libc.mallinfo2().hblkhd
block = libc.malloc(8 * 1024 * 1024)
print(libc.mallinfo2().hblkhd - before)
libc.free(ctypes.c_void_p(block))
"""


def mmapped_bytes(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tuned_malloc_serves_large_blocks_from_the_heap() -> None:
    assert mmapped_bytes("default") >= 8 * 1024 * 1024  # glibc's own: a fresh mmap
    assert mmapped_bytes("tuned") == 0
