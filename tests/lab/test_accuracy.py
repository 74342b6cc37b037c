"""Lab accuracy: probe + analysis give every profile's ground truth, target by target.

One lab per shipped profile (module scope, control helper on, always torn down): the probe
runs on the default test list (and the profile's other http(s) ground-truth targets)
through ``didban run --lab``, ``didban dnscheck --lab`` checks its ``dot://`` targets,
``didban analyze`` classifies the measurements (batch rules included), and every target's
verdict is checked against the profile's ground truth: the outcome, and for anything but
``ok`` the method and the layer. ``clean`` (and every profile) must call no target
``blocked`` that should be ok.

The scoring itself (matrix, precision/recall, false ``blocked``) and the bad-input paths of
``bench/lab_accuracy.py`` and ``didban demo`` are checked first, without a lab.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from didban.lab import accuracy, targets
from didban.lab.profiles import default_urls, loads

ROOT = Path(__file__).resolve().parents[2]
PROFILES = [
    "clean",
    "iran-2022",
    "iran-protocol-filter",
    "iran-2019-shutdown",
    "isp-dns-redirects",
    "national-root-mitm",
    "iran-strict-dpi",
]


# --- scoring, no lab ------------------------------------------------------------------------

_PROFILE = """\
name: t
description: test
rules: []
ground_truth:
  default: {outcome: ok}
  targets:
    https://www.instagram.com/: {outcome: blocked, layer: tls, method: tls.sni.reset}
    https://twitter.com/: {outcome: blocked, layer: dns, method: dns.hijack}
    https://telegram.org/: {outcome: blocked, layer: tcp, method: tcp.reset}
