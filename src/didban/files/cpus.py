"""How many CPUs this process may use: its affinity mask, capped by a cgroup CPU quota
(v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``) of its cgroup or any ancestor, as containers
and service managers set it."""

from __future__ import annotations

import math
import os
from pathlib import Path


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
                q = _quota(" ".join((d / f).read_text() for f in files))
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
