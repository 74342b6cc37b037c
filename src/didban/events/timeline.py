"""The timeline: known and detected events on one time axis (text for a terminal, rows for JSONL).

Pure functions of the events: ``entries`` merges known events (``known.KnownEvent``) and
detected ones (``record.Event``) into one sorted list; ``render`` draws each as a bar on a
shared axis (``█`` known, ``▓`` detected, ``→`` still ongoing at the axis' end; an outage
whose end was not recorded is a mark at its start), with a line naming it and, for a
detected event, the known event it matches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from didban.events.known import KnownEvent
from didban.events.record import Event, iso, parse_iso


@dataclass(frozen=True)
class Entry:
    origin: str  # "known" | "detected"
    id: str
    kind: str
    cc: str
    targets: tuple[str, ...]
    asns: tuple[int, ...]
    start: datetime
    end: datetime | None  # None: ongoing or not recorded
    label: str
    known_event: str | None
    source: str
    open_ended: bool  # no end, and it may still hold: drawn to the end of the axis

    def row(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "id": self.id,
            "kind": self.kind,
            "cc": self.cc,
            "targets": list(self.targets),
            "asns": list(self.asns),
            "start": iso(self.start),
            "end": iso(self.end),
            "label": self.label,
            "known_event": self.known_event,
            "source": self.source,
            "open_ended": self.open_ended,
        }


def from_known(k: KnownEvent) -> Entry:
    return Entry(
        "known",
        k.id,
        k.kind,
        k.cc,
        k.targets,
        k.asns,
        k.start[0],
        k.end[1] if k.end else None,
        k.description,
        None,
        k.source,
        k.end is None and k.holds,
    )


def from_event(e: Event) -> Entry:
    start = parse_iso(e.onset_after) if e.onset_after else parse_iso(e.onset_before)
    end = parse_iso(e.resolved_before) if e.resolved_before else None
    what = e.target or ("AS" + ",".join(map(str, e.asns)) if e.asns else e.cc)
    method = f" {e.method}" if e.method else ""
    return Entry(
        "detected",
        e.id,
        e.kind,
        e.cc,
        (e.target,) if e.target else (),
        tuple(e.asns),
        start,
        end,
        f"{e.kind} {what}{method} ({e.confidence:.2f})",
        e.known_event,
        e.source,
        end is None,
    )


def entries(known: Iterable[KnownEvent], detected: Iterable[Event]) -> list[Entry]:
    out = [from_known(k) for k in known] + [from_event(e) for e in detected]
    return sorted(out, key=lambda x: (x.start, x.origin, x.id))


def _fmt(t: datetime, span: timedelta) -> str:
    if span >= timedelta(days=3 * 365):
        return f"{t:%Y-%m}"
    if span >= timedelta(days=3):
        return f"{t:%Y-%m-%d}"
    return f"{t:%Y-%m-%d %H:%M}"


def render(
    items: list[Entry],
    since: datetime | None = None,
    until: datetime | None = None,
    width: int = 100,
) -> list[str]:
    """Text lines: an axis, then one line per entry (bar, date, origin, id, label)."""
    if not items:
        return ["no events in this window"]
    lo = since or min(i.start for i in items)
    hi = until or max(max(i.end or i.start for i in items), max(i.start for i in items))
    if hi <= lo:
        hi = lo + timedelta(days=1)
    span = hi - lo
    bar_w = max(20, min(60, width - 40))

    def col(t: datetime) -> int:
        x = (t - lo) / span
        return max(0, min(bar_w - 1, int(x * (bar_w - 1))))

    left, right = _fmt(lo, span), _fmt(hi, span)
    axis = left + " " + "─" * max(1, bar_w - len(left) - len(right) - 2) + " " + right
    lines = [axis]
    for it in items:
        a = col(max(it.start, lo))
        b = col(min(it.end, hi)) if it.end else (bar_w - 1 if it.open_ended else a)
        mark = "█" if it.origin == "known" else "▓"
        cells = [" "] * bar_w
        for j in range(a, b + 1):
            cells[j] = mark
        if it.open_ended or (it.end is not None and it.end > hi):
            cells[bar_w - 1] = "→"
        match = f" = {it.known_event}" if it.known_event else ""
        text = f"{_fmt(it.start, span)} {it.origin:8} {it.id} {it.label}{match}"
        lines.append("".join(cells) + "  " + text)
    return lines