"""


def _v(url: str, state: str, layer: str | None = None, method: str | None = None) -> Any:
    return {"input": url, "state": state, "layer": layer, "method": method, "rule_id": "r"}


def test_score_counts_right_wrong_method_wrong_layer_false_blocked_and_missing() -> None:
    profile = loads(_PROFILE)
    verdicts = [
        _v("https://www.instagram.com/", "blocked", "tls", "tls.sni.reset"),  # right
        _v("https://twitter.com/", "blocked", "dns", "dns.injection.bogon"),  # wrong method
        _v("https://signal.org/", "blocked", "tls", "tls.sni.timeout"),  # false blocked
        _v("https://www.digikala.com/", "ok", "http"),  # right
        _v("https://not.in.truth/", "blocked", "dns", "dns.hijack"),  # ignored
    ]
    rows = accuracy.compare(verdicts, profile)
    gone = accuracy.missing([str(v["input"]) for v in verdicts], profile, ["https://telegram.org/"])
    rows += accuracy.missing_rows(gone, profile)
    score = accuracy.Score(rows)
    assert (score.correct, score.total) == (2, 5)
    assert [r.url for r in score.false_blocked] == ["https://signal.org/"]
    m = score.matrix()
    assert m[("dns.hijack", "dns.injection.bogon")] == 1
    assert m[("ok", "tls.sni.timeout")] == 1
    assert m[("tcp.reset", "missing")] == 1
    assert score.expected_labels()[0] == "ok"
    per = {s.label: s for s in score.per_label()}
    assert (per["ok"].precision, per["ok"].recall) == (1.0, 0.5)
    assert per["dns.hijack"].recall == 0.0 and per["dns.hijack"].precision is None


def test_right_method_on_the_wrong_layer_is_a_mismatch() -> None:
    rows = accuracy.compare(
        [_v("https://www.instagram.com/", "blocked", "http", "tls.sni.reset")], loads(_PROFILE)
    )
    assert not rows[0].match


def test_bench_rejects_an_unknown_profile_before_touching_anything() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "lab_accuracy.py"), "--profile", "nope"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert "no profile 'nope'" in r.stderr


def test_demo_rejects_an_unknown_profile() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "didban.cli", "demo", "--profile", "nope"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert "nope" in r.stderr or "needs root" in r.stderr


# --- the lab ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=PROFILES)
def measured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[accuracy.ProfileRun]:
    name: str = request.param
    work: Path = tmp_path_factory.mktemp(f"accuracy-{name}")
    try:
        # Concurrency: accuracy.concurrency_for (8; 32 for the NIN isolation). The
        # circumvention targets are measured by test_circumvention_lab.py, on one lab and
        # one Tor network for every profile (here they would cost a Tor network a profile).
        yield accuracy.run_profile(name, work, circumvention=False)
    except accuracy.SetupError as exc:
        pytest.fail(f"could not measure profile {name}: {exc}")


def _describe(row: accuracy.Row) -> str:
    got = f"{row.state}/{row.layer}/{row.method}"
    want = f"{row.expected_outcome}/{row.expected_layer}/{row.expected_method}"
    return f"{row.url}: got {got} by {row.rule_id or '-'} ({row.reason}); truth {want}"


@pytest.mark.lab
def test_every_target_has_exactly_one_verdict(measured: accuracy.ProfileRun) -> None:
    inputs = [str(targets.of_verdict(v)) for v in measured.verdicts]
    assert set(default_urls()) <= set(measured.targets)
    assert sorted(inputs) == sorted(measured.targets), (
        f"{measured.profile.name}: probe exit {measured.probe_exit}, "
        f"verdicts for {len(inputs)} inputs, {len(measured.targets)} targets"
    )


@pytest.mark.lab
@pytest.mark.parametrize("url", default_urls())
def test_target_gets_the_ground_truth_verdict(measured: accuracy.ProfileRun, url: str) -> None:
    row = measured.row(url)
    assert row is not None, f"{url}: no ground truth or no row in {measured.profile.name}"
    assert row.state == row.expected_outcome, _describe(row)
    if row.expected_outcome != "ok":
        assert row.method == row.expected_method, _describe(row)
        assert row.layer == row.expected_layer, _describe(row)


@pytest.mark.lab
def test_targets_beyond_the_default_list_get_the_ground_truth_verdict(
    measured: accuracy.ProfileRun,
) -> None:
    extras = accuracy.web_extras(measured.profile)
    if not extras:
        pytest.skip(f"{measured.profile.name} has no ground truth beyond the default list")
    for url in extras:
        row = measured.row(url)
        assert row is not None, f"{url}: no row"
        assert row.match, _describe(row)


@pytest.mark.lab
def test_app_stun_and_quic_targets_get_the_ground_truth_verdict(
    measured: accuracy.ProfileRun,
) -> None:
    """``app:``, ``stun://`` and ``quic://`` targets: ``didban run --test im --test quic``."""
    found = accuracy.app_extras(measured.profile)
    assert set(targets.app_targets() + targets.quic_targets()) <= set(found)
    rows = {t: measured.row(t) for t in found}
    assert [t for t, r in rows.items() if r is None] == []
    assert [_describe(r) for r in rows.values() if r is not None and not r.match] == []


@pytest.mark.lab
def test_encrypted_dns_targets_get_the_ground_truth_verdict(
    measured: accuracy.ProfileRun,
) -> None:
    dot = accuracy.dns_extras(measured.profile)
    if not dot:
        pytest.skip(f"{measured.profile.name} has no dot:// ground truth")
    for url in dot:
        row = measured.row(url)
        assert row is not None, f"{url}: no row"
        assert row.match, _describe(row)
    assert measured.not_measured == []


@pytest.mark.lab
def test_nothing_that_should_be_ok_is_called_blocked(measured: accuracy.ProfileRun) -> None:
    wrong = measured.score.false_blocked
    assert not wrong, "; ".join(_describe(r) for r in wrong)
    if measured.profile.name == "clean":
        blocked = [v for v in measured.verdicts if v.get("state") == "blocked"]
        assert blocked == [], f"clean profile: {len(blocked)} blocked verdicts"
