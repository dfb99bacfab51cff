"""glibc malloc settings that keep a CPU training loop out of the kernel.

Why: PyTorch's CPU tensors come from ``malloc``. glibc serves blocks above its mmap
threshold with fresh ``mmap`` calls and gives the top of the heap back to the kernel
once more than its trim threshold is free; both thresholds adapt at run time, and a
training step that allocates and frees the same multi-megabyte activations every step
keeps landing on the wrong side of them. Each step then maps, page-faults and unmaps
its buffers again: on the ``mnist_speed`` CNN that was ~3 million page faults and 3-4 s
of system time per epoch, a third of the step time, varying from run to run. Fixed
thresholds keep freed blocks in the heap for the next step. jemalloc or tcmalloc
through ``LD_PRELOAD`` would do the same, but only from outside the process; PyTorch
has no setting for it, so this is done by hand with ``mallopt``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (glibc's maximum for this setting).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory kept at the top of the heap before any is given back.
TRIM_THRESHOLD = 1024 * 1024 * 1024


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds; ``False`` where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok)
