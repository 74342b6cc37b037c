"""The known-events dataset (``didban/data/known-events.csv``) and its matching to detected events.

Each known event has a dated start (and end, when reported) at the precision its source
gives — a year, a month, a day or a minute — read as a bracket: ``2022-09-21`` is the
whole day, ``2009`` the whole year. A detected event matches a known one when the country
agrees, the kinds agree (a ``block`` with a known block, an ``unblock`` with a known block's
end, ``shutdown``/``outage``/``nin`` with a known shutdown or outage), the target is one of
the known event's targets (when it names any; an AS-level outage must share an ASN), and the
detected onset bracket meets the known bracket widened as in the SIGCOMM '23 matching rule
(one day before, two days after; event-detection.md §7). Sources and caveats:
``didban/data/known-events.md``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Final

from didban.data import catalog
from didban.data import path as data_path
from didban.events.record import Event, parse_iso

BEFORE: Final = timedelta(days=1)
AFTER: Final = timedelta(days=2)


@dataclass(frozen=True)
class KnownEvent:
    id: str
    kind: str  # block | shutdown | outage | throttle
    cc: str
    asns: tuple[int, ...]
    targets: tuple[str, ...]
    scope: str
    start: tuple[datetime, datetime]  # bracket [lo, hi)
    end: tuple[datetime, datetime] | None
    start_text: str
    end_text: str
    description: str
    source: str
    caveat: str

    @property
    def holds(self) -> bool:
        """A block or a throttle holds until it is lifted: without a recorded end it is
        still on. An outage or a shutdown is an interruption that ends by itself: without a
        recorded end only its start is known."""
        return self.kind in ("block", "throttle")

    def latest(self) -> datetime:
        """The last moment the record lets the event cover: its end's bracket; without one,
        none for what holds, its start's bracket for an interruption."""
        if self.end:
            return self.end[1]
        return datetime.max if self.holds else self.start[1]


def bracket(text: str) -> tuple[datetime, datetime]:
    """``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or an ISO time as a [lo, hi) bracket."""
    s = text.strip()
    if len(s) == 4 and s.isdigit():
        y = int(s)
        return datetime(y, 1, 1), datetime(y + 1, 1, 1)
    if len(s) == 7:
        y, m = int(s[:4]), int(s[5:])
        return datetime(y, m, 1), datetime(y + (m == 12), m % 12 + 1, 1)
    if len(s) == 10:
        d = datetime.fromisoformat(s)
        return d, d + timedelta(days=1)
    t = parse_iso(s)
    return t, t + timedelta(minutes=1)


def _asns(text: str) -> tuple[int, ...]:
    return tuple(int(a.upper().removeprefix("AS")) for a in text.split(";") if a.strip())


def load(path: Path | None = None) -> tuple[KnownEvent, ...]:
    return _load(str(path or data_path("known-events.csv")))


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[KnownEvent, ...]:
    out: list[KnownEvent] = []
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out.append(
                KnownEvent(
                    id=r["id"],
                    kind=r["kind"],
                    cc=r["cc"],
                    asns=_asns(r["asns"]),
                    targets=tuple(t for t in r["targets"].split(";") if t),
                    scope=r["scope"],
                    start=bracket(r["start"]),
                    end=bracket(r["end"]) if r["end"] else None,
                    start_text=r["start"],
                    end_text=r["end"],
                    description=r["description"],
                    source=r["source"],
                    caveat=r["caveat"],
                )
            )
    return tuple(out)


def target_matches(target: str, wanted: Iterable[str]) -> bool:
    """``target`` (a service id or a domain) is one of ``wanted`` (service ids or domains):
    equal, a subdomain, or a domain of that catalog service."""
    t = target.lower()
    service = catalog.service_for_host(t) if "." in t else None
    return any(t == w or t.endswith("." + w) or service == w for w in wanted)


def _kinds_match(event_kind: str, known_kind: str) -> bool:
    if event_kind in ("block", "unblock"):
        return known_kind == "block"
    return known_kind in ("shutdown", "outage")


def score(e: Event, k: KnownEvent) -> float | None:
    """How far apart (seconds) a detected and a known event are, or None if they do not match."""
    if e.cc != k.cc or not _kinds_match(e.kind, k.kind):
        return None
    if k.targets:
        if e.target is None or not target_matches(e.target, k.targets):
            return None
    elif e.kind in ("block", "unblock"):
        return None
    if k.scope == "AS" and k.asns and not set(k.asns) & set(e.asns):
        return None
    when = k.end if e.kind == "unblock" else k.start
    if when is None:
        return None
    onset_hi = parse_iso(e.onset_before)
    onset_lo = parse_iso(e.onset_after) if e.onset_after else onset_hi
    lo, hi = when[0] - BEFORE, when[1] + AFTER
    if onset_hi < lo or onset_lo > hi:
        return None
    return abs((onset_hi - when[0]).total_seconds())


def match(e: Event, known: Iterable[KnownEvent]) -> str | None:
    """The id of the closest matching known event, or None."""
    best: tuple[float, str] | None = None
    for k in known:
        s = score(e, k)
        if s is not None and (best is None or (s, k.id) < best):
            best = (s, k.id)
    return best[1] if best else None


def select(
    known: Iterable[KnownEvent],
    cc: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[KnownEvent]:
    """Known events of ``cc`` (naming ``target`` when given) that overlap [since, until)
    (``KnownEvent.latest``: an outage without a recorded end is not carried forward)."""
    out = []
    for k in known:
        if cc and k.cc != cc:
            continue
        if target and not target_matches(target, k.targets):
            continue
        if since and k.latest() < since:
            continue
        if until and k.start[0] >= until:
            continue
        out.append(k)
    return sorted(out, key=lambda k: (k.start[0], k.id))
