"""Scoring detected events against a lab scenario's ground-truth timeline (pure functions).

The timeline (``didban.model.scenario``, written by ``didban lab scenario``) says, for each
profile switch, when it happened — somewhere in [``requested``, ``applied``] — and what
each target should look like after it. From two consecutive switches follow the *expected
changes*: a target whose class changes — ``ok``, ``block`` (blocked by any method but the
run-level ones), ``nin`` (``nin.isolated``), ``shutdown`` (``shutdown``), ``down`` — leaves
its old class and enters its new one. The first switch is the baseline the detector warms
up on: nothing is expected of it.

Each detected event has one or two *transitions*, each a bracket of time: its start
(``onset_after``…``onset_before``) enters its class — ``block`` for a block, ``nin``,
``shutdown`` for a shutdown or an outage — and its end (``resolved_after``…
``resolved_before``) leaves it; an ``unblock`` event's onset is the end of a block. A
transition *explains* an expected change when its bracket meets the switch's moment, its
direction and class are the change's, and its target is one of the changed targets (an
event without a target — a network's change across targets — explains any).

The score is perfect when every expected change of every switch is explained by some
transition (no switch missed) and every transition explains some expected change (no
other event): issue 16's "events detected with minute buckets must match each switch, with
the onset inside its bracket, and nothing else", with a switch back to a clean profile
matched by the ends of the events it ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Final

from didban.events.known import target_matches
from didban.events.record import Event, parse_iso
from didban.model.scenario import End, Expected, Record, Switch

_KIND_CLASS: Final = {
    "block": "block",
    "unblock": "block",
    "nin": "nin",
    "shutdown": "shutdown",
    "outage": "shutdown",
}


def state_class(e: Expected) -> str:
    """``ok``, ``down``, ``nin``, ``shutdown`` or ``block``."""
    if e.outcome != "blocked":
        return e.outcome
    if e.method == "nin.isolated":
        return "nin"
    if e.method == "shutdown":
        return "shutdown"
    return "block"


@dataclass(frozen=True)
class Change:
    """At switch ``index``, ``targets`` enter (``start``) or leave (``end``) ``cls``."""

    index: int
    direction: str  # "start" | "end"
    cls: str
    targets: frozenset[str]
    lo: datetime  # the switch happened in [lo, hi]
    hi: datetime


@dataclass(frozen=True)
class Transition:
    event: Event
    direction: str  # "start" | "end"
    cls: str
    lo: datetime | None  # None: no normal observation before it
    hi: datetime

    @property
    def name(self) -> str:
        what = self.event.target or "*"
        return f"{self.event.id}:{self.direction} ({self.event.kind} {what})"

    def explains(self, c: Change) -> bool:
        if (self.direction, self.cls) != (c.direction, c.cls):
            return False
        if (self.lo is not None and self.lo > c.hi) or self.hi < c.lo:
            return False
        target = self.event.target
        return target is None or target_matches(target, c.targets)


@dataclass
class Score:
    changes: list[Change]
    explained: dict[int, list[str]] = field(default_factory=dict)  # change → transitions
    missed: list[Change] = field(default_factory=list)
    spurious: list[Transition] = field(default_factory=list)

    @property
    def perfect(self) -> bool:
        return not self.missed and not self.spurious

    def lines(self) -> list[str]:
        """A readable account: each expected change and what explains it, then the rest."""
        out = []
        for i, c in enumerate(self.changes):
            who = ", ".join(self.explained.get(i, [])) or "MISSED"
            out.append(
                f"switch {c.index}: {c.direction} {c.cls} ({len(c.targets)} target(s)): {who}"
            )
        out += [f"not at any switch: {t.name}" for t in self.spurious]
        return out


def changes(records: Sequence[Record]) -> list[Change]:
    """The expected changes of a ground-truth timeline, switch by switch."""
    switches = sorted((r for r in records if isinstance(r, Switch)), key=lambda s: s.index)
    out: list[Change] = []
    for before, after in pairwise(switches):
        was = {e.url: e for e in before.expected}
        moved: dict[tuple[str, str], set[str]] = {}
        for e in after.expected:
            old = was.get(e.url)
            if old is None or state_class(old) == state_class(e):
                continue
            moved.setdefault(("end", state_class(old)), set()).add(e.target)
            moved.setdefault(("start", state_class(e)), set()).add(e.target)
        lo, hi = parse_iso(after.requested), parse_iso(after.applied)
        for (direction, cls), targets in sorted(moved.items()):
            if cls in ("ok", "down"):
                continue  # no event starts or ends a normal state
            out.append(Change(after.index, direction, cls, frozenset(targets), lo, hi))
    return out


def transitions(events: Iterable[Event]) -> list[Transition]:
    out: list[Transition] = []
    for e in events:
        cls = _KIND_CLASS[e.kind]
        after = parse_iso(e.onset_after) if e.onset_after else None
        first = "end" if e.kind == "unblock" else "start"
        out.append(Transition(e, first, cls, after, parse_iso(e.onset_before)))
        if e.resolved_before:
            lo = parse_iso(e.resolved_after) if e.resolved_after else None
            out.append(Transition(e, "end", cls, lo, parse_iso(e.resolved_before)))
    return out


def score(events: Iterable[Event], records: Sequence[Record]) -> Score:
    """How ``events`` match the ground-truth timeline ``records`` (see the module)."""
    expected = changes(records)
    moves = transitions(events)
    result = Score(expected)
    used: set[int] = set()
    for i, c in enumerate(expected):
        names = []
        for j, t in enumerate(moves):
            if t.explains(c):
                names.append(t.name)
                used.add(j)
        if names:
            result.explained[i] = names
        else:
            result.missed.append(c)
    result.spurious = [t for j, t in enumerate(moves) if j not in used]
    return result


def window(records: Sequence[Record]) -> tuple[datetime, datetime | None]:
    """The scenario's span: the first switch's request to the end record (None if absent)."""
    first = min((r for r in records if isinstance(r, Switch)), key=lambda s: s.index)
    end = next((r for r in records if isinstance(r, End)), None)
    return parse_iso(first.requested), parse_iso(end.at) if end else None
