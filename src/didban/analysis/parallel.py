"""Batch classification on several cores: ``batch.classify_paths(..., jobs=N)``.

The input is cut into tasks, each classified by a worker process with
``batch.classify_one`` (the very function the one-process path runs):

* a plain JSONL file on disk: byte ranges of about ``CHUNK_BYTES``, cut at line ends. The
  parent only finds where each range ends (a seek and a short read), so it never reads or
  copies the measurements; the worker reads its range itself;
* a compressed file, or one that is not a regular file (a pipe): the parent decompresses
  it as the one-process path does and sends blocks of whole lines of about ``CHUNK_BYTES``;
* a ``.json`` file (one document, or JSONL under that name): the whole file, read by the
  worker with ``batch.iter_records``.

Per record the worker returns its line within the task and the verdict encoded as
MessagePack (msgspec Structs round-trip exactly), or the reason it is malformed. The
parent keeps at most ``WINDOW_PER_JOB`` tasks per worker in flight (memory stays bounded),
rebuilds line numbers per occurrence of a file (a file may be given twice), and reports
everything in the order the one-process path does: the same verdicts, ``file:line``
errors, one "cannot read" per unreadable file (nothing of that file after it), the same
counts. Yielded records carry their file and line, not their bytes (those stayed in the
worker). Workers ignore SIGINT (Ctrl-C stops the parent, which cancels what is queued and
shuts them down) and, on Linux, are sent SIGTERM if the parent dies.

``usable_cpus`` is how many CPUs this process may use: its affinity mask, capped by a
cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``) of its cgroup or any ancestor,
as containers and service managers set it.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import math
import multiprocessing
import os
import signal
import stat
import sys
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

CHUNK_BYTES: Final = 8 << 20  # bytes of JSONL per task
WINDOW_PER_JOB: Final = 3  # tasks in flight per worker
_SCAN: Final = 1 << 16  # read size while looking for the end of a range's last line
_PR_SET_PDEATHSIG: Final = 1

# per record: (line, encoded verdict, no_control, rate) or (line, reason it is malformed)
_Result = tuple[int, bytes, bool, float | None] | tuple[int, str]


def _quota(text: str) -> float | None:
    """CPUs granted by a ``cpu.max`` line ("max 100000", "150000 100000"); None: no limit."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _cgroup_quota(root: Path, proc_cgroup: str) -> float | None:
    """The tightest CPU quota on this process's cgroup path and its ancestors."""
    best: float | None = None
    files: tuple[str, ...]
    for line in proc_cgroup.splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hid == "0" and controllers == "":  # cgroup v2
            base, files = root, ("cpu.max",)
        elif "cpu" in controllers.split(","):  # cgroup v1: mounted by its controller list
            mounts = (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu")
            base = next((root / m for m in mounts if (root / m).is_dir()), root)
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        d = Path(os.path.normpath(base / path.lstrip("/")))
        if d != base and base not in d.parents:
            continue  # a path outside the mount (".."): nothing of ours to read
        while True:
            try:
                if len(files) == 1:
                    q = _quota((d / files[0]).read_text())
                else:
                    q = _quota(f"{(d / files[0]).read_text()} {(d / files[1]).read_text()}")
            except OSError:
                q = None
            if q is not None and (best is None or q < best):
                best = q
            if d == base or base not in d.parents:
                break
            d = d.parent
    return best


def usable_cpus(
    root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup CPU quota (rounded
    up: a quota of 1.5 CPUs lets two workers share it)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota = _cgroup_quota(root, proc_cgroup.read_text())
    except OSError:
        quota = None
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


@dataclass(frozen=True, slots=True)
class _Task:
    path: Path
    seq: int  # which file of the input this is (the same file may come twice)
    start: int = 0  # a byte range the worker reads ...
    end: int = 0
    data: bytes | None = None  # ... or the lines themselves ...
    whole: bool = False  # ... or the whole file, read with batch.iter_records


@dataclass(slots=True)
class _Done:
    results: list[_Result]
    lines: int  # lines in the task's bytes: the file's next task starts after them
    error: str | None = None  # the file could not be read (after ``results``)


_fps: Fingerprints | None = None
_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Verdict)


def _init(fps: Fingerprints) -> None:
    global _fps
    _fps = fps
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):  # do not outlive a parent killed by a signal
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _classify(line: int, data: bytes, by_run: bool, out: list[_Result]) -> None:
    assert _fps is not None, "worker not initialised"
    try:
        verdict, no_control, rate = batch.classify_one(data, _fps, by_run)
    except Malformed as exc:
        out.append((line, str(exc)))
        return
    out.append((line, _encoder.encode(verdict), no_control, rate))


