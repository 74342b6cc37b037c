"""What makes a write survive a crash beyond the file's own ``fsync``."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush ``directory`` itself, so that a file created or renamed in it is still there
    after a crash (the file's own fsync does not record its name)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
