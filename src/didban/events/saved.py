"""The saved events: what ``didban events detect`` found, kept in ``<data-dir>/events.sqlite``.

Detection is a pure function of the verdicts (``detect``); what the API, its Atom feeds and
the alerts serve are *saved* events, so that an event has a citable URL that answers the
same tomorrow, a feed entry has a publication date, and an alert is sent once per event
transition. One row per event id (the id is derived from the event's content,
``record.event_id``): saving the same event again updates its row in place (same id → same
row), never adds one. Each row keeps the event record as detected last, when it was first
seen, when its content last changed (an entry's ``updated`` in a feed), when a run last
produced it, and — when a later complete run no longer finds it (late data moved its onset,
so it has a new id; a backfill showed it was older than the window) — when it was
*retracted*. Retracted events stay answerable by id (a cited URL never breaks) but leave
listings and feeds.

Which runs may save: a run over the whole store or a time window of it, never a run
narrowed by country, network or target — a narrowed run sees part of a national block or
none of the countries that reveal an artefact, so it would give a known id a narrower
content. Only a *complete* run (no window, no filter) retracts: a windowed run cannot tell
an event it missed at its window's start (its warm-up) from an event that is gone.

``publish`` is the saving step with its alerts: it computes the transitions the new rows
bring (a new event's start, an end that was not known), queues them in the alert outbox
(keyed ``<event id>:start|end``, unique per subscription) *before* writing the rows, then
writes them. A crash in between re-queues nothing twice on the next run (the keys exist)
and loses nothing (the rows, still old, show the same transitions again).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from didban.data import catalog
from didban.events.alerts import FILE_NAME as ALERTS_FILE
from didban.events.alerts import Outbox, Transition
from didban.events.database import Database
from didban.events.record import Event, iso
from didban.events.series import Filters

FILE_NAME: Final = "events.sqlite"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    cc TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT,
    service TEXT,
    asns TEXT NOT NULL,
    onset_before TEXT NOT NULL,
    resolved_before TEXT,
    confidence REAL NOT NULL,
    record BLOB NOT NULL,
    first_seen TEXT NOT NULL,
    changed TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    retracted TEXT
);
CREATE INDEX IF NOT EXISTS events_cc_onset ON events (cc, onset_before);
CREATE INDEX IF NOT EXISTS events_changed ON events (changed);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    source TEXT NOT NULL,
    since TEXT,
    until TEXT,
    complete INTEGER NOT NULL,
    n_events INTEGER NOT NULL,
    added INTEGER NOT NULL,
    changed INTEGER NOT NULL,
    retracted INTEGER NOT NULL
);
"""

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Event)


@dataclass(frozen=True)
class Saved:
    """One saved event and its history."""

    event: Event
    first_seen: str  # ISO 8601 UTC
    changed: str
    last_seen: str
    retracted: str | None


@dataclass(frozen=True)
class Coverage:
    """What one detection run looked at: its source and window, and whether it is
    complete (the whole source: no window, no filter)."""

    source: str
    since: datetime | None = None
    until: datetime | None = None
    complete: bool = False


@dataclass(frozen=True)
class Changes:
    added: int
    changed: int
    unchanged: int
    retracted: int


