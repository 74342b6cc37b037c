"""``didban run --lab --test im --test quic`` against the lab's real app servers under every
shipped profile: each measurement loads with OONI's data model of its test, each app, STUN
and HTTP/3 target gets the verdict its profile's ground truth names, and the censor's log
shows the rule that caught it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

import ooni_models
from didban.analysis import classify
from didban.lab import profiles, runtime, targets
from didban.model.labinfo import LabDescriptor
from didban.model.validate import problems

pytestmark = pytest.mark.lab


@dataclass
class AppRun:
    desc: LabDescriptor
    profile: profiles.Profile
    measurements: list[dict[str, Any]]
    stderr: str
    censor_log: str


@pytest.fixture(
    scope="module",
    params=[
        "clean",
        "iran-2022",
        "iran-protocol-filter",
        "iran-2019-shutdown",
        "national-root-mitm",
    ],
)
def app_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppRun]:
    name = request.param
    desc = runtime.up(name, control=True, make_current=False)
    try:
        out = tmp_path_factory.mktemp(name) / "apps.jsonl"
        env = {**os.environ, "DIDBAN_LAB": str(Path(desc.state_dir) / "lab.json"), "COLUMNS": "200"}
        args = ["run", "--lab", "--no-progress", "--test", "im", "--test", "quic", "-o", str(out)]
        r = subprocess.run(
            [sys.executable, "-m", "didban.cli", *args],
            env=env, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        found = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
        log = Path(desc.censor_log).read_text()
        yield AppRun(desc, profiles.load(name), found, r.stderr, log)
    finally:
        runtime.down(desc.state_dir)


def _verdict(m: dict[str, Any]) -> tuple[str, str | None, str | None]:
    v = classify(m)
    return v.state, v.layer, v.method


def test_every_target_measured_once_in_ooni_format(app_run: AppRun) -> None:
    got = sorted(str(targets.of_verdict(m)) for m in app_run.measurements)
    want = sorted(targets.app_targets() + targets.quic_targets())
    assert got == want
    for m in app_run.measurements:
        assert problems(m) == [], m["test_name"]
        ooni_models.check(m)
        assert m["annotations"]["x_didban_lab_profile"] == app_run.profile.name


def test_verdicts_match_the_ground_truth(app_run: AppRun) -> None:
    wrong = []
    for m in app_run.measurements:
        target = str(targets.of_verdict(m))
        truth = app_run.profile.truth(target)
        state, layer, method = _verdict(m)
        ok = state == truth.outcome and (
            truth.outcome == "ok" or (layer, method) == (truth.layer, truth.method)
        )
        if not ok:
            wrong.append((target, truth.outcome, truth.method, state, method))
    assert wrong == []


def test_the_censor_log_names_the_rules(app_run: AppRun) -> None:
    measured = set(targets.app_targets() + targets.quic_targets())  # not the tunnels' app:
    fired = {t.rule for t in app_run.profile.ground_truth if t.rule and t.url in measured}
    for rule in fired:
        assert f'"rule":"{rule}"' in app_run.censor_log.replace(" ", ""), rule
    if app_run.profile.name == "iran-protocol-filter":
        assert "stun datagram dropped" in app_run.censor_log
        assert "quic datagram dropped" in app_run.censor_log
