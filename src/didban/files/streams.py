"""Opening a measurement file as a stream of bytes: plain, gzip or Zstandard.

gzip is read with ISA-L (``isal.isal_zlib``, zlib's interface and errors): it
decompresses OONI's archive files 2.2 times as fast (1,040 against 460 MB/s on
``bench/ingest_throughput.py``'s corpus), the largest single cost of reading them.

Reads are large (``READ_BUFFER``: measurements are lines of 3-350 KiB) and a truncated
compressed file is an error raised after every byte before the damage was read — never a
file that quietly looks complete. ``UNREADABLE`` is what reading any of them may raise.
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path
from typing import Any, Final, cast

import zstandard
from isal import isal_zlib

from didban.files.kinds import COMPRESSED
from didban.model import zstdframe

# Measurements are lines of 3-350 KiB: with the default 8 KiB buffer, reading one took
# dozens of reads and joins.
READ_BUFFER: Final = 1 << 20

_ISAL_ERROR = cast(type[Exception], isal_zlib.error)  # typed as an instance in its stubs
UNREADABLE: Final = (OSError, EOFError, zstandard.ZstdError, _ISAL_ERROR, zlib.error)
"""What opening or reading a file may raise: missing, unreadable, corrupt or truncated."""


def read_error(path: Path, exc: BaseException) -> str:
    """The one sentence that says a file could not be read."""
    return f"{path}: cannot read: {exc}"


class _Gzip(io.RawIOBase):
    """gzip members (one or many, concatenated) decompressed with ISA-L, as a raw stream
    that hands out every byte decompressed before it reports a truncated or damaged file
    (``isal.igzip.GzipFile`` drops the last chunk's output when the file is cut short, and
    the buffered readers' ``read(n)`` would drop what it gathered: each fill here is one
    decompression step)."""

    def __init__(self, path: Path) -> None:
        self.fh = path.open("rb")
        self.inflate = isal_zlib.decompressobj(31)
        self.tail = b""  # compressed bytes not yet given to ``inflate``
        self.started = False  # a member has begun (bytes given to ``inflate``)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        want = len(b)
        while True:
            if self.inflate.eof:  # a member ended: the next one (or padding) follows
                rest = self.inflate.unused_data + self.tail
                self.inflate, self.tail, self.started = isal_zlib.decompressobj(31), rest, False
            if not self.tail:
                self.tail = self.fh.read(READ_BUFFER)
                if not self.tail:
                    if self.started:
                        raise EOFError(
                            "Compressed file ended before the end-of-stream marker was reached"
                        )
                    return 0
            if not self.started and not self.tail.strip(b"\x00"):
                self.tail = b""  # zero padding after the last member, as gzip allows
                continue
            self.started = True
            data = self.inflate.decompress(self.tail, want)
            self.tail = self.inflate.unconsumed_tail
            if data:
                b[: len(data)] = data
                return len(data)

    def close(self) -> None:
        if not self.closed:
            self.fh.close()
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
        return io.BufferedReader(_Gzip(path), READ_BUFFER)
    if comp == ".zst":
        return io.BufferedReader(_Zstd(path), READ_BUFFER)
    return io.BufferedReader(io.FileIO(path, "rb"), READ_BUFFER)


def open_file(path: Path) -> io.BufferedReader:
    """``path`` decompressed as its name says (``.gz``, ``.zst``, else plain)."""
    name = path.name.lower()
    return open_stream(path, next((c for c in COMPRESSED if name.endswith(c)), ""))
