"""Alert subscriptions and the durable outbox of their deliveries (``<data-dir>/alerts.sqlite``).

A subscription is a URL, a secret of its own (made here, shown once by ``alerts add``) and
optional filters (country, target, kind). ``enqueue`` turns each matching event's start — and
its end, once it has one — into one outbox row keyed ``(subscription, "<event id>:<phase>")``:
the key is unique, so running the detector again enqueues nothing twice, and a committed row
(SQLite, ``synchronous=FULL``) survives a crash or a restart. ``deliver`` posts the due rows
(``webhook.post``, signed); a 2xx marks the row delivered, anything else schedules a retry
after ``base_delay × 2^(attempts−1)`` seconds, at most ``max_delay``. Rows are never
dropped: a receiver that is down for a day gets its alerts when it is back (at least once;
a receiver deduplicates on ``Didban-Idempotency-Key``). Events below ``MIN_CONFIDENCE`` are
not announced.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from didban.events import webhook
from didban.events.database import Database
from didban.events.record import KINDS, Event

FILE_NAME: Final = "alerts.sqlite"
MIN_CONFIDENCE: Final = 0.5
TIMEOUT: Final = 10.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    cc TEXT,
    target TEXT,
    kind TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    subscription TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    delivered_at REAL,
    last_error TEXT,
    UNIQUE (subscription, idempotency_key)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, next_at);
"""


class AlertError(ValueError):
    """A bad subscription request (one sentence for the user)."""


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    secret: str
    cc: str | None
    target: str | None
    kind: str | None

    def wants(self, e: Event) -> bool:
        return (
            (self.cc is None or e.cc == self.cc)
            and (self.target is None or e.target == self.target)
            and (self.kind is None or e.kind == self.kind)
            and e.confidence >= MIN_CONFIDENCE
        )


@dataclass(frozen=True)
class Pending:
    subscription: str
    url: str
    attempts: int
    next_at: float
    last_error: str | None
    key: str


@dataclass(frozen=True)
class Transition:
    """An event's start or end, as an alert announces it."""

    event: Event
    phase: str  # "start" | "end"

    @property
    def key(self) -> str:
        return f"{self.event.id}:{self.phase}"


class Alert(msgspec.Struct):
    """The JSON body of one delivery."""

    type: str  # "event.start" | "event.end"
    idempotency_key: str
    event: Event


class Outbox(Database):
    def __init__(
        self,
        data_dir: Path,
        *,
        base_delay: float = 30.0,
        max_delay: float = 3600.0,
        timeout: float = TIMEOUT,
    ) -> None:
        # 0600: it holds the subscriptions' secrets
        super().__init__(Path(data_dir) / FILE_NAME, _SCHEMA, mode=0o600)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout

    # --- subscriptions ------------------------------------------------------------

    def add(
        self, url: str, cc: str | None = None, target: str | None = None, kind: str | None = None
    ) -> Subscription:
        try:
            webhook.check_url(url)
        except webhook.BadUrl as exc:
            raise AlertError(str(exc)) from None
        if kind is not None and kind not in KINDS:
            raise AlertError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if cc is not None and not (len(cc) == 2 and cc.isalpha()):
            raise AlertError(f"--cc must be a two-letter country code, not {cc!r}")
        sub = Subscription(
            "sub-" + secrets.token_hex(6),
            url,
            secrets.token_urlsafe(32),
            cc.upper() if cc else None,
            target,
            kind,
        )
        with self._tx() as db:
            db.execute(
                "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sub.id, sub.url, sub.secret, sub.cc, sub.target, sub.kind, time.time()),
            )
        return sub

    def subscriptions(self) -> list[Subscription]:
        rows = self.db.execute(
            "SELECT id, url, secret, cc, target, kind FROM subscriptions ORDER BY created, id"
        ).fetchall()
        return [Subscription(*r) for r in rows]

    def remove(self, sub_id: str) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,)).rowcount == 0:
                raise AlertError(f"there is no subscription {sub_id!r} (see 'didban alerts list')")

    # --- outbox -------------------------------------------------------------------

    def enqueue(self, events: Iterable[Event], now: float | None = None) -> int:
        """Queue the start (and end, when known) of every event a subscription wants;
        returns how many rows are new."""
        moves = [
            (e, phase)
            for e in events
            for phase in ("start", "end")
            if phase == "start" or e.resolved_before
        ]
        return self._enqueue(moves, now)

    def enqueue_transitions(self, moves: Iterable[Transition], now: float | None = None) -> int:
        """Queue the given starts and ends (``saved.publish``: only what is new to the
        saved events) for every subscription that wants them; returns how many rows are new."""
        return self._enqueue([(m.event, m.phase) for m in moves], now)

    def _enqueue(self, moves: list[tuple[Event, str]], now: float | None) -> int:
        now = time.time() if now is None else now
        subs = self.subscriptions()
        added = 0
        with self._tx() as db:
            for e, phase in moves:
                key = f"{e.id}:{phase}"
                body = msgspec.json.encode(Alert(f"event.{phase}", key, e))
                for sub in subs:
                    if not sub.wants(e):
                        continue
                    cur = db.execute(
                        "INSERT OR IGNORE INTO outbox (subscription, idempotency_key, body,"
                        " next_at) VALUES (?, ?, ?, ?)",
                        (sub.id, key, body, now),
                    )
                    added += cur.rowcount
        return added

    def pending(self) -> list[Pending]:
        rows = self.db.execute(
            "SELECT o.subscription, s.url, o.attempts, o.next_at, o.last_error, "
            "o.idempotency_key FROM outbox o JOIN subscriptions s ON s.id = o.subscription "
            "WHERE o.delivered_at IS NULL ORDER BY o.id"
        ).fetchall()
        return [Pending(*r) for r in rows]

    def delay(self, attempts: int) -> float:
        return float(min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))

    def deliver(self, now: float | None = None, *, due_only: bool = True) -> tuple[int, int]:
        """Post every due row once; returns (delivered, failed)."""
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT o.id, s.url, s.secret, o.idempotency_key, o.body, o.attempts "
            "FROM outbox o JOIN subscriptions s ON s.id = o.subscription "
            "WHERE o.delivered_at IS NULL AND (o.next_at <= ? OR ?) ORDER BY o.id",
            (now, not due_only),
        ).fetchall()
        delivered = failed = 0
        for row_id, url, secret, key, body, attempts in rows:
            outcome = webhook.post(url, body, secret, key, self.timeout)
            after = time.time()
            with self._tx() as db:
                if outcome.ok:
                    db.execute(
                        "UPDATE outbox SET delivered_at = ?, attempts = ?, last_error = NULL "
                        "WHERE id = ?",
                        (after, attempts + 1, row_id),
                    )
                    delivered += 1
                else:
                    db.execute(
                        "UPDATE outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
                        (attempts + 1, after + self.delay(attempts + 1), outcome.detail, row_id),
                    )
                    failed += 1
        return delivered, failed

    def next_due(self) -> float | None:
        row = self.db.execute(
            "SELECT min(next_at) FROM outbox WHERE delivered_at IS NULL"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def drain(self, deadline: float) -> int:
        """Deliver until nothing is pending or ``deadline`` (time.time()) passes, sleeping
        until the next retry is due; returns how many rows are still pending."""
        while True:
            self.deliver()
            due = self.next_due()
            if due is None:
                return 0
            now = time.time()
            if due > deadline or now >= deadline:
                return len(self.pending())
            time.sleep(max(0.0, min(due, deadline) - now))
