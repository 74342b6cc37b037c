"""Issue 16's scenario end to end: ``didban lab scenario`` switches clean → iran-2022 →
iran-2019-shutdown → clean while ``didban run --lab --every`` measures in rounds; the rounds
are classified, events detected with minute buckets, and scored against the ground truth.
The same rounds then go the way ``didban demo`` takes them: ingested into a store, events
detected over the store's verdicts of the scenario's window and saved there, and the
explorer's event and timeline pages show them, the witnesses linked to their evidence.

What is asserted is what a user reads off the events: a block that starts at the switch to
iran-2022, an NIN isolation that starts at the switch to the 2019 profile, both ending at the
switch back to clean (each bracket holding its switch), and nothing else. Nothing here
depends on how fast the machine is, beyond the rounds keeping up with a 5 s grid (they may
overlap: ``--overlap``)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from didban.events.record import parse_iso

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))

from server_helpers import free_port, start_server, stop

pytestmark = pytest.mark.lab
DIDBAN = [sys.executable, "-m", "didban.cli"]
# two minutes of clean first: the detector's warm-up (docs/events.md: a series' first
# crossing sets its initial state, so a target must be seen normal before it is blocked);
# then 90 s a profile, and two minutes of clean at the end, for the ends to be seen
SCENARIO = """\
name: issue-16
switches:
  - {at: 0, profile: clean}
  - {at: 2m, profile: iran-2022}
  - {at: 210s, profile: iran-2019-shutdown}
  - {at: 5m, profile: clean}
duration: 7m
"""


def _didban(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DIDBAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _inside(
    t: datetime, after: str | None, before: str | None, running: list[tuple[datetime, float]]
) -> bool:
    """The bracket holds the switch at ``t`` — or, for its upper end, the start of a
    measurement that was running when the network switched: its verdict, stamped with its
    start, may already show the new state (a 5 s measurement begun at 22:08:56 across a
    switch at 22:09:01 is in the 22:08 bucket)."""
    assert after is not None and before is not None
    earliest = min((s for s, took in running if s <= t < s + timedelta(seconds=took)), default=t)
    return parse_iso(after) <= t and parse_iso(before) >= earliest


@pytest.mark.timeout(900)  # a 7-minute scenario: the suite's 300 s would SIGKILL it
def test_each_switch_is_one_event_edge_with_the_switch_inside_its_bracket(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "issue-16.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "run"
    probe = (
        f"{sys.executable} -m didban.cli run --lab --accept-risk --every 5s --overlap 12 "
        "--output {dir}/series.jsonl"
    )
    r = _didban("lab", "scenario", str(scenario), "--new-lab", "--output", str(out),
                "--probe-cmd", probe, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    assert "scenario 'issue-16' done: 4 switch(es)" in r.stdout

    # the series: whole rounds, one report each, every round closed in the round log
    series = out / "series.jsonl"
    log = _lines(out / "series.jsonl.rounds")
    starts = [x for x in log if x["type"] == "start"]
    ends = [x for x in log if x["type"] == "end"]
    assert len(starts) >= 40 and len(ends) == len(starts)
    reports = {m["report_id"] for m in _lines(series)}
    assert len(reports) == sum(1 for e in ends if e["written"])
    assert not list(out.glob("series.jsonl.round-*")), "every part was appended"

    verdicts, events = out / "verdicts.parquet", out / "events.jsonl"
    r = _didban("analyze", "--quiet", str(series), "--output", str(verdicts))
    assert r.returncode == 0, r.stderr
    r = _didban("events", "detect", "--input", str(verdicts), "--format", "verdicts",
                "--bucket", "1m", "--output", str(events))  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = _didban("events", "score", str(out / "ground-truth.jsonl"), "--events", str(events))
    assert r.returncode == 0, r.stdout + r.stderr  # every switch matched, nothing else
    assert "perfect:" in r.stderr

    truth = [x for x in _lines(out / "ground-truth.jsonl") if x["type"] == "switch"]
    at = [parse_iso(s["applied"]) for s in truth]
    found = sorted(_lines(events), key=lambda e: e["onset_before"])
    assert [e["kind"] for e in found] == ["block", "nin"], found
    block, nin = found
    assert block["asns"] and block["asns"] == nin["asns"]
    assert block["method"].startswith(("tls.", "dns.", "tcp.", "http.")), block["method"]
    assert nin["method"] == "nin.isolated"
    running = [
        (datetime.strptime(m["measurement_start_time"], "%Y-%m-%d %H:%M:%S"), m["test_runtime"])
        for m in _lines(series)
    ]
    assert _inside(at[1], block["onset_after"], block["onset_before"], running)
    assert _inside(at[2], nin["onset_after"], nin["onset_before"], running)
    # the block ends with a bracket that spans the isolation (no block evidence during it)
    # and meets the switch back to clean; so does the isolation's end
    assert _inside(at[3], block["resolved_after"], block["resolved_before"], running)
    assert _inside(at[3], nin["resolved_after"], nin["resolved_before"], running)
    assert block["witnesses"] and nin["witnesses"] and block["n_probes"] >= 3

    # the demo's way: the rounds in a store, the events found over it and saved there
    data = tmp_path / "data"
    r = _didban("ingest", str(series), "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    end = next(x for x in _lines(out / "ground-truth.jsonl") if x["type"] == "end")
    stored_events = out / "stored-events.jsonl"
    r = _didban("events", "detect", "--data-dir", str(data), "--since", truth[0]["applied"],
                "--until", end["at"], "--bucket", "1m", "--output", str(stored_events))  # fmt: skip
    assert r.returncode == 0, r.stderr

    def brackets(e: dict[str, Any]) -> tuple[Any, ...]:
        return (e["kind"], e["asns"], e["method"], e["onset_after"], e["onset_before"],
                e["resolved_after"], e["resolved_before"])  # fmt: skip

    stored = sorted(_lines(stored_events), key=lambda e: e["onset_before"])
    assert [brackets(e) for e in stored] == [brackets(e) for e in found]
    port = free_port()
    server = start_server(data, port)  # what `didban demo --serve` runs
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for e in stored:
                page = client.get(f"/event/{e['id']}")
                assert page.status_code == 200 and e["method"] in page.text
                witness = e["witnesses"][0]
                assert f'href="/m/{witness}"' in page.text
                evidence = client.get(f"/m/{witness}")
                assert evidence.status_code == 200 and "IR" in evidence.text
            since = truth[0]["applied"][:10]
            timeline = client.get(f"/timeline/IR?since={since}").text
            assert all(e["id"] in timeline for e in stored)
    finally:
        stop(server)
