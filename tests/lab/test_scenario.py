"""``didban lab scenario``: profiles switched at their offsets, as a client in the lab sees it
(curl run in rounds by the scenario's probe hook), the ground-truth timeline written beside
the log, and the lab always brought down — at the end and after a Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from didban.events.record import parse_iso
from didban.lab import topology

pytestmark = pytest.mark.lab
DIDBAN = [sys.executable, "-m", "didban.cli"]
SCENARIO = """\
name: blink
switches:
  - {at: 0, profile: clean}
  - {at: 6s, profile: iran-2022}
  - {at: 12s, profile: clean}
duration: 18s
"""


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _scenario(tmp_path: Path) -> Path:
    path = tmp_path / "blink.yaml"
    path.write_text(SCENARIO)
    return path


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "ground-truth.jsonl").read_text().splitlines()]


def _prefix(out: Path) -> str:
    m = re.search(r"lab (db[0-9a-f]{4}-)", (out / "scenario.log").read_text())
    assert m, "the log names the lab"
    return m.group(1)


def _gone(prefix: str) -> bool:
    return not topology.existing(list(topology.namespaces(prefix).values()))


def test_switches_at_their_offsets_as_a_client_sees_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # each round: when curl started and ended, and its exit code (35: reset by the censor)
    curl = " ".join([*DIDBAN, "lab", "exec", "--", "curl", "-s", "-o", "/dev/null", "-m", "3",
                     "https://www.instagram.com/"])  # fmt: skip
    probe = f's=$(date +%s.%N); {curl}; c=$?; echo "$s $(date +%s.%N) $c" >> {{dir}}/curl.txt'
    r = subprocess.run(
        [*DIDBAN, "lab", "scenario", str(_scenario(tmp_path)), "--output", str(out),
         "--no-control", "--every", "2s", "--probe-cmd", f"sh -c '{probe}'"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    assert "scenario 'blink' done: 3 switch(es)" in r.stdout
    assert _gone(_prefix(out))

    records = _records(out)
    assert [x["type"] for x in records] == ["switch", "switch", "switch", "end"]
    switches, end = records[:3], records[3]
    assert [(s["index"], s["profile"], s["offset"]) for s in switches] == [
        (0, "clean", 0.0), (1, "iran-2022", 6.0), (2, "clean", 12.0)]  # fmt: skip
    assert end["completed"] is True and end["offset"] >= 18
    start = parse_iso(switches[0]["applied"]).timestamp()
    for s in switches[1:]:  # applied at the planned offset (the switch takes well under 2 s)
        requested = parse_iso(s["requested"]).timestamp() - start
        applied = parse_iso(s["applied"]).timestamp() - start
        assert s["offset"] <= requested + 0.5 and applied < s["offset"] + 2
    truth = {e["url"]: e for e in switches[1]["expected"]}
    assert truth["https://www.instagram.com/"] == {
        "url": "https://www.instagram.com/", "target": "instagram", "outcome": "blocked",
        "layer": "tls", "method": "tls.sni.reset"}  # fmt: skip
    # back to clean: nothing is blocked; only the accuracy cases' ghost name, which exists
    # nowhere without the ISP's lie, is down
    back = switches[2]["expected"]
    assert {e["outcome"] for e in back if "//ghost." not in e["url"]} == {"ok"}
    assert {e["outcome"] for e in back} == {"ok", "down"}

    # what curl saw in each round agrees with the timeline
    blocked_from = parse_iso(switches[1]["applied"]).timestamp()
    blocked_until = parse_iso(switches[2]["requested"]).timestamp()
    rounds = [line.split() for line in (out / "curl.txt").read_text().splitlines()]
    assert len(rounds) >= 6
    seen = {"during": 0, "outside": 0}
    for began, ended, code in rounds:
        if blocked_from <= float(began) and float(ended) <= blocked_until:
            assert code == "35", rounds  # reset after the ClientHello
            seen["during"] += 1
        elif (
            float(ended) < blocked_from
            or float(began) > parse_iso(switches[2]["applied"]).timestamp()
        ):
            assert code == "0", rounds
            seen["outside"] += 1
    assert seen["during"] >= 1 and seen["outside"] >= 2
    assert "round 1 started" in (out / "scenario.log").read_text()


def test_ctrl_c_stops_the_probe_closes_the_timeline_and_brings_the_lab_down(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*DIDBAN, "lab", "scenario", str(_scenario(tmp_path)), "--output", str(out),
         "--no-control", "--probe-cmd", "sleep 987"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a test run started in the background (`cmd &` in a script)
        # hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=_sigint_default,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = out / "scenario.log"
            if log.exists() and "switch 1:" in log.read_text():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the scenario never reached its second switch")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted; the timeline so far is in" in stderr
    records = _records(out)
    assert [x["type"] for x in records] == ["switch", "switch", "end"]
    assert records[-1]["completed"] is False and records[-1]["reason"] == "interrupted"
    assert _gone(_prefix(out))
    left = subprocess.run(["pgrep", "-f", "sleep 987"], capture_output=True, text=True, check=False)
    assert left.stdout == "", "the probe command was stopped"


def test_a_running_lab_is_used_and_left_up(tmp_path: Path) -> None:
    up = subprocess.run([*DIDBAN, "lab", "up", "--no-control", "--profile", "iran-2022"],
                        capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert up.returncode == 0, up.stderr
    prefix = re.search(r"lab (db[0-9a-f]{4}-) up", up.stdout)
    assert prefix
    try:
        short = tmp_path / "short.yaml"
        short.write_text("name: short\nswitches:\n  - {at: 0, profile: clean}\n"
                         "  - {at: 2s, profile: national-root-mitm}\nduration: 4s\n")  # fmt: skip
        r = subprocess.run(
            [*DIDBAN, "lab", "scenario", str(short), "--output", str(tmp_path / "o")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "using the running lab" in r.stdout
        assert not _gone(prefix.group(1))
        status = subprocess.run([*DIDBAN, "lab", "status"], capture_output=True, text=True,
                                timeout=60, check=False)  # fmt: skip
        assert "profile 'national-root-mitm'" in status.stdout
    finally:
        subprocess.run([*DIDBAN, "lab", "down"], capture_output=True, timeout=60, check=False)
    assert _gone(prefix.group(1))
