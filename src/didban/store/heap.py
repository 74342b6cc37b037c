"""The memory ``didban ingest``'s processes keep once freed, instead of handing it back.

Every block of a bulk load goes through buffers of its own size (about 8 MB: the lines
read from a pipe, the joined archive frame, zstd's output, the pickled result). glibc's
malloc serves buffers that large with fresh ``mmap`` regions, or from the top of the
heap, and gives both back to the kernel when they are freed (``munmap``, heap trimming);
the next block then takes the same amount again, page by page, each first touch a page
fault that the kernel answers with a zeroed page. Measured with
``bench/ingest_throughput.py`` on OONI-shaped measurements (interleaved rounds), glibc's
defaults cost 20 minor faults and 73 µs of kernel CPU per measurement over the loader and
its workers, against 2.8 faults and 33 µs with the thresholds below (docs/store.md §4).

``keep_freed_memory()`` raises glibc's two thresholds for the calling process: buffers
up to ``MMAP_THRESHOLD`` come from the heap, and freed memory at the top of the heap is
given back only beyond ``TRIM_THRESHOLD``. A process then keeps its high-water mark of
heap memory (bounded, as the blocks in flight are) rather than returning it between
blocks. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Final

_M_TRIM_THRESHOLD: Final = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD: Final = -3
MMAP_THRESHOLD: Final = 32 << 20  # glibc's largest on 64-bit platforms
TRIM_THRESHOLD: Final = 64 << 20  # enough for a block's buffers (32 MiB is not)

_kept: bool | None = None  # None: not asked yet in this process


def keep_freed_memory() -> bool:
    """Set the thresholds (once per process); whether this malloc took them."""
    global _kept
    if _kept is None:
        _kept = _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and _mallopt(
            _M_TRIM_THRESHOLD, TRIM_THRESHOLD
        )
    return _kept


def _mallopt(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a libc without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(option, value) == 1)
