"""The lab's STUN servers: Debian's coturn (``turnserver``) in STUN-only mode, one process
per STUN endpoint of the app catalog (``data/apps.yaml``: ``stun.l.google.com:19302``,
``stun.voipgate.com:3478``), listening on the lab address of its name
(:func:`plan.app_hosts`). ``lab up`` starts them in the ``inet`` namespace and records
their pids; ``lab down`` stops them by pid like every lab process.

coturn answers a Binding request with a Binding success carrying XOR-MAPPED-ADDRESS (the
client's address as it saw it) and SOFTWARE; without ``--no-tcp`` it also answers STUN
over TCP. Its user database and pid file live in the lab's state directory, so nothing is
written to ``/var/lib/turn`` or ``/var/run``.
"""

from __future__ import annotations

import shutil
import socket
import struct
from pathlib import Path
from typing import Final

from didban.data import apps
from didban.lab import plan

BINARY: Final = "turnserver"


def available() -> bool:
    return shutil.which(BINARY) is not None


def servers() -> list[tuple[str, str, int]]:
    """(name, lab address, port) of every STUN endpoint of the catalog."""
    where = {host: addr for host, addr, _ in plan.app_hosts()}
    out: list[tuple[str, str, int]] = []
    for app in apps.apps():
        for e in app.of_kind("stun"):
            name = e.hostname
            if name and name in where:
                out.extend((name, where[name], port) for port in e.ports)
    return out


def argv(address: str, port: int, state_dir: Path) -> list[str]:
    """The foreground ``turnserver`` command for one STUN server."""
    tag = f"{address}-{port}"
    return [
        BINARY,
        "--stun-only",
        "--listening-ip", address,
        "--listening-port", str(port),
        "--no-cli", "--no-tls", "--no-dtls",
        "-n",  # no configuration file
        "--log-file", "stdout", "--simple-log",
        "--db", str(state_dir / f"turndb-{tag}"),
        "--pidfile", str(state_dir / f"turnserver-{tag}.pid"),
    ]  # fmt: skip


def listening(pid: int, address: str, port: int) -> bool:
    """True when ``address:port`` is a bound UDP socket in the netns of ``pid``."""
    want = f"{struct.unpack('<I', socket.inet_aton(address))[0]:08X}:{port:04X}"
    try:
        with open(f"/proc/{pid}/net/udp") as fh:
            next(fh)
            return any(line.split()[1] == want for line in fh)
    except (OSError, StopIteration, IndexError):
        return False
