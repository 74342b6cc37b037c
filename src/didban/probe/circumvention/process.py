"""A client program a circumvention experiment runs (Debian's ``tor``, ``obfs4proxy``,
``openvpn``, ``wireguard-go``, ``ss-local``): started in a temporary directory of its own,
its output read line by line with the measurement's clock, stopped by its pid.

Before anything starts, every address the client will be told to contact passes the
network guard (``didban.net.guard``: inside the lab only lab addresses, in tests only
loopback or a lab namespace), since the guard inside this Python process cannot see the
client's own sockets. Stopping sends SIGTERM to the pid, waits, then SIGKILL; the client
runs in a session of its own, so what it started (tor's pluggable transports) goes with
its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Final

from didban.net import guard

STOP_GRACE: Final = 3.0
MAX_LINES: Final = 5000


class ClientError(RuntimeError):
    """The client program cannot be run here (missing, or refused by the guard)."""


def check_addresses(addresses: Iterable[str]) -> None:
    """Raise ClientError unless the guard lets this host contact every address."""
    for address in addresses:
        try:
            guard.check(address)
        except guard.NetworkGuardError as exc:
            raise ClientError(str(exc)) from None


class ClientProcess:
    """One running client; use as ``async with ClientProcess(name, clock) as client``."""

    def __init__(self, name: str, clock: Callable[[], float]) -> None:
        self.name = name
        self.clock = clock
        self.dir = Path(tempfile.mkdtemp(prefix=f"didban-{name}-"))
        self.lines: list[tuple[float, str]] = []
        self.returncode: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> ClientProcess:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    async def start(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        if shutil.which(argv[0]) is None:
            raise ClientError(f"{argv[0]} is not installed")
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.dir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self._reader = asyncio.ensure_future(self._read())

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            async for raw in self._proc.stdout:
                if len(self.lines) < MAX_LINES:
                    self.lines.append((self.clock(), raw.decode(errors="replace").rstrip()))
                self._changed.set()
        finally:
            self.returncode = await self._proc.wait()
            self._changed.set()

    async def wait_for(
        self, match: Callable[[str], bool], timeout: float, start: int = 0
    ) -> int | None:
        """The index of the first line from ``start`` on that ``match``es; None when the
        client exits or ``timeout`` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = start
        while True:
            while seen < len(self.lines):
                if match(self.lines[seen][1]):
                    return seen
                seen += 1
            if self.returncode is not None:
                return None
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own group: tor's transports
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, STOP_GRACE)
        self.returncode = proc.returncode

    def text(self) -> list[str]:
        return [line for _, line in self.lines]
