"""``store.heap``: a process that keeps its freed memory does not fault it in again for
the next block."""

from __future__ import annotations

import subprocess
import sys

import pytest

# one block's life in an ingest worker, 20 times: 400 lines of 20 kB, joined into a frame
_BLOCKS = """
import resource, sys
from didban.store import heap
kept = heap.keep_freed_memory() if sys.argv[1] == "keep" else None

def block():
    lines = [bytes([65 + n % 26]) * 20_000 for n in range(400)]
    frame = b"\\n".join(lines)
    del lines
    return len(frame)

block()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    """(whether the thresholds were taken, minor faults of 20 blocks) in a new process."""
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKS, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_blocks_reuse_the_memory_they_freed() -> None:
    kept, faults = _faults("keep")
    if kept != "True":
        pytest.skip("this C library does not take glibc's malloc thresholds")
    # one 8 MB block is 2,048 pages: twenty blocks fault in less than one of them
    # (glibc's defaults fault in about 77,000 pages here)
    assert faults < 1_000, f"{faults} minor page faults over 20 blocks"
