"""The records of one measurement file, each with the file and line it came from.

Lines are read one at a time from the (decompressed) stream, so memory stays constant
whatever the size of the file. A ``.json`` file that holds one JSON document (pretty-
printed over many lines, as OONI's single-measurement files are) is one record, line 1;
otherwise, as any JSONL file, one record per non-blank line, numbered from 1 (blank lines
count).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from didban.files.kinds import file_kind
from didban.files.streams import open_stream

MAX_JSON_DOCUMENT: Final = 64 * 1024 * 1024  # a single .json file is read whole up to this


@dataclass(frozen=True)
class Record:
    """One raw record and where it came from (``line`` counts from 1)."""

    path: Path
    line: int
    data: bytes


def iter_records(path: Path) -> Iterator[Record]:
    """The records of one file. Raises what ``streams.UNREADABLE`` names for unreadable,
    corrupt or truncated files (after the records before the damage)."""
    kind = file_kind(path)
    if kind is None:
        raise OSError("not a .json, .jsonl or .ndjson file (optionally .gz or .zst)")
    fmt, comp = kind
    with open_stream(path, comp) as stream:
        if fmt == "json":
            data = stream.read(MAX_JSON_DOCUMENT + 1)
            if len(data) <= MAX_JSON_DOCUMENT and _is_one_document(data):
                yield Record(path, 1, data)
                return
            stream = io.BufferedReader(io.BytesIO(data + stream.read()))
        for n, line in numbered_lines(stream):
            yield Record(path, n, line)


def numbered_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line) for the non-blank lines of JSONL (a stream, or
    ``io.BytesIO`` over a block of whole lines); blank lines are counted, not yielded."""
    for n, line in enumerate(lines, start=1):
        if line and not line.isspace():  # (strip() would copy every line to test it)
            yield n, line


def _is_one_document(data: bytes) -> bool:
    try:
        msgspec.json.decode(data)
    # too deep to decode: read as lines, so a one-line record is refused as one record and
    # the other lines of a JSONL file are kept
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return False
    return True
