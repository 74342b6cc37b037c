"""A real STUN server for the tests: Debian's coturn (``turnserver``) in STUN-only mode on
127.0.0.1, stopped by its own pid. Tests that need it skip (with the reason) when coturn is
not installed (``make deps`` installs it)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from didban.lab import stunserver


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def coturn(state: Path) -> Iterator[int]:
    """A coturn STUN server on 127.0.0.1; yields its port."""
    if shutil.which(stunserver.BINARY) is None:
        pytest.skip("coturn's turnserver is not installed (make deps installs it)")
    port = free_udp_port()
    log = (state / "turnserver.log").open("wb")
    proc = subprocess.Popen(
        stunserver.argv("127.0.0.1", port, state),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not stunserver.listening(proc.pid, "127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (state / "turnserver.log").read_text()[-500:]
                raise RuntimeError(f"turnserver did not start: {tail}")
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
