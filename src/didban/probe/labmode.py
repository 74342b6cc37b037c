"""``didban run --lab``: run the probe inside the current lab's client namespace.

The probe never imports ``didban.lab``: it reads the lab descriptor (``model.labinfo``) from
``/run/didban/current-lab`` and re-executes the very same command with
``ip netns exec <client_netns>``, with ``SSL_CERT_FILE`` pointing at the lab CA. The inner
process sees that it runs in that namespace (its network namespace is the one named) and
takes the lab's UDP resolver, DoH URL + bootstrap address, control URL, CA and IP→ASN
table from the descriptor (explicit flags still win). A command already in the client
namespace (``didban lab exec -- didban dnscheck``) runs as with ``--lab`` (``around``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from didban.model.labinfo import LabDescriptor

# Where ``didban lab up`` points at the running lab's descriptor (model/labinfo.py).
CURRENT_LINK = "/run/didban/current-lab"
# Optional override: the path of one lab's lab.json (the lab test fixtures set it), so a
# command can target a lab that is not the current one.
DESCRIPTOR_ENV = "DIDBAN_LAB"


class LabModeError(RuntimeError):
    """The lab cannot be used (none up, unreadable descriptor, not root)."""


def descriptor_path(link: str = CURRENT_LINK) -> Path:
    p = Path(link)
    return p / "lab.json" if p.is_dir() else p


def load(link: str | None = None) -> LabDescriptor:
    """The descriptor of ``$DIDBAN_LAB`` if set, else of the current lab."""
    link = link or os.environ.get(DESCRIPTOR_ENV) or CURRENT_LINK
    path = descriptor_path(link)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LabModeError(
            f"no lab is up ({link} does not exist); start one with 'didban lab up'"
        ) from None
    except OSError as exc:
        raise LabModeError(f"cannot read the lab descriptor {path}: {exc.strerror}") from None
    try:
        return msgspec.json.decode(raw, type=LabDescriptor)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise LabModeError(f"the lab descriptor {path} is not valid: {exc}") from None


def _netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def inside(lab: LabDescriptor) -> bool:
    """True when this process runs in the lab's client namespace (re-executed, or started
    there by ``didban lab exec``)."""
    mine = _netns_inode("/proc/thread-self/ns/net")
    target = _netns_inode(f"/run/netns/{lab.client_netns}")
    return mine is not None and mine == target


def around() -> LabDescriptor | None:
    """The lab (``$DIDBAN_LAB``, else the current one) whose client namespace this process
    runs in, or None: a command started with ``didban lab exec`` without ``--lab``, where
    the public resolvers and helpers cannot be reached, uses the lab's."""
    try:
        lab = load()
    except LabModeError:
        return None
    return lab if inside(lab) else None


def reexec(lab: LabDescriptor, argv: list[str]) -> int:
    """Run ``python -m didban.cli <argv>`` in the client namespace; its exit code."""
    if os.geteuid() != 0:
        raise LabModeError("didban run --lab needs root (it uses 'ip netns exec')")
    if _netns_inode(f"/run/netns/{lab.client_netns}") is None:
        raise LabModeError(
            f"the lab's client namespace {lab.client_netns} does not exist; "
            "is the lab still up? ('didban lab status')"
        )
    env = dict(os.environ)
    env["SSL_CERT_FILE"] = lab.ca_file
    cmd = ["ip", "netns", "exec", lab.client_netns, sys.executable, "-m", "didban.cli", *argv]
    # The child has its own process group, and every stop signal this process gets (Ctrl-C
    # from the terminal, SIGTERM from kill or timeout, SIGHUP) is passed on to it once;
    # this process then waits for it, so the command never returns while the measurement
    # still runs, and the child finishes its file and prints its summary.
    # Handlers go in before the child starts: a signal in between is held and passed on.
    proc: subprocess.Popen[bytes] | None = None
    held: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if proc is None:
            held.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in stops}
    try:
        proc = subprocess.Popen(cmd, env=env, process_group=0)
        for signum in held:
            proc.send_signal(signum)
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N
