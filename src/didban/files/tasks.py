"""Cutting measurement files into tasks for worker processes, without reading the
measurements in the parent where it can be helped.

* a plain JSONL file on disk: byte ranges of about ``CHUNK_BYTES``, cut at line ends. The
  parent only finds where each range ends (a seek and a short read); the worker reads the
  range itself;
* a compressed file, or one that is not a regular file (a pipe): the parent decompresses
  it as ``reader.iter_records`` does and sends blocks of whole lines of about
  ``CHUNK_BYTES``;
* a ``.json`` file (one document, or JSONL under that name): the whole file, read by the
  worker with ``reader.iter_records``.

A file that cannot be read gives its read error (a string, ``streams.read_error``) in
place of the tasks it did not give.
"""

from __future__ import annotations

import io
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from didban.files.kinds import file_kind
from didban.files.streams import READ_BUFFER, UNREADABLE, open_stream, read_error

CHUNK_BYTES: Final = 8 << 20  # bytes of JSONL per task
_SCAN: Final = 1 << 16  # read size while looking for the end of a range's last line


@dataclass(frozen=True, slots=True)
class Task:
    """Some whole lines of one file: a byte range, the lines themselves, or the file."""

    path: Path
    seq: int  # which file of the input this is (the same file may come twice)
    start: int = 0  # a byte range the worker reads ...
    end: int = 0
    data: bytes | None = None  # ... or the lines themselves ...
    whole: bool = False  # ... or the whole file, read with reader.iter_records


def tasks(path: Path, seq: int, chunk: int = CHUNK_BYTES) -> Iterator[Task | str]:
    """The tasks of one file (the ``seq``-th of the input), or its read error; ``chunk``:
    bytes of JSONL per task."""
    kind = file_kind(path)
    if kind is None or kind[0] == "json":
        yield Task(path, seq, whole=True)  # the worker reports what iter_records says
        return
    comp = kind[1]
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError as exc:
        yield read_error(path, exc)
        return
    if comp or not regular:
        yield from _blocks(path, seq, comp, chunk)
        return
    try:
        yield from _ranges(path, seq, chunk)
    except OSError as exc:
        yield read_error(path, exc)


def _ranges(path: Path, seq: int, chunk: int) -> Iterator[Task]:
    with path.open("rb") as fh:
        size = fh.seek(0, io.SEEK_END)
        start = 0
        while start < size:
            end = start + chunk
            if end >= size:
                end = size
            else:
                fh.seek(end)
                while True:
                    piece = fh.read(_SCAN)
                    nl = piece.find(b"\n")
                    if nl >= 0:
                        end += nl + 1
                        break
                    if not piece:
                        break  # the last line has no newline
                    end += len(piece)
            yield Task(path, seq, start, end)
            start = end


def _blocks(path: Path, seq: int, comp: str, chunk: int) -> Iterator[Task | str]:
    """Blocks of whole lines of a stream read as ``reader.iter_records`` reads it; when a
    read fails, the whole lines read before the failure, then the error."""
    parts: list[bytes] = []
    size = 0
    try:
        with open_stream(path, comp) as stream:
            # read1: one read of the underlying stream per call, as readline() fills its
            # buffer, so a failing read loses exactly what it loses in iter_records
            while piece := stream.read1(READ_BUFFER):
                parts.append(piece)
                size += len(piece)
                cut = piece.rfind(b"\n") + 1 if size >= chunk else 0
                if cut:  # one join of whole lines; the rest of the last piece goes on
                    parts[-1] = piece[:cut]
                    yield Task(path, seq, data=b"".join(parts))
                    rest = piece[cut:]
                    parts, size = ([rest] if rest else []), len(rest)
    except UNREADABLE as exc:
        data = b"".join(parts)
        cut = data.rfind(b"\n") + 1  # a line cut short by the failure is not a record
        if cut:
            yield Task(path, seq, data=data[:cut])
        yield read_error(path, exc)
        return
    if size:
        yield Task(path, seq, data=b"".join(parts))


def read_range(task: Task) -> bytes:
    """The bytes of a byte-range task (or the lines it carries). Raises ``OSError``."""
    if task.data is not None:
        return task.data
    with task.path.open("rb") as fh:
        fh.seek(task.start)
        return fh.read(task.end - task.start)
