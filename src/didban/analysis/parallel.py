"""Batch classification on several cores: ``batch.classify_paths(..., jobs=N)``.

The unit of work is a task: a byte range of a plain JSONL file (about ``CHUNK_BYTES``,
cut at a line end), or a whole file for everything else (compressed, ``.json``). The
parent only finds where the ranges end (a seek and a short read each), so it never
reads or copies the measurements; each worker reads its task's bytes itself, classifies
every record with ``batch.classify_one`` (the very function the one-process path runs)
and returns, per record, its line number and the verdict encoded as MessagePack
(msgspec Structs round-trip exactly), or the reason it is malformed, and the file's read
error if there was one. The parent keeps at most ``WINDOW_PER_JOB`` tasks per worker in
flight, so memory stays bounded, and reports errors in the order the one-process path
reports them. Yielded records carry their file and line, not their bytes (those stayed
in the worker). Workers ignore SIGINT: Ctrl-C stops the parent, which cancels what is
queued and shuts them down.
"""

from __future__ import annotations

import io
import multiprocessing
import signal
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from didban.analysis import batch
from didban.analysis.classify import Malformed
from didban.analysis.fingerprints import Fingerprints
from didban.model.verdict import Verdict

CHUNK_BYTES: Final = 8 << 20  # bytes of a plain JSONL file per task
WINDOW_PER_JOB: Final = 3  # tasks in flight per worker
_SCAN: Final = 1 << 16  # read size while looking for the end of a range's last line

# per record: (line, encoded verdict, no_control, rate) or (line, reason it is malformed)
_Result = tuple[int, bytes, bool, float | None] | tuple[int, str]


@dataclass(frozen=True, slots=True)
class _Task:
    path: Path
    start: int = 0
    end: int = -1  # -1: the whole file, read with batch.iter_records


@dataclass(slots=True)
class _Done:
    results: list[_Result]
    lines: int  # lines in the range (ranges only): the next range's first line follows
    error: str | None = None  # the file could not be read (after ``results``)


_fps: Fingerprints | None = None
_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Verdict)


def _init(fps: Fingerprints) -> None:
    global _fps
    _fps = fps
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _classify(line: int, data: bytes, by_run: bool, out: list[_Result]) -> None:
    assert _fps is not None, "worker not initialised"
    try:
        verdict, no_control, rate = batch.classify_one(data, _fps, by_run)
    except Malformed as exc:
        out.append((line, str(exc)))
        return
    out.append((line, _encoder.encode(verdict), no_control, rate))


def _work(task: _Task, by_run: bool) -> _Done:
    out: list[_Result] = []
    if task.end < 0:
        try:
            for rec in batch.iter_records(task.path):
                _classify(rec.line, rec.data, by_run, out)
        except batch.UNREADABLE as exc:
            return _Done(out, 0, batch.read_error(task.path, exc))
        return _Done(out, 0)
    try:
        with task.path.open("rb") as fh:
            fh.seek(task.start)
            data = fh.read(task.end - task.start)
    except OSError as exc:
        return _Done(out, 0, batch.read_error(task.path, exc))
    n = 0
    for n, line in enumerate(io.BytesIO(data), start=1):
        if line and not line.isspace():
            _classify(n, line, by_run, out)
    return _Done(out, n)


def _plain_jsonl(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".jsonl", ".ndjson"))


def _tasks(path: Path) -> Iterator[_Task | str]:
    """The tasks of one file (or its read error)."""
    if not _plain_jsonl(path):
        yield _Task(path)
        return
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, io.SEEK_END)
            start = 0
            while start < size:
                end = start + CHUNK_BYTES
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
                yield _Task(path, start, end)
                start = end
    except OSError as exc:
        yield batch.read_error(path, exc)


def _context() -> multiprocessing.context.BaseContext:
    """fork when this process has one thread (a worker then starts with the modules and
    fingerprints already loaded); forking a process with other threads can copy a lock
    one of them holds, so then forkserver (or the platform's default), which starts
    workers afresh and sends them the fingerprints pickled."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else None)


def classified(
    paths: Iterable[Path],
    on_error: batch.ErrorSink,
    counts: batch.Counts,
    fps: Fingerprints,
    by_run: bool,
    jobs: int,
) -> Iterator[batch.Classified]:
    """What the one-process path yields, classified by ``jobs`` worker processes."""
    window: deque[tuple[_Task, Future[_Done]] | str] = deque()
    line_base: dict[Path, int] = {}

    def drain() -> Iterator[batch.Classified]:
        item = window.popleft()
        if isinstance(item, str):
            counts.unreadable_files += 1
            on_error(item)
            return
        task, future = item
        done = future.result()
        base = line_base.get(task.path, 0)
        line_base[task.path] = base + done.lines
        for res in done.results:
            line = base + res[0]
            if len(res) == 2:
                counts.malformed += 1
                on_error(f"{task.path}:{line}: {res[1]}")
                continue
            _, raw, no_control, rate = res
            counts.classified += 1
            yield batch.Record(task.path, line, b""), _decoder.decode(raw), no_control, rate
        if done.error is not None:
            counts.unreadable_files += 1
            on_error(done.error)

    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=_context(), initializer=_init, initargs=(fps,)
    ) as pool:
        try:
            for path in batch.iter_files(paths):
                for task in _tasks(path):
                    if isinstance(task, str):
                        window.append(task)
                    else:
                        window.append((task, pool.submit(_work, task, by_run)))
                    while len(window) >= WINDOW_PER_JOB * jobs:
                        yield from drain()
            while window:
                yield from drain()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
