"""The censor's kernel state in the isp namespace: its own iptables chains (hooked from
FORWARD, raw OUTPUT and nat PREROUTING, replaced atomically with ``iptables-restore
--noflush``) and its htb qdiscs. Everything it installs it can remove again, and nothing
else."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from didban.lab.censor.policy import CHAIN, NAT_CHAIN, RAW_CHAIN, Policy

HOOKS = (
    ("filter", "FORWARD", CHAIN),
    ("raw", "OUTPUT", RAW_CHAIN),
    ("nat", "PREROUTING", NAT_CHAIN),
)


class KernelError(RuntimeError):
    """An iptables or tc command failed; the message says which and why."""


def _run(cmd: Sequence[str], stdin: str | None = None, check: bool = True) -> bool:
    r = subprocess.run(list(cmd), input=stdin, capture_output=True, text=True)
    if r.returncode != 0 and check:
        raise KernelError(f"{' '.join(cmd)} failed: {r.stderr.strip() or r.returncode}")
    return r.returncode == 0


def install(policy: Policy, old_devices: Sequence[str] = ()) -> list[str]:
    """Replace our chains with ``policy``'s (atomic), hook them, and rebuild our qdiscs.
    Returns the devices now carrying a qdisc of ours."""
    _run(["iptables-restore", "--noflush"], stdin=policy.iptables_restore())
    for table, parent, chain in HOOKS:
        if not _run(["iptables", "-t", table, "-C", parent, "-j", chain], check=False):
            _run(["iptables", "-t", table, "-I", parent, "1", "-j", chain])
    for dev in old_devices:
        _run(["tc", "qdisc", "del", "dev", dev, "root", "handle", "1d1b:"], check=False)
    for cmd in policy.tc_commands():
        _run(["tc", *cmd])
    return policy.tc_devices()


def remove(devices: Sequence[str]) -> list[str]:
    """Unhook and delete our chains and qdiscs; returns the problems met (best effort)."""
    problems: list[str] = []
    for table, parent, chain in HOOKS:
        while _run(["iptables", "-t", table, "-D", parent, "-j", chain], check=False):
            pass
        for flag in ("-F", "-X"):
            try:
                _run(["iptables", "-t", table, flag, chain])
            except KernelError as e:
                problems.append(str(e))
    for dev in devices:
        _run(["tc", "qdisc", "del", "dev", dev, "root", "handle", "1d1b:"], check=False)
    return problems
