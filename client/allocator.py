"""Keep freed memory in the process instead of handing it back at once.

A consumer turns each fetched megabyte into thousands of value objects and
frees them a poll later; a producer builds megabyte batches. With glibc's
defaults every such round trims the freed heap top back to the kernel (above
128 KiB) and takes buffers over 128 KiB from fresh mmaps, so the next round
pays a page fault per 4 KiB touched: on a VM that more than doubles the cost
of copying a 1 KiB value out of a fetch response. Raising both thresholds
(what ``MALLOC_TRIM_THRESHOLD_``/``MALLOC_MMAP_THRESHOLD_`` do from the
environment) lets the next round reuse the same pages. The cost is that up
to ``TRIM_BYTES`` of freed memory stays counted in the process's RSS.

Process-wide, so done once, on Linux with glibc only, and skipped when
``RIVERLOG_NO_MALLOPT=1`` is set.
"""

from __future__ import annotations

import os
import sys

TRIM_BYTES = 64 * 1024 * 1024
MMAP_BYTES = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds once; True if they were set."""
    global _done
    if _done:
        return True
    if sys.platform != "linux" or os.environ.get("RIVERLOG_NO_MALLOPT", "") not in ("", "0"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc; musl has no mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # Setting either switches off glibc's own adjustment of both, so set both.
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES))
    return _done
