"""The run's JSONL output: one measurement per line, appended and fsynced as each finishes.

Each line is written with a single ``write`` on an ``O_APPEND`` descriptor and then
``fsync``ed, so an interrupted run (Ctrl-C, SIGTERM, power loss after the sync) leaves a
file whose every line is one complete measurement. Every line is scrubbed of the probe's
addresses before it is written. With an upload queue, each line is also queued (durably)
as it is written, so a probe killed mid-run loses nothing it measured: the next
``--upload`` run sends what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import msgspec

from didban.probe.scrub import Scrubber


class OutputError(ValueError):
    """The output file cannot be used (exists, directory missing, not writable)."""


class Queue(Protocol):
    """What the writer needs of ``didban.probe.upload.UploadQueue``."""

    def put(self, measurement: bytes) -> Any: ...


class JsonlWriter:
    def __init__(
        self,
        path: Path,
        scrubber: Scrubber,
        *,
        append: bool = False,
        queue: Queue | None = None,
    ) -> None:
        self.path = path
        self.scrubber = scrubber
        self.queue = queue
        self.count = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        if not append:
            flags |= os.O_EXCL
        try:
            self._fd: int | None = os.open(path, flags, 0o644)
        except FileExistsError:
            raise OutputError(
                f"{path} already exists; choose another --output or pass --append"
            ) from None
        except FileNotFoundError:
            raise OutputError(f"{path}: the directory {path.parent} does not exist") from None
        except IsADirectoryError:
            raise OutputError(f"{path} is a directory; --output needs a file name") from None
        except OSError as exc:
            raise OutputError(f"{path}: cannot create it ({exc.strerror})") from None
        self._encoder = msgspec.json.Encoder()
        # fsync takes milliseconds: run it off the event loop, on one thread of our own
        # (not the default executor, which getaddrinfo needs).
        self._sync = ThreadPoolExecutor(max_workers=1, thread_name_prefix="didban-fsync")

    def _append(self, measurement: Any) -> tuple[bytes, int]:
        fd = self._fd
        if fd is None:
            raise OutputError(f"{self.path} is closed")
        raw = self.scrubber.bytes(self._encoder.encode(measurement))
        view = memoryview(raw + b"\n")
        while view:
            view = view[os.write(fd, view) :]
        self.count += 1
        return raw, fd

    def write(self, measurement: Any) -> bytes:
        """Serialise, scrub, append one line, fsync; returns the bytes written (no newline)."""
        raw, fd = self._append(measurement)
        os.fsync(fd)
        if self.queue is not None:
            self.queue.put(raw)
        return raw

    async def awrite(
        self, measurement: Any, on_appended: Callable[[bytes], None] | None = None
    ) -> bytes:
        """:meth:`write` for the event loop: the line is appended at once (lines never
        interleave), its fsync and queueing are handed to the writer's own thread as one
        job, then ``on_appended`` is told and the job awaited. A run cancelled during that
        wait (Ctrl-C) only stops waiting: the job stays queued or running, and
        :meth:`close` waits for every job, so each appended line is synced and queued."""
        raw, fd = self._append(measurement)
        job = self._sync.submit(self._settle, fd, raw)
        if on_appended is not None:
            on_appended(raw)
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            if not settled.done():
                settled.set_result(None)

        def wake(_: object) -> None:  # from the fsync thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(done)

        job.add_done_callback(wake)
        await settled  # cancelling this wait does not cancel the job
        job.result()  # an fsync or queue failure is the caller's
        return raw

    def _settle(self, fd: int, raw: bytes) -> None:
        os.fsync(fd)
        if self.queue is not None:
            self.queue.put(raw)

    def close(self) -> None:
        """Wait for pending fsyncs, sync once more and close the file."""
        self._sync.shutdown(wait=True)
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
