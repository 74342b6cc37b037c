"""``usable_cpus``: the affinity mask, capped by a cgroup CPU quota (v1 or v2) of the
process's cgroup or any ancestor."""

from __future__ import annotations

import os
from pathlib import Path

from didban.files.cpus import usable_cpus


def _cgroup(tmp_path: Path, files: dict[str, str], self_cgroup: str) -> tuple[Path, Path]:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(self_cgroup)
    return tmp_path, proc


def test_usable_cpus_honours_a_cgroup_v2_quota_of_an_ancestor(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    root, proc = _cgroup(
        tmp_path,
        {
            "cpu.max": "max 100000\n",
            "system.slice/cpu.max": "100000 100000\n",  # one CPU for the whole slice
            "system.slice/job.service/cpu.max": "max 100000\n",
        },
        "0::/system.slice/job.service\n",
    )
    assert usable_cpus(root, proc) == 1
    (root / "system.slice/cpu.max").write_text("max 100000\n")
    assert usable_cpus(root, proc) == affinity  # no quota: the affinity mask


def test_usable_cpus_rounds_a_fractional_quota_up_and_reads_cgroup_v1(tmp_path: Path) -> None:
    root, proc = _cgroup(
        tmp_path,
        {"cpuacct,cpu/docker/abc/cpu.cfs_quota_us": "50000\n",
         "cpuacct,cpu/docker/abc/cpu.cfs_period_us": "100000\n"},
        "5:memory:/docker/abc\n4:cpuacct,cpu:/docker/abc\n",
    )  # fmt: skip
    assert usable_cpus(root, proc) == 1  # half a CPU: one worker, never zero
    (root / "cpuacct,cpu/docker/abc/cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cpus(root, proc) == len(os.sched_getaffinity(0))


def test_usable_cpus_without_cgroup_files_is_the_affinity_mask(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path / "none", tmp_path / "missing") == len(os.sched_getaffinity(0))