def _lines(data: bytes, by_run: bool, out: list[_Result]) -> int:
    n = 0
    for n, line in enumerate(io.BytesIO(data), start=1):
        if line and not line.isspace():  # as batch.iter_records
            _classify(n, line, by_run, out)
    return n


def _work(task: _Task, by_run: bool) -> _Done:
    out: list[_Result] = []
    if task.whole:
        try:
            for rec in batch.iter_records(task.path):
                _classify(rec.line, rec.data, by_run, out)
        except batch.UNREADABLE as exc:
            return _Done(out, 0, batch.read_error(task.path, exc))
        return _Done(out, 0)
    data = task.data
    if data is None:
        try:
            with task.path.open("rb") as fh:
                fh.seek(task.start)
                data = fh.read(task.end - task.start)
        except OSError as exc:
            return _Done(out, 0, batch.read_error(task.path, exc))
    return _Done(out, _lines(data, by_run, out))


def _ranges(path: Path, seq: int) -> Iterator[_Task]:
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
            yield _Task(path, seq, start, end)
            start = end


def _blocks(path: Path, seq: int, comp: str) -> Iterator[_Task | str]:
    """Blocks of whole lines of a stream read as ``batch.iter_records`` reads it; when a
    read fails, the whole lines read before the failure, then the error."""
    parts: list[bytes] = []
    size = 0
    try:
        with batch.open_stream(path, comp) as stream:
            # read1: one read of the underlying stream per call, as readline() fills its
            # buffer, so a failing read loses exactly what it loses in iter_records
            while piece := stream.read1(batch.READ_BUFFER):
                parts.append(piece)
                size += len(piece)
                if size >= CHUNK_BYTES and b"\n" in piece:
                    data = b"".join(parts)
                    cut = data.rfind(b"\n") + 1
                    yield _Task(path, seq, data=data[:cut])
                    parts, size = [data[cut:]], len(data) - cut
    except batch.UNREADABLE as exc:
        data = b"".join(parts)
        cut = data.rfind(b"\n") + 1  # a line cut short by the failure is not a record
        if cut:
            yield _Task(path, seq, data=data[:cut])
        yield batch.read_error(path, exc)
        return
    if size:
        yield _Task(path, seq, data=b"".join(parts))


def _tasks(path: Path, seq: int) -> Iterator[_Task | str]:
    """The tasks of one file, or its read error (a string)."""
    kind = batch.file_kind(path)
    if kind is None or kind[0] == "json":
        yield _Task(path, seq, whole=True)  # the worker reports what iter_records says
        return
    comp = kind[1]
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError as exc:
        yield batch.read_error(path, exc)
        return
    if comp or not regular:
        yield from _blocks(path, seq, comp)
        return
    try:
        yield from _ranges(path, seq)
    except OSError as exc:
        yield batch.read_error(path, exc)


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))  # native threads too (pyarrow's)
    except OSError:
        return threading.active_count()


def _context() -> multiprocessing.context.BaseContext:
    """fork when this process has one thread (a worker then starts with the modules and
    fingerprints already loaded); forking a process with other threads can copy a lock
    one of them holds, so then forkserver (or the platform's default), which starts
    workers afresh and sends them the fingerprints pickled."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and _threads() == 1:
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
    seq = base = -1  # the file whose tasks are being drained, and its lines so far
    failed = -1  # the last file that could not be read: the rest of it is dropped

    def unreadable(message: str) -> None:
        counts.unreadable_files += 1
        on_error(message)

    def drain() -> Iterator[batch.Classified]:
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
        for res in done.results:
            line = base + res[0]
            if len(res) == 2:
                counts.malformed += 1
                on_error(f"{task.path}:{line}: {res[1]}")
                continue
            _, raw, no_control, rate = res
            counts.classified += 1
            yield batch.Record(task.path, line, b""), _decoder.decode(raw), no_control, rate
        base += done.lines
        if done.error is not None:
            failed = task.seq
            unreadable(done.error)

    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=_context(), initializer=_init, initargs=(fps,)
    ) as pool:
        try:
            for n, path in enumerate(batch.iter_files(paths)):
                for task in _tasks(path, n):
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