class EventTable(Database):
    """``<data-dir>/events.sqlite``: open it to write (``save``) or ``readonly`` (the API)."""

    def __init__(self, data_dir: Path, *, readonly: bool = False) -> None:
        super().__init__(Path(data_dir) / FILE_NAME, _SCHEMA, readonly=readonly)

    @classmethod
    def exists(cls, data_dir: Path) -> bool:
        return (Path(data_dir) / FILE_NAME).is_file()

    # --- writing ------------------------------------------------------------------------

    def transitions(self, events: Iterable[Event]) -> list[Transition]:
        """The starts and ends that saving ``events`` would bring: a start for an id not
        saved yet, an end for an event resolved now and not resolved in its saved row."""
        out: list[Transition] = []
        for e in events:
            row = self.db.execute(
                "SELECT resolved_before FROM events WHERE id = ?", (e.id,)
            ).fetchone()
            if row is None:
                out.append(Transition(e, "start"))
            if e.resolved_before and (row is None or row[0] is None):
                out.append(Transition(e, "end"))
        return out

    def save(
        self, events: Sequence[Event], coverage: Coverage, now: datetime | None = None
    ) -> Changes:
        """Upsert ``events`` (same id → same row); a complete run retracts the saved events
        of its source it did not produce. One transaction."""
        at = iso(now or datetime.now(UTC)) or ""
        added = changed = unchanged = retracted = 0
        with self._tx() as db:
            for e in events:
                record = _ENCODER.encode(e)
                row = db.execute(
                    "SELECT record, retracted FROM events WHERE id = ?", (e.id,)
                ).fetchone()
                if row is None:
                    db.execute(
                        f"INSERT INTO events VALUES ({', '.join('?' * 14)}, NULL)",
                        (*_columns(e), record, at, at, at),
                    )
                    added += 1
                    continue
                same = bytes(row[0]) == record and row[1] is None
                db.execute(
                    "UPDATE events SET kind = ?, cc = ?, source = ?, target = ?, service = ?, "
                    "asns = ?, "
                    "onset_before = ?, resolved_before = ?, confidence = ?, record = ?, "
                    "changed = CASE WHEN ? THEN changed ELSE ? END, last_seen = ?, "
                    "retracted = NULL WHERE id = ?",
                    (*_columns(e)[1:], record, same, at, at, e.id),
                )
                if same:
                    unchanged += 1
                else:
                    changed += 1
            if coverage.complete:
                ids = [e.id for e in events]
                db.execute("CREATE TEMP TABLE IF NOT EXISTS produced (id TEXT PRIMARY KEY)")
                db.execute("DELETE FROM produced")
                db.executemany("INSERT OR IGNORE INTO produced VALUES (?)", [(i,) for i in ids])
                retracted = db.execute(
                    "UPDATE events SET retracted = ?, changed = ? WHERE source = ? "
                    "AND retracted IS NULL AND id NOT IN (SELECT id FROM produced)",
                    (at, at, coverage.source),
                ).rowcount
            db.execute(
                "INSERT INTO runs (at, source, since, until, complete, n_events, added, "
                "changed, retracted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    at,
                    coverage.source,
                    iso(coverage.since),
                    iso(coverage.until),
                    int(coverage.complete),
                    len(events),
                    added,
                    changed,
                    retracted,
                ),
            )
        return Changes(added, changed, unchanged, retracted)

    # --- reading ------------------------------------------------------------------------

    def get(self, event_id: str) -> Saved | None:
        row = self.db.execute(
            "SELECT record, first_seen, changed, last_seen, retracted FROM events WHERE id = ?",
            (event_id,),
        ).fetchone()
        return _saved(row) if row else None

    def query(
        self,
        filters: Filters,
        *,
        min_confidence: float = 0.0,
        retracted: bool = False,
        order: str = "onset",
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[int, list[Saved]]:
        """(how many, one page of) the saved events by country, network, target, kind,
        confidence and time (active in [since, until)), newest first — by onset, or by last
        change (``order="changed"``, for feeds). Targets match as ``detect.select``'s do:
        equal, a subdomain, or a domain of that catalog service (a wanted domain also
        stands for its service) — in SQL, so only the page is decoded."""
        conds: list[str] = ["confidence >= ?"]
        params: list[object] = [min_confidence]
        if not retracted:
            conds.append("retracted IS NULL")
        for column, values in (("cc", filters.cc), ("kind", filters.kind)):
            if values:
                conds.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if filters.asn:
            conds.append("(" + " OR ".join("instr(asns, ?) > 0" for _ in filters.asn) + ")")
            params.extend(f",{a}," for a in filters.asn)
        if wanted := filters.targets():
            one = "target = ? OR service = ? OR substr(target, -length(?) - 1) = '.' || ?"
            conds.append("(" + " OR ".join(f"({one})" for _ in wanted) + ")")
            for w in wanted:
                params.extend((w, w, w, w))
        since, until = filters.since, filters.until
        if until is not None:
            conds.append("onset_before <= ?")
            params.append(iso(until))
        if since is not None:
            conds.append("(resolved_before IS NULL OR resolved_before >= ?)")
            params.append(iso(since))
        where = " AND ".join(conds)
        (total,) = self.db.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()
        by = "changed DESC, id" if order == "changed" else "onset_before DESC, id"
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        rows = self.db.execute(
            "SELECT record, first_seen, changed, last_seen, retracted FROM events "
            f"WHERE {where} ORDER BY {by}{page}",
            params,
        ).fetchall()
        return int(total), [_saved(r) for r in rows]

    def last_run(self) -> str | None:
        row = self.db.execute("SELECT max(at) FROM runs").fetchone()
        return None if row is None else row[0]


def _columns(e: Event) -> tuple[object, ...]:
    return (
        e.id,
        e.kind,
        e.cc,
        e.source,
        e.target,
        catalog.service_for_host(e.target) if e.target and "." in e.target else None,
        "," + ",".join(map(str, e.asns)) + ",",
        e.onset_before,
        e.resolved_before,
        e.confidence,
    )


def _saved(row: tuple[bytes, str, str, str, str | None]) -> Saved:
    return Saved(_DECODER.decode(row[0]), row[1], row[2], row[3], row[4])


@dataclass(frozen=True)
class Published:
    changes: Changes
    queued: int  # new outbox rows (alerts)
    transitions: int


def publish(
    data_dir: Path, events: Sequence[Event], coverage: Coverage, now: datetime | None = None
) -> Published:
    """Save ``events`` and queue the alerts of the transitions they bring (before saving:
    see the module's docstring)."""
    with EventTable(data_dir) as table:
        moves = table.transitions(events)
        queued = 0
        if moves and (Path(data_dir) / ALERTS_FILE).exists():
            with Outbox(data_dir) as box:
                queued = box.enqueue_transitions(moves)
        changes = table.save(events, coverage, now)
    return Published(changes, queued, len(moves))
