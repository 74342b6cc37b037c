"""Cleanup: after ``down`` — also after the lab's processes were SIGKILLed, a tool was left
running inside it, or ``up`` itself died half way — no namespace, /etc/netns entry, state
dir, veth or process of that lab remains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from didban.lab import plan, runtime, state, topology

pytestmark = pytest.mark.lab


def _netns_inodes_in_use() -> set[int]:
    """Inodes of every network namespace some process is in."""
    found: set[int] = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
            except OSError:
                continue
    return found


def _snapshot(prefix: str) -> tuple[list[str], dict[str, int], list[state.Proc]]:
    names = list(topology.namespaces(prefix).values())
    inodes = {n: ino for n in names if (ino := topology.netns_inode(n)) is not None}
    record = state.load(state.lab_dir(prefix))
    return names, inodes, list(record.procs) if record else []


def _assert_gone(
    prefix: str, names: list[str], inodes: dict[str, int], procs: list[state.Proc]
) -> None:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [n for n in names if n in listed]
    assert not [n for n in names if Path(f"/etc/netns/{n}").exists()]
    assert not state.lab_dir(prefix).exists()
    assert not [p.name for p in procs if state.alive(p)]
    # A namespace (and the veths in it) lives as long as a process or mount holds it.
    assert len(inodes) == len(names)
    assert not set(inodes.values()) & _netns_inodes_in_use()
    root_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert prefix not in root_links


def test_down_removes_namespaces_processes_and_files() -> None:
    desc = runtime.up("clean", control=False, make_current=False)
    names, inodes, procs = _snapshot(desc.prefix)
    assert len(procs) >= 2 and all(state.alive(p) for p in procs)
    assert (
        Path(f"/etc/netns/{desc.client_netns}/resolv.conf")
        .read_text()
        .startswith(f"nameserver {plan.ISP_RESOLVER}")
    )
    deleted = runtime.down(desc.state_dir)
    assert sorted(deleted) == sorted(names)
    _assert_gone(desc.prefix, names, inodes, procs)


def test_down_after_sigkill_and_with_a_tool_left_running_inside() -> None:
    desc = runtime.up("clean", control=False, make_current=False)
    names, inodes, procs = _snapshot(desc.prefix)
    tool = subprocess.Popen(["ip", "netns", "exec", desc.client_netns, "sleep", "300"])
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
    runtime.down(desc.prefix)
    assert tool.wait(timeout=5) == -signal.SIGKILL
    _assert_gone(desc.prefix, names, inodes, procs)


_DIE_HALF_WAY = textwrap.dedent(
    """
    import os, signal, sys
    from didban.lab import runtime

    def die(record, checks, timeout):
        print(record.prefix, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)   # namespaces built, processes started

    runtime.wait_ready = die
    runtime.up("clean", control=False, make_current=False)
    """
)


def test_a_lab_whose_up_died_half_way_is_removable() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _DIE_HALF_WAY], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    prefix = proc.stdout.strip()
    names, inodes, procs = _snapshot(prefix)
    assert topology.existing(names) == names  # it really was left behind
    assert procs, "the dead up had started processes"
    runtime.down(prefix)
    _assert_gone(prefix, names, inodes, procs)


def test_down_of_a_lab_that_is_already_gone_is_harmless() -> None:
    desc = runtime.up("clean", control=False, make_current=False)
    names, inodes, procs = _snapshot(desc.prefix)
    topology.destroy(names)  # someone deleted the namespaces by hand
    runtime.down(desc.prefix)
    _assert_gone(desc.prefix, names, inodes, procs)
