"""``didban run --lab --test circumvention`` against the lab's real servers under every
shipped profile — one lab and one Tor network for all of them (``lab switch`` between
profiles): every measurement loads with OONI's data model of its test, every target gets
its profile's ground-truth verdict, the censor's log names the rule that caught it, and
what the servers and the clients started is stopped by pid when it is done."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

import ooni_models
from didban.analysis import classify
from didban.lab import profiles, runtime, state, targets
from didban.lab.circumvention import start
from didban.model.labinfo import LabDescriptor
from didban.model.validate import problems

pytestmark = pytest.mark.lab

PROFILES = [
    "clean",
    "iran-2022",
    "iran-protocol-filter",
    "iran-strict-dpi",
    "iran-2019-shutdown",
    "isp-dns-redirects",
    "national-root-mitm",
]


def _didban(
    desc: LabDescriptor, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIDBAN_LAB": str(Path(desc.state_dir) / "lab.json"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "didban.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@dataclass
class CircLab:
    desc: LabDescriptor
    start_seconds: float
    stdout: str


@pytest.fixture(scope="module")
def circ_lab() -> Iterator[CircLab]:
    """One lab with its circumvention servers for every profile; at the end, ``lab down``
    must have stopped every server by pid (checked after the tests, as teardown)."""
    desc = runtime.up("clean", control=True, make_current=False)
    procs: list[state.Proc] = []
    try:
        t0 = time.monotonic()
        r = _didban(desc, "lab", "circumvention", timeout=180)
        took = time.monotonic() - t0
        assert r.returncode == 0, r.stderr[-2000:]
        record = state.load(Path(desc.state_dir))
        procs = [p for p in record.procs if p.name.startswith(start.NAMES)] if record else []
        yield CircLab(runtime.read_descriptor(Path(desc.state_dir)), took, r.stdout)
    finally:
        runtime.down(desc.state_dir)
    assert procs and not any(state.alive(p) for p in procs)
    assert glob.glob(f"/var/run/wireguard/{desc.prefix}*") == []


@dataclass
class Run:
    profile: profiles.Profile
    measurements: list[dict[str, Any]]
    stderr: str
    censor_log: str


@pytest.fixture(scope="module", params=PROFILES)
def circ_run(
    request: pytest.FixtureRequest, circ_lab: CircLab, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    name = request.param
    sd = Path(circ_lab.desc.state_dir)
    runtime.switch(name, sd)
    log = Path(circ_lab.desc.censor_log)
    offset = log.stat().st_size
    out = tmp_path_factory.mktemp(name) / "circumvention.jsonl"
    r = _didban(circ_lab.desc, "run", "--lab", "--no-progress", "--test", "circumvention",
                "-o", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    found = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    with log.open("rb") as fh:
        fh.seek(offset)
        fired = fh.read().decode(errors="replace")
    return Run(profiles.load(name), found, r.stderr, fired)


def test_the_servers_start_once_and_describe_themselves(circ_lab: CircLab) -> None:
    circ = circ_lab.desc.circumvention
    assert circ is not None
    assert Path(circ.tor.ready_file).exists()
    assert circ.tor.obfs4_bridge.startswith("obfs4 203.0.113.163:443 ")
    assert "cert=" in circ.tor.obfs4_bridge
    assert [r.role for r in circ.tor.relays] == ["authority", "relay", "exit", "bridge"]
    assert "tor bridge" in circ_lab.stdout and "openvpn://lab.corp/" in circ_lab.stdout
    record = state.load(Path(circ_lab.desc.state_dir))
    assert record is not None and start.running(record)
    assert len([p for p in record.procs if p.name.startswith(start.NAMES)]) == 12
    again = _didban(circ_lab.desc, "lab", "circumvention", timeout=60)  # already running
    assert again.returncode == 0, again.stderr
    assert start.running(state.load(Path(circ_lab.desc.state_dir)))  # type: ignore[arg-type]


def test_every_target_measured_once_in_ooni_format(circ_run: Run) -> None:
    got = sorted(str(targets.of_verdict(_verdict_dict(m))) for m in circ_run.measurements)
    assert got == sorted(targets.circumvention_targets())
    for m in circ_run.measurements:
        assert problems(m) == [], m["test_name"]
        ooni_models.check(m)
        assert m["annotations"]["x_didban_lab_profile"] == circ_run.profile.name


def _verdict_dict(m: dict[str, Any]) -> dict[str, Any]:
    v = classify(m)
    return {"test_name": v.test_name, "input": v.input, "service": v.service}


def test_verdicts_match_the_ground_truth(circ_run: Run) -> None:
    wrong = []
    for m in circ_run.measurements:
        v = classify(m)
        target = str(targets.of_verdict(_verdict_dict(m)))
        truth = circ_run.profile.truth(target)
        ok = v.state == truth.outcome and (
            truth.outcome == "ok" or (v.layer, v.method) == (truth.layer, truth.method)
        )
        if not ok:
            wrong.append((target, truth.outcome, truth.method, v.state, v.method, v.reason))
    assert wrong == []


def test_the_censor_log_names_the_rules(circ_run: Run) -> None:
    fired = {
        t.rule for t in circ_run.profile.ground_truth if t.rule and targets.is_circumvention(t.url)
    }
    for rule in fired:
        assert f'"rule":"{rule}"' in circ_run.censor_log.replace(" ", ""), rule
    if circ_run.profile.name == "clean":
        assert [line for line in circ_run.censor_log.splitlines() if '"engine"' not in line] == []


def test_clients_leave_nothing_behind(circ_run: Run) -> None:
    """Every client the probe started was stopped by pid with its temporary directory."""
    assert glob.glob("/tmp/didban-tor-*") == []
    assert glob.glob("/tmp/didban-torsf-*") == []
    assert glob.glob("/tmp/didban-openvpn-*") == []
    assert glob.glob("/tmp/didban-wireguard-*") == []
    assert glob.glob("/tmp/didban-ss-local-*") == []
    assert glob.glob("/tmp/didban-obfs4proxy-*") == []
    assert glob.glob("/var/run/wireguard/didbanwg*") == []
