"""Scoring detected events against a scenario's ground truth, with constructed events.

The timeline is the one of issue 16 (clean → iran-2022 at 2 min → iran-2019-shutdown at
4 min → clean at 6 min), its expectations taken from the shipped profiles' ground truth.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
import pytest

from didban.events.record import Event, iso
from didban.events.scoring import changes, score
from didban.lab.scenario import loads
from didban.model.scenario import End, Record, Switch, decode_lines, encode

T0 = datetime(2026, 12, 8, 10, 0, 0)
MIN = timedelta(minutes=1)
SCENARIO = """
name: issue-16
switches:
  - {at: 0, profile: clean}
  - {at: 2m, profile: iran-2022}
  - {at: 4m, profile: iran-2019-shutdown}
  - {at: 6m, profile: clean}
duration: 8m
"""


def _timeline() -> list[Record]:
    out: list[Record] = []
    for i, step in enumerate(loads(SCENARIO).steps):
        t = T0 + timedelta(seconds=step.at)
        requested = iso(t - timedelta(seconds=0.2)) or ""
        applied = iso(t + timedelta(seconds=1)) or ""  # the switch took a second
        out.append(Switch(i, step.name, step.at, requested, applied, list(step.expected)))
    out.append(End(480.0, iso(T0 + 8 * MIN) or "", True, "duration reached"))
    # the timeline goes through its file format and back
    return decode_lines(b"\n".join(encode(r) for r in out))


def _event(eid: str, kind: str, onset: int, resolved: int | None = None, **kw: object) -> Event:
    """An event whose onset bracket is the minute bucket before ``onset`` and the one at it
    (minute buckets: after the start of the last normal one, before the end of the first
    changed one), resolved likewise at ``resolved``."""
    fields: dict[str, object] = {
        "id": eid,
        "kind": kind,
        "cc": "IR",
        "asns": [197207],
        "target": None,
        "layer": None,
        "method": None,
        "onset_after": iso(T0 + (onset - 1) * MIN),
        "onset_before": iso(T0 + (onset + 1) * MIN),
        "resolved_after": iso(T0 + (resolved - 1) * MIN) if resolved is not None else None,
        "resolved_before": iso(T0 + (resolved + 1) * MIN) if resolved is not None else None,
        "confidence": 0.99,
        "n_measurements": 100,
        "n_probes": 4,
        "witnesses": [],
        "source": "didban",
        **kw,
    }
    return msgspec.convert(fields, Event)


# what the detector gives on this scenario: the ISP's block of many targets at 2 min, one
# event without a target, its end bracketing the NIN period (no block evidence during it),
# and the NIN isolation from 4 to 6 min
BLOCK = _event("ev-block", "block", 2, 5, method="tls.sni.reset", layer="tls")
NIN = _event("ev-nin", "nin", 4, 6, method="nin.isolated", layer="ip")


def _expected_changes() -> list[tuple[int, str, str]]:
    return [(c.index, c.direction, c.cls) for c in changes(_timeline())]


def test_the_expected_changes_follow_from_the_profiles_ground_truth() -> None:
    assert _expected_changes() == [
        (1, "start", "block"),
        (2, "end", "block"),
        (2, "start", "nin"),
        (3, "end", "nin"),
    ]
    start_block = changes(_timeline())[0]
    assert {"instagram", "telegram", "whatsapp"} <= start_block.targets
    assert "digikala" not in start_block.targets  # a domestic site stays reachable


def test_events_at_every_switch_and_nothing_else_score_perfect() -> None:
    result = score([BLOCK, NIN], _timeline())
    assert result.perfect, result.lines()
    assert result.explained[0] == ["ev-block:start (block *)"]
    assert result.explained[3] == ["ev-nin:end (nin *)"]


def test_per_target_events_match_only_the_targets_that_changed() -> None:
    instagram = _event("ev-ig", "block", 2, 5, target="instagram")
    digikala = _event("ev-dk", "block", 2, 5, target="www.digikala.com")
    result = score([instagram, digikala, NIN], _timeline())
    assert not result.missed
    assert [t.name for t in result.spurious] == [
        "ev-dk:start (block www.digikala.com)",
        "ev-dk:end (block www.digikala.com)",
    ]


@pytest.mark.parametrize(
    ("events", "missed", "spurious"),
    [
        # no NIN event: its start at 4 min and its end at 6 min are missed
        ([BLOCK], [(2, "start", "nin"), (3, "end", "nin")], []),
        # an onset bracket that does not contain the switch: missed, and the event is extra
        (
            [_event("ev-late", "block", 4, 5), NIN],
            [(1, "start", "block")],
            ["ev-late:start (block *)"],
        ),
        # a second event between the switches is one too many
        ([BLOCK, NIN, _event("ev-x", "block", 5, target="telegram")], [], ["ev-x:start"]),
        # the right moment but the wrong kind: a shutdown is not NIN isolation
        (
            [BLOCK, _event("ev-sd", "shutdown", 4, 6)],
            [(2, "start", "nin"), (3, "end", "nin")],
            ["ev-sd:start (shutdown *)", "ev-sd:end (shutdown *)"],
        ),
        # a block still open at the end was expected to end when NIN took over
        ([_event("ev-open", "block", 2), NIN], [(2, "end", "block")], []),
        # an event before the first change: the baseline expects nothing
        ([BLOCK, NIN, _event("ev-early", "block", 0, 1)], [], ["ev-early:start", "ev-early:end"]),
    ],
)
def test_what_a_bad_detection_looks_like(
    events: list[Event], missed: list[tuple[int, str, str]], spurious: list[str]
) -> None:
    result = score(events, _timeline())
    assert not result.perfect
    assert [(c.index, c.direction, c.cls) for c in result.missed] == missed
    assert len(result.spurious) == len(spurious)
    for t, name in zip(result.spurious, spurious, strict=True):
        assert t.name.startswith(name)
    assert any("MISSED" in line for line in result.lines()) == bool(missed)


def test_an_unblock_event_is_the_end_of_a_block() -> None:
    """A detector that warmed up inside the block reports its end as an unblock."""
    unblock = _event("ev-ub", "unblock", 5)
    start_only = _event("ev-b", "block", 2)
    result = score([start_only, unblock, NIN], _timeline())
    assert result.perfect, result.lines()
