"""Batch classification: measurement files and directories in, verdicts out, streaming.

Accepts JSONL (one measurement per line) and single-document JSON files, plain or
compressed with gzip (``.gz``) or Zstandard (``.zst``), and directories (walked
recursively, in sorted order). Lines are read one at a time from the (decompressed)
stream, so memory stays constant whatever the size of the input. A record that is not a
measurement is reported through ``on_error`` as ``file:line: reason`` and skipped.
Verdicts of one probe run are buffered until the run ends (at most ``nin.MAX_RUN``) so
that run-level rules (NIN isolation, shutdown) can relabel them. ``jobs`` > 1 has
``didban.analysis.parallel`` classify the records in worker processes, in the same order.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import zstandard

from didban.analysis import nin
from didban.analysis.classify import Malformed, classify_decoded
from didban.analysis.fingerprints import Fingerprints, default
from didban.model import zstdframe
from didban.model.verdict import Verdict

SUFFIXES: Final = (".jsonl", ".json", ".ndjson")
COMPRESSED: Final = (".gz", ".zst")
MAX_JSON_DOCUMENT: Final = 64 * 1024 * 1024  # a single .json file is read whole up to this


@dataclass(frozen=True)
class Record:
    """One raw record and where it came from (``line`` counts from 1)."""

    path: Path
    line: int
    data: bytes


def file_kind(path: Path) -> tuple[str, str] | None:
    """(format, compression) for a supported file name, else None."""
    name = path.name.lower()
    comp = ""
    for c in COMPRESSED:
        if name.endswith(c):
            comp, name = c, name[: -len(c)]
            break
    for s in SUFFIXES:
        if name.endswith(s):
            return ("json" if s == ".json" else "jsonl"), comp
    return None


def supported(path: Path) -> bool:
    return file_kind(path) is not None


def skipped_files(paths: Iterable[Path]) -> list[Path]:
    """The files under the directories among ``paths`` that ``iter_files`` passes over (not
    a measurement file by name), so a caller can say so."""
    return [
        child
        for p in paths
        if p.is_dir()
        for child in sorted(p.rglob("*"))
        if child.is_file() and not supported(child)
    ]


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every supported file under ``paths`` (files as given, directories recursively)."""
    for p in paths:
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and supported(child):
                    yield child
        else:
            yield p


# Measurements are lines of 3-350 KiB: with the default 8 KiB buffer, reading one took
# dozens of reads and joins.
READ_BUFFER = 1 << 20


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
    if comp == ".gz":
        return io.BufferedReader(_Read1(gzip.GzipFile(path, "rb")), READ_BUFFER)
    if comp == ".zst":
        return io.BufferedReader(_Zstd(path), READ_BUFFER)
    return io.BufferedReader(io.FileIO(path, "rb"), READ_BUFFER)


def iter_records(path: Path) -> Iterator[Record]:
    """The records of one file. Raises ``OSError`` for unreadable or corrupt files."""
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
        for n, line in enumerate(stream, start=1):
            if line and not line.isspace():  # (strip() would copy every line to test it)
                yield Record(path, n, line)


def _is_one_document(data: bytes) -> bool:
    try:
        msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    return True


ErrorSink = Callable[[str], None]


@dataclass
class Counts:
    classified: int = 0
    malformed: int = 0
    unreadable_files: int = 0


def classify_paths(
    paths: Iterable[Path],
    on_error: ErrorSink,
    counts: Counts | None = None,
    fingerprints: Fingerprints | None = None,
    *,
    by_run: bool = True,
    jobs: int = 1,
) -> Iterator[tuple[Record, Verdict]]:
    """Verdicts for every measurement under ``paths``; bad records go to ``on_error``.

    With ``by_run`` (the default), the verdicts of each probe run are also judged together
    (``analysis.nin``: NIN isolation, shutdown); they are yielded in input order, a run's
    once the run is complete. With ``jobs`` > 1 the records are classified by that many
    worker processes (``didban.analysis.parallel``); verdicts, errors, their order and the
    counts are the same as with one, but the yielded records carry their file and line,
    not their bytes (``data`` is empty).
    """
    fps = fingerprints or default()
    counts = counts if counts is not None else Counts()
    if jobs > 1:
        from didban.analysis import parallel

        results = parallel.classified(paths, on_error, counts, fps, by_run, jobs)
    else:
        results = _classified(paths, on_error, counts, fps, by_run)
    if not by_run:
        for rec, verdict, _, _ in results:
            yield rec, verdict
        return
    runs: nin.Runs[Record] = nin.Runs()
    for rec, verdict, no_control, rate in results:
        yield from runs.add(rec, verdict, no_control, rate)
    yield from runs.flush()


Classified = tuple[Record, Verdict, bool, float | None]
"""A record, its verdict, and what the run-level pass reads of it (``classify_one``)."""


def classify_one(
    data: bytes, fps: Fingerprints, by_run: bool
) -> tuple[Verdict, bool, float | None]:
    """One record's verdict, whether it is unreachable without a control and its fetch
    rate (the run-level pass reads these, so it never decodes the bytes a second time).
    Raises ``Malformed``."""
    verdict, decoded = classify_decoded(data, fps)
    if not by_run:
        return verdict, False, None
    m = decoded if decoded is not None else data
    no_control = verdict.rule_id == "wc.control.missing" and (
        nin.unreachable_without_control(m, fps)
    )
    rate = nin.fetch_rate(m) if verdict.test_name in nin.WEB_TESTS else None
    return verdict, no_control, rate


def read_error(path: Path, exc: BaseException) -> str:
    return f"{path}: cannot read: {exc}"


UNREADABLE: Final = (OSError, EOFError, zstandard.ZstdError)


def _classified(
    paths: Iterable[Path], on_error: ErrorSink, counts: Counts, fps: Fingerprints, by_run: bool
) -> Iterator[Classified]:
    for path in iter_files(paths):
        try:
            for rec in iter_records(path):
                try:
                    verdict, no_control, rate = classify_one(rec.data, fps, by_run)
                except Malformed as exc:
                    counts.malformed += 1
                    on_error(f"{rec.path}:{rec.line}: {exc}")
                    continue
                counts.classified += 1
                yield rec, verdict, no_control, rate
        except UNREADABLE as exc:
            counts.unreadable_files += 1
            on_error(read_error(path, exc))
