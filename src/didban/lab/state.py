"""What a lab leaves on disk so that it can always be removed: its record and its processes.

``/run/didban/labs/<prefix>/state.json`` is written before the first namespace exists and
updated after each process starts. It names the namespaces, the ``/etc/netns`` entries and
every process (pid + start time from ``/proc``, so a reused pid is never signalled). The
directory name is the prefix itself, so even a lab whose ``up`` died before its record was
written can be removed: its namespace names follow from the prefix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

import msgspec

from didban.lab import plan
from didban.model.labinfo import LabCircumvention

RECORD_FILE: Final = "state.json"
DESCRIPTOR_FILE: Final = "lab.json"
PROFILE_FILE: Final = "profile.json"
PREFIX_RE: Final = re.compile(r"^[a-z][a-z0-9]{1,10}-$")


class Proc(msgspec.Struct):
    name: str
    pid: int
    start: int  # /proc/<pid>/stat field 22 (clock ticks since boot)
    netns: str
    argv: list[str]


class LabRecord(msgspec.Struct):
    prefix: str
    state_dir: str
    namespaces: dict[str, str]
    profile: str
    created: str
    procs: list[Proc] = msgspec.field(default_factory=list)
    etc_netns: list[str] = msgspec.field(default_factory=list)
    circumvention: LabCircumvention | None = None  # once `didban lab circumvention` ran


def run_dir() -> Path:
    return Path(plan.RUN_DIR)


def lab_dir(prefix: str) -> Path:
    return run_dir() / prefix


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save(record: LabRecord) -> None:
    write_atomic(Path(record.state_dir) / RECORD_FILE, msgspec.json.encode(record))


def load(state_dir: Path) -> LabRecord | None:
    """The record of the lab in ``state_dir``; None when it is missing or unreadable."""
    try:
        return msgspec.json.decode((state_dir / RECORD_FILE).read_bytes(), type=LabRecord)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def labs() -> list[Path]:
    """State dirs of every lab under ``/run/didban/labs`` (names shaped like a prefix)."""
    root = run_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and PREFIX_RE.match(p.name))


def _stat_fields(pid: int) -> list[str] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data.rsplit(")", 1)[1].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(proc: Proc) -> bool:
    """True when ``proc`` is still the same, running (not zombie) process."""
    fields = _stat_fields(proc.pid)
    return bool(fields) and int(fields[19]) == proc.start and fields[0] not in ("Z", "X")  # type: ignore[index]


def current_dir() -> Path | None:
    """State dir the ``current-lab`` link points at (the link names its lab.json)."""
    link = Path(plan.CURRENT_LINK)
    try:
        target = Path(os.readlink(link))
    except OSError:
        return None
    if not target.is_absolute():
        target = link.parent / target
    return target.parent if target.name == DESCRIPTOR_FILE else target
