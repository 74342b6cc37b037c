"""Opening a measurement file as a stream of bytes: plain, gzip or Zstandard.

Reads are large (``READ_BUFFER``: measurements are lines of 3-350 KiB) and a truncated
compressed file is an error raised after every byte before the damage was read — never a
file that quietly looks complete. ``UNREADABLE`` is what reading any of them may raise.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import Any, Final

import zstandard

from didban.files.kinds import COMPRESSED
from didban.model import zstdframe

# Measurements are lines of 3-350 KiB: with the default 8 KiB buffer, reading one took
# dozens of reads and joins.
READ_BUFFER: Final = 1 << 20

UNREADABLE: Final = (OSError, EOFError, zstandard.ZstdError)
"""What opening or reading a file may raise: missing, unreadable, corrupt or truncated."""


def read_error(path: Path, exc: BaseException) -> str:
    """The one sentence that says a file could not be read."""
    return f"{path}: cannot read: {exc}"


class _Read1(io.RawIOBase):
    """A decompressing stream seen as a raw one that fills each read with one ``read1``.

    The buffered readers' own ``read(n)`` gathers several chunks and, when a truncated
    archive ends mid-way, drops all of them with the error: up to ``READ_BUFFER`` bytes of
    complete records before the damage. One ``read1`` per fill loses none of them; the
    error comes on the next read, after every whole line before it was yielded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.inner.read1(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self.inner.close()
        super().close()


def zstd_whole(path: Path) -> bool:
    """Whether ``path`` is a sequence of whole zstd frames (RFC 8878 §3.1): its frame and
    block headers are walked with seeks, nothing is decompressed."""
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        pos = 0
        while pos < size:
            fh.seek(pos)
            head = fh.read(8)
            if len(head) < 8:
                return False
            magic = int.from_bytes(head[:4], "little")
            if magic in zstdframe.SKIPPABLE:
                pos += 8 + int.from_bytes(head[4:8], "little")
                continue
            if magic != zstdframe.MAGIC:
                return False
            header, checksum = zstdframe.frame_header_size(head[4])
            p = pos + 4 + header
            while True:
                fh.seek(p)
                blk = fh.read(3)
                if len(blk) < 3 or (parsed := zstdframe.block(blk)) is None:
                    return False
                last, bsize = parsed
                p += 3 + bsize
                if last:
                    break
            pos = p + (4 if checksum else 0)
        return pos == size


class _Zstd(io.RawIOBase):
    """Zstandard frames (one or many, concatenated) as a raw stream that notices truncation.

    The data comes from zstandard's stream reader (bounded output per read, whatever the
    compression ratio), which ends quietly when the file stops inside a frame: a cut
    archive would pass for a complete one. So at the end the frame headers are walked
    (``zstd_whole``), and a file that ends inside a frame is an error, raised after every
    byte decompressed before it was read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = path.open("rb")
        self.reader = zstandard.ZstdDecompressor().stream_reader(
            self.fh, read_across_frames=True, closefd=False
        )

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.reader.read(len(b))
        if not data:
            if not zstd_whole(self.path):
                raise zstandard.ZstdError("the archive ends inside a frame (truncated)")
            return 0
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self.reader.close()  # type: ignore[no-untyped-call]
            self.fh.close()
        super().close()


def open_stream(path: Path, comp: str) -> io.BufferedReader:
    """``path`` decompressed as ``comp`` says (``.gz``, ``.zst`` or '' for plain)."""
    if comp == ".gz":
        return io.BufferedReader(_Read1(gzip.GzipFile(path, "rb")), READ_BUFFER)
    if comp == ".zst":
        return io.BufferedReader(_Zstd(path), READ_BUFFER)
    return io.BufferedReader(io.FileIO(path, "rb"), READ_BUFFER)


def open_file(path: Path) -> io.BufferedReader:
    """``path`` decompressed as its name says (``.gz``, ``.zst``, else plain)."""
    name = path.name.lower()
    return open_stream(path, next((c for c in COMPRESSED if name.endswith(c)), ""))
