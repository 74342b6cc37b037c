"""The second part of ``didban demo``: censorship over time, detected as events.

A short lab scenario — ``clean``, then ``iran-2022``, then ``clean`` again — runs in a lab of
its own (``didban lab scenario --new-lab``) while the probe measures in rounds
(``didban run --lab --every``); the rounds are stored in the demo's store beside its first
part (``didban ingest``), events are detected over the store's verdicts of the scenario's
window with short buckets and saved there (``didban events detect --since --until``), drawn
on the timeline (``didban timeline``) and scored against the scenario's ground truth
(``didban events score``). So ``didban demo --serve`` shows the block on the explorer's
country, timeline and event pages, its witnesses linked to their evidence. Every step is
the command a user would type, run through the demo's ``step`` (its own process group,
stopped on Ctrl-C); ``lab scenario`` brings its lab down on every path.

The scenario is short so that the whole demo stays near three minutes: 40 s per profile and
a last clean phase long enough for the end of the block to be seen (an end needs more
evidence than an onset: docs/events.md, *Method*). The rounds measure eight URLs — four
services iran-2022 blocks, two international ones it leaves open (without them every
international target fails in a round, which ``didban analyze`` rightly reads as NIN
isolation) and two domestic ones — and start every 2 s (as many at once as
censorship makes them slow: ``--overlap``); the buckets are 10 s, so each holds about five
rounds of every target: one bucket of a block is enough evidence for its onset, three of
clean for its end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final

import msgspec

SCENARIO: Final = """\
name: demo-over-time
description: didban demo — a block of international services that comes and goes
switches:
  - {at: 0, profile: clean}
  - {at: 40s, profile: iran-2022}
  - {at: 80s, profile: clean}
duration: 130s
"""
URLS: Final = (
    "https://www.instagram.com/",
    "https://www.whatsapp.com/",
    "https://telegram.org/",
    "https://twitter.com/",
    "https://mail.google.com/",
    "https://mail.yahoo.com/",
    "https://www.digikala.com/",
    "https://www.aparat.com/",
)
EVERY: Final = "2s"
OVERLAP: Final = 16
BUCKET: Final = "10s"

Step = Callable[[list[str]], int]


def window(truth: Path) -> tuple[str, str]:
    """The scenario's first switch and its end, as ISO times for ``timeline``."""
    records = [msgspec.json.decode(line) for line in truth.read_bytes().splitlines() if line]
    first = next(r for r in records if r.get("type") == "switch")
    end = next((r for r in records if r.get("type") == "end"), records[-1])
    return first["applied"], end.get("at") or first["applied"]


def _floor_minute(stamp: str) -> str:
    t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return t.replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(out_dir: Path, data_dir: Path, step: Step) -> str | None:
    """Run the scenario and its pipeline in ``out_dir``, storing its rounds and events in
    ``data_dir``; a failure sentence, or None.

    The last step scores the events against the ground truth: its exit code says whether
    every switch was matched and nothing else was found."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    run_dir = out_dir / f"scenario-{stamp}"
    scenario = out_dir / "demo-over-time.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    series = run_dir / "series.jsonl"
    events = run_dir / "events.jsonl"
    truth = run_dir / "ground-truth.jsonl"
    urls = " ".join(f"--url {u}" for u in URLS)
    probe = (
        f"{sys.executable} -m didban.cli run --lab --accept-risk {urls} --every {EVERY} "
        f"--overlap {OVERLAP} --output {{dir}}/series.jsonl"
    )
    # fmt: off
    if step(["lab", "scenario", str(scenario), "--new-lab", "--output", str(run_dir),
             "--probe-cmd", probe]):
        return "didban lab scenario failed"
    if not series.is_file():
        return f"the scenario's probe wrote nothing (see {run_dir / 'probe.log'})"
    if step(["ingest", str(series), "--data-dir", str(data_dir)]):
        return "didban ingest failed on the scenario's rounds"
    since, until = window(truth)
    if step(["events", "detect", "--data-dir", str(data_dir), "--since", since,
             "--until", until, "--bucket", BUCKET, "--output", str(events)]):
        return "didban events detect failed"
    if step(["timeline", "--cc", "IR", "--no-known", "--events", str(events),
             "--since", _floor_minute(since), "--until", until]):
        return "didban timeline failed"
    if step(["events", "score", str(truth), "--events", str(events)]):
        return "the detected events do not match the scenario's switches"
    # fmt: on
    return None
