"""The raw archive: the append-only source of truth, zstd-compressed JSONL on disk.

Layout follows OONI's bucket (``ooni-backend.md`` §4), keyed by the upload hour that a
``measurement_uid`` carries::

    raw/<YYYYMMDD>/<HH>/<CC>/<testname>/<YYYYMMDDHH>_<CC>_<testname>.n0.<counter>.jsonl.zst

Each append is one independent zstd frame holding whole lines, so the files are plain
zstd streams (``zstdcat`` reads them) and a measurement is addressed by (file, frame
offset, frame length, line within the frame). ``append`` writes and fsyncs before it
returns. A frame cut short by a crash is found by ``scan`` and cut off by ``truncate``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import zstandard

from didban.files.durable import fsync_dir
from didban.model import zstdframe
from didban.store.uid import compact_test_name

ROLLOVER_BYTES: Final = 256 * 1024 * 1024
SUFFIX: Final = ".jsonl.zst"


@dataclass(frozen=True)
class Frame:
    offset: int
    length: int
    lines: list[bytes]


def bucket_dir(root: Path, when: datetime, cc: str, test_name: str) -> Path:
    tn = compact_test_name(test_name)
    return root / f"{when:%Y%m%d}" / f"{when:%H}" / cc / tn


def file_for(root: Path, when: datetime, cc: str, test_name: str) -> Path:
    """The file new measurements of this bucket go to (a new counter past the rollover size)."""
    d = bucket_dir(root, when, cc, test_name)
    stem = f"{when:%Y%m%d%H}_{cc}_{compact_test_name(test_name)}.n0"
    counter = 0
    while True:
        p = d / f"{stem}.{counter}{SUFFIX}"
        try:
            if p.stat().st_size < ROLLOVER_BYTES:
                return p
        except FileNotFoundError:
            return p
        counter += 1


def append(path: Path, lines: list[bytes], level: int = 3) -> tuple[int, int]:
    """Append one frame with ``lines`` to ``path`` and fsync it; returns (offset, length)."""
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    frame = zstandard.ZstdCompressor(level=level).compress(b"\n".join(lines) + b"\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        offset = os.fstat(fd).st_size
        view = memoryview(frame)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)
    return offset, len(frame)


def read_frame(path: Path, offset: int, length: int) -> list[bytes]:
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    return _split(zstandard.ZstdDecompressor().decompressobj().decompress(data))


def _split(raw: bytes) -> list[bytes]:
    return [line for line in raw.split(b"\n") if line.strip()]


def frame_size(data: bytes | memoryview, pos: int) -> int | None:
    """Length of the zstd frame starting at ``pos`` (RFC 8878 §3.1.1), None if incomplete.

    Walks the frame and block headers without decompressing, so scanning a file of many
    frames costs one pass over it.
    """
    n = len(data)
    if n - pos < 6 or int.from_bytes(data[pos : pos + 4], "little") != zstdframe.MAGIC:
        return None
    header, checksum = zstdframe.frame_header_size(data[pos + 4])
    p = pos + 4 + header
    while True:
        if n - p < 3:
            return None
        blk = zstdframe.block(data[p : p + 3])
        if blk is None:
            return None
        last, size = blk
        p += 3 + size
        if last:
            break
    p += 4 if checksum else 0
    return p - pos if p <= n else None


def scan(path: Path, start: int = 0) -> Iterator[Frame]:
    """Complete frames of ``path`` from byte ``start``; stops at a truncated or bad tail."""
    with path.open("rb") as fh:
        fh.seek(start)
        data = fh.read()
    pos = 0
    while pos < len(data):
        size = frame_size(data, pos)
        if size is None:
            return
        try:
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(data[pos : pos + size])
        except zstandard.ZstdError:
            return
        yield Frame(start + pos, size, _split(raw))
        pos += size


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (drops a frame a crash left half-written)."""
    with path.open("r+b") as fh:
        fh.truncate(size)
        fh.flush()
        os.fsync(fh.fileno())


def files(root: Path) -> list[Path]:
    return sorted(root.rglob(f"*{SUFFIX}")) if root.exists() else []
