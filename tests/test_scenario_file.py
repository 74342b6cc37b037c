"""Lab scenario files: the schema, one ``file:line: problem`` per mistake, refused before any
lab is touched (no root needed), and the expectations taken from the profiles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from didban.lab.scenario import ScenarioError, load, loads, parse_duration

GOOD = """\
name: clean-2022-nin-clean
description: a block, the 2019 cut, then nothing
switches:
  - {at: 0, profile: clean}
  - {at: 2m, profile: iran-2022}
  - {at: 240s, profile: iran-2019-shutdown}
  - {at: 360, profile: clean}
duration: 0.15h
"""


def test_a_good_scenario() -> None:
    s = loads(GOOD, "s.yaml")
    assert s.name == "clean-2022-nin-clean" and s.duration == 540
    assert [(st.at, st.name, st.line) for st in s.steps] == [
        (0, "clean", 4),
        (120, "iran-2022", 5),
        (240, "iran-2019-shutdown", 6),
        (360, "clean", 7),
    ]
    iran = {e.url: e for e in s.steps[1].expected}
    assert iran["https://www.instagram.com/"].outcome == "blocked"
    assert iran["https://www.instagram.com/"].target == "instagram"
    assert iran["https://www.digikala.com/"].outcome == "ok"
    nin = {e.url: e for e in s.steps[2].expected}
    assert nin["https://www.instagram.com/"].method == "nin.isolated"


def test_a_profile_path_is_relative_to_the_scenario(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / "src/didban/lab/profiles/iran-2022.yaml"
    (tmp_path / "mine.yaml").write_text(
        shipped.read_text().replace("name: iran-2022", "name: mine")
    )
    (tmp_path / "s.yaml").write_text(
        "name: mine\nswitches:\n  - {at: 0, profile: clean}\n  - {at: 1m, profile: mine.yaml}\n"
        "duration: 2m\n"
    )
    assert [st.name for st in load(tmp_path / "s.yaml").steps] == ["clean", "mine"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "s.yaml:1: empty scenario"),
        ("name: [x\n", "s.yaml:2: invalid YAML"),
        ("- 1\n", "s.yaml:1: the scenario must be a mapping"),
        (GOOD.replace("duration", "length"), "s.yaml:8: the scenario: unknown key 'length'"),
        (GOOD.replace("duration: 0.15h\n", ""), "s.yaml:1: the scenario needs 'duration'"),
        (GOOD.replace("clean-2022-nin-clean", "Clean Run"), "s.yaml:1: name must be lower-case"),
        (GOOD.replace("  - {at: 0, profile: clean}", "  - {at: 5s, profile: clean}"),
         "s.yaml:4: switch 1 must be at 0: the lab starts with it"),
        (GOOD.replace("{at: 240s,", "{at: 1m,"),
         "s.yaml:6: switch 3: at (60 s) must be after switch 2 (120 s)"),
        (GOOD.replace("{at: 2m,", "{at: two minutes,"),
         "s.yaml:5: switch 2: at: a duration is seconds or a number with s, m or h"),
        (GOOD.replace("iran-2022}", "iran-2023}"),
         "s.yaml:5: switch 2: profile 'iran-2023': no profile 'iran-2023' (available: clean"),
        (GOOD.replace("{at: 2m, profile: iran-2022}", "{at: 2m, profil: iran-2022}"),
         "s.yaml:5: switch 2: unknown key 'profil' (known: at, profile)"),
        (GOOD.replace("{at: 2m, profile: iran-2022}", "{at: 2m}"),
         "s.yaml:5: switch 2 needs 'profile'"),
        (GOOD.replace("0.15h", "6m"), "s.yaml:8: duration (360 s) must be after the last switch"),
        ("name: x\nswitches: []\nduration: 1m\n", "s.yaml:2: switches must be a non-empty list"),
    ],
)  # fmt: skip
def test_each_mistake_is_one_sentence_with_its_line(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        loads(text, "s.yaml")
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_broken_profile_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\ndescription: x\nrules: []\nground_truth: {}\n")
    (tmp_path / "s.yaml").write_text(
        "name: s\nswitches:\n  - {at: 0, profile: ./bad.yaml}\nduration: 1m\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load(tmp_path / "s.yaml")
    assert str(caught.value).startswith("s.yaml:3: switch 1: profile './bad.yaml': bad.yaml:")


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "1.5m", "2h")] == [90, 90, 90, 7200]
    with pytest.raises(ValueError):
        parse_duration("1d")


def _didban(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "didban.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_the_command_refuses_bad_input_before_anything_else(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text(GOOD.replace("iran-2022}", "iran-2023}"))
    r = _didban("lab", "scenario", str(bad))
    assert r.returncode == 2
    assert r.stderr.startswith("didban lab: s.yaml:5: switch 2: profile 'iran-2023'")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    r = _didban("lab", "scenario", str(good), "--every", "30s")
    assert (r.returncode, r.stderr.strip()) == (2, "didban lab: --every needs --probe-cmd")
    r = _didban("lab", "scenario", str(good), "--probe-cmd", "x", "--every", "soon")
    assert r.returncode == 2 and "--every: a duration is seconds" in r.stderr
    done = tmp_path / "done"
    done.mkdir()
    (done / "ground-truth.jsonl").write_text("")
    r = _didban("lab", "scenario", str(good), "--output", str(done))
    assert r.returncode == 2 and "already holds a scenario run" in r.stderr
    assert not list(tmp_path.glob("scenario-*"))  # nothing written
