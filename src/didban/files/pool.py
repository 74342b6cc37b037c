"""A function applied to every record of measurement files, in this process or in
``jobs`` worker processes, the results in input order.

``map_records(paths, work, refuse=..., on_error=..., counts=..., jobs=N)`` yields
``(Record, work(record bytes))`` for every record under ``paths``. A record for which
``work`` raises one of ``refuse`` is reported through ``on_error`` as ``FILE:LINE: reason``
and skipped; a file that cannot be read as ``FILE: cannot read: why`` (after the records
before the damage), once. With ``jobs`` > 1 the files are cut into tasks (``tasks``) and
``work`` — a module-level function, or a ``functools.partial`` of one, so that it pickles —
runs in worker processes; what is yielded and reported, its order and the counts are the
same as with one process, but the yielded records carry their file and line, not their
bytes (those stayed in the worker).

The parent keeps at most ``WINDOW_PER_JOB`` tasks per worker in flight (memory stays
bounded) and rebuilds line numbers per occurrence of a file (a file may be given twice).
``map_blocks(paths, work, on_error=..., jobs=N)`` is the same machinery for a ``work`` that
takes a task's records together (``[(line within the task, bytes), ...]``) and returns one
result for them (a bulk loader builds columnar batches that way): it yields a ``Block`` per
task, in input order, and a ``FileEnd`` after each file's last block.

Workers ignore SIGINT (Ctrl-C stops the parent, which cancels what is queued and shuts them
down) and, on Linux, are sent SIGTERM if the parent dies. A worker that dies raises
``concurrent.futures.process.BrokenProcessPool`` in the parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from didban.files.cpus import usable_cpus
from didban.files.kinds import iter_files
from didban.files.reader import Record, iter_records, numbered_lines
from didban.files.streams import UNREADABLE, read_error
from didban.files.tasks import CHUNK_BYTES, Task, read_range, tasks

R = TypeVar("R")
WINDOW_PER_JOB: Final = 3  # tasks in flight per worker
# Inputs smaller than this are read in this process (≈ 1,000 measurements of 20 KiB: a few
# tenths of a second, about what starting the workers costs).
PARALLEL_MIN_BYTES: Final = 16 << 20
_PR_SET_PDEATHSIG: Final = 1


@dataclass
class Counts:
    records: int = 0  # records ``work`` gave a result for
    refused: int = 0  # records it refused (reported as FILE:LINE: reason)
    unreadable_files: int = 0


def jobs_for(paths: Iterable[Path], requested: int) -> int:
    """Worker processes worth starting for ``paths``: ``requested`` (0: one per usable CPU),
    at most one per usable CPU, and 1 (none) for an input too small to repay starting them."""
    cpus = usable_cpus()
    jobs = min(requested or cpus, cpus)  # more processes than CPUs only add start-up
    if jobs > 1 and _total_size(paths) < PARALLEL_MIN_BYTES:
        return 1
    return jobs


def _total_size(paths: Iterable[Path]) -> int:
    total = 0
    for path in iter_files(paths):
        try:
            total += path.stat().st_size
        except OSError:
            continue
        if total >= PARALLEL_MIN_BYTES:
            break
    return total


def map_records(
    paths: Iterable[Path],
    work: Callable[[bytes], R],
    *,
    refuse: tuple[type[Exception], ...],
    on_error: Callable[[str], None],
    counts: Counts,
    jobs: int = 1,
) -> Iterator[tuple[Record, R]]:
    """``(record, work(record.data))`` for every record under ``paths``, in input order."""
    if jobs > 1:
        return _parallel(paths, work, refuse, on_error, counts, jobs)
    return _serial(paths, work, refuse, on_error, counts)


def _serial(
    paths: Iterable[Path],
    work: Callable[[bytes], R],
    refuse: tuple[type[Exception], ...],
    on_error: Callable[[str], None],
    counts: Counts,
) -> Iterator[tuple[Record, R]]:
    for path in iter_files(paths):
        try:
            for rec in iter_records(path):
                try:
                    result = work(rec.data)
                except refuse as exc:
                    counts.refused += 1
                    on_error(f"{rec.path}:{rec.line}: {exc}")
                    continue
                counts.records += 1
                yield rec, result
        except UNREADABLE as exc:
            counts.unreadable_files += 1
            on_error(read_error(path, exc))


# ---------------------------------------------------------------- in a worker process

# per record: (line within the task, accepted, the result or the reason it was refused)
_Result = tuple[int, bool, Any]


@dataclass(slots=True)
class _Done:
    results: list[_Result]
    lines: int  # lines in the task's bytes: the file's next task starts after them
    error: str | None = None  # the file could not be read (after ``results``)


_job: tuple[Callable[[bytes], Any], tuple[type[Exception], ...]] | None = None
_block_job: Callable[[list[tuple[int, bytes]]], Any] | None = None


def _init(work: Callable[[bytes], Any], refuse: tuple[type[Exception], ...]) -> None:
    global _job
    _job = (work, refuse)
    _detach()


def _init_blocks(work: Callable[[list[tuple[int, bytes]]], Any]) -> None:
    global _block_job
    _block_job = work
    _detach()


def _detach() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):  # do not outlive a parent killed by a signal
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _apply(line: int, data: bytes, out: list[_Result]) -> None:
    assert _job is not None, "worker not initialised"
    work, refuse = _job
    try:
        out.append((line, True, work(data)))
    except refuse as exc:
        out.append((line, False, str(exc)))


def _task_records(task: Task) -> tuple[list[tuple[int, bytes]], int, str | None]:
    """The records of a task (line within it, bytes), its number of lines, and the read
    error that ended it, if one did."""
    records: list[tuple[int, bytes]] = []
    if task.whole:
        try:
            for rec in iter_records(task.path):
                records.append((rec.line, rec.data))
        except UNREADABLE as exc:
            return records, 0, read_error(task.path, exc)
        return records, 0, None
    try:
        data = read_range(task)
    except OSError as exc:
        return records, 0, read_error(task.path, exc)
    records = list(numbered_lines(io.BytesIO(data)))
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return records, lines, None


def _run(task: Task) -> _Done:
    records, lines, error = _task_records(task)
    out: list[_Result] = []
    for n, line in records:
        _apply(n, line, out)
    return _Done(out, lines, error)


@dataclass(slots=True)
class _BlockDone:
    result: Any
    lines: int
    error: str | None


def _run_block(task: Task) -> _BlockDone:
    assert _block_job is not None, "worker not initialised"
    records, lines, error = _task_records(task)
    return _BlockDone(_block_job(records), lines, error)


# ---------------------------------------------------------------- in the parent


def _threads() -> int:
    """Threads of this process, native ones too (pyarrow's). A thread that has just been
    joined (the previous pool's manager) stays listed for a moment: it gets 20 ms to go."""
    for _ in range(20):
        try:
            n = len(os.listdir("/proc/self/task"))
        except OSError:
            return threading.active_count()
        if n == 1:
            break
        time.sleep(0.001)
    return n


def _context() -> multiprocessing.context.BaseContext:
    """fork when this process has one thread (a worker then starts with the modules and
    the work's data already loaded); forking a process with other threads can copy a lock
    one of them holds, so then forkserver (or the platform's default), which starts
    workers afresh and sends them ``work`` pickled."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and _threads() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else None)


def _parallel(
    paths: Iterable[Path],
    work: Callable[[bytes], R],
    refuse: tuple[type[Exception], ...],
    on_error: Callable[[str], None],
    counts: Counts,
    jobs: int,
) -> Iterator[tuple[Record, R]]:
    window: deque[tuple[Task, Future[_Done]] | str] = deque()
    seq = base = -1  # the file whose tasks are being drained, and its lines so far
    failed = -1  # the last file that could not be read: the rest of it is dropped

    def unreadable(message: str) -> None:
        counts.unreadable_files += 1
        on_error(message)

    def drain() -> Iterator[tuple[Record, R]]:
        nonlocal seq, base, failed
        item = window.popleft()
        if isinstance(item, str):
            unreadable(item)
            return
        task, future = item
        done = future.result()
        if task.seq == failed:
            return
        if task.seq != seq:
            seq, base = task.seq, 0
        for line, accepted, value in done.results:
            if not accepted:
                counts.refused += 1
                on_error(f"{task.path}:{base + line}: {value}")
                continue
            counts.records += 1
            yield Record(task.path, base + line, b""), value
        base += done.lines
        if done.error is not None:
            failed = task.seq
            unreadable(done.error)

    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=_context(), initializer=_init, initargs=(work, refuse)
    ) as pool:
        try:
            for n, path in enumerate(iter_files(paths)):
                for task in tasks(path, n):
                    if isinstance(task, str):
                        window.append(task)
                    else:
                        window.append((task, pool.submit(_run, task)))
                    while len(window) >= WINDOW_PER_JOB * jobs:
                        yield from drain()
            while window:
                yield from drain()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


# ---------------------------------------------------------------- blocks of records


@dataclass(frozen=True, slots=True)
class Block(Generic[R]):
    """What ``work`` made of one task's records. A record's line in its file is
    ``base`` + its line within the task."""

    path: Path
    seq: int  # which file of the input (the same file may come twice)
    base: int
    result: R


@dataclass(frozen=True, slots=True)
class FileEnd:
    """The last block of a file has been yielded; ``error`` says why it ended early."""

    path: Path
    seq: int
    error: str | None = None


def map_blocks(
    paths: Iterable[Path],
    work: Callable[[list[tuple[int, bytes]]], R],
    *,
    jobs: int = 1,
    block_bytes: int = CHUNK_BYTES,
) -> Iterator[Block[R] | FileEnd]:
    """``Block(work(records))`` for the records of each task of ``paths``, and a
    ``FileEnd`` after each file, in input order (see the module docstring)."""
    if jobs > 1:
        return _parallel_blocks(paths, work, jobs, block_bytes)
    return _serial_blocks(paths, work, block_bytes)


def _serial_blocks(
    paths: Iterable[Path], work: Callable[[list[tuple[int, bytes]]], R], block_bytes: int
) -> Iterator[Block[R] | FileEnd]:
    for seq, path in enumerate(iter_files(paths)):
        records: list[tuple[int, bytes]] = []
        size = 0
        error: str | None = None
        try:
            for rec in iter_records(path):
                records.append((rec.line, rec.data))
                size += len(rec.data)
                if size >= block_bytes:
                    yield Block(path, seq, 0, work(records))
                    records, size = [], 0
        except UNREADABLE as exc:
            error = read_error(path, exc)
        if records:
            yield Block(path, seq, 0, work(records))
        yield FileEnd(path, seq, error)


def _parallel_blocks(
    paths: Iterable[Path],
    work: Callable[[list[tuple[int, bytes]]], R],
    jobs: int,
    block_bytes: int,
) -> Iterator[Block[R] | FileEnd]:
    # in flight: a task and its future, a file's read error, or the end of a file
    window: deque[tuple[Task, Future[_BlockDone]] | FileEnd] = deque()
    bases: dict[int, int] = {}  # lines of each file so far
    failed: set[int] = set()  # files whose read failed: their later blocks are dropped

    def drain() -> Iterator[Block[R] | FileEnd]:
        item = window.popleft()
        if isinstance(item, FileEnd):
            if item.seq in failed:
                return
            if item.error is not None:
                failed.add(item.seq)
            bases.pop(item.seq, None)
            yield item
            return
        task, future = item
        done = future.result()
        if task.seq in failed:
            return
        base = bases.get(task.seq, 0)
        yield Block(task.path, task.seq, base, done.result)
        bases[task.seq] = base + done.lines
        if done.error is not None:
            failed.add(task.seq)
            bases.pop(task.seq, None)
            yield FileEnd(task.path, task.seq, done.error)

    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=_context(), initializer=_init_blocks, initargs=(work,)
    ) as pool:
        try:
            for n, path in enumerate(iter_files(paths)):
                for task in tasks(path, n, block_bytes):
                    if isinstance(task, str):
                        window.append(FileEnd(path, n, task))
                    else:
                        window.append((task, pool.submit(_run_block, task)))
                    while len(window) >= WINDOW_PER_JOB * jobs:
                        yield from drain()
                window.append(FileEnd(path, n))
            while window:
                yield from drain()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
