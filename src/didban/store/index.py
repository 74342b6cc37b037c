"""The archive index and the store's small mutable state, in one SQLite file.

Tables: ``msmt`` (uid → content hash, archive location, day, whether its table rows are
written), ``files`` (bytes of each archive file already indexed), ``pending`` (Parquet
files being written or compacted, for crash recovery) and ``ledger`` (input files
``didban ingest`` finished). SQLite runs in WAL mode with ``synchronous=FULL`` so a
commit is on disk when it returns. Everything here can be rebuilt from the archive
except the ingest ledger, which only saves work.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

_F = TypeVar("_F", bound=Callable[..., Any])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS msmt (
    uid TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    file TEXT NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    line INTEGER NOT NULL,
    day TEXT NOT NULL,
    tabled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS msmt_untabled ON msmt(tabled) WHERE tabled = 0;
CREATE TABLE IF NOT EXISTS files (file TEXT PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY, kind TEXT, paths TEXT);
CREATE TABLE IF NOT EXISTS ledger (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
    records INTEGER, added INTEGER, bad INTEGER, done_at TEXT
);
"""


@dataclass(frozen=True)
class Location:
    uid: str
    file: str  # relative to the archive root
    offset: int
    length: int
    line: int
    day: str


@dataclass(frozen=True)
class NewRow:
    uid: str
    hash: str
    file: str
    offset: int
    length: int
    line: int
    day: str


def _locked(fn: _F) -> _F:
    @functools.wraps(fn)
    def wrapper(self: Index, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return fn(self, *args, **kwargs)

    return cast(_F, wrapper)


class Index:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self.lock = threading.RLock()  # one connection shared by the store's threads

    @_locked
    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ lookups
    @_locked
    def uids_for_hashes(self, hashes: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            q = f"SELECT hash, uid FROM msmt WHERE hash IN ({','.join('?' * len(chunk))})"
            out.update(dict(self.db.execute(q, chunk).fetchall()))
        return out

    @_locked
    def existing_uids(self, uids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(uids), 500):
            chunk = list(uids[i : i + 500])
            q = f"SELECT uid FROM msmt WHERE uid IN ({','.join('?' * len(chunk))})"
            out.update(r[0] for r in self.db.execute(q, chunk).fetchall())
        return out

    @_locked
    def locate(self, uid: str) -> Location | None:
        row = self.db.execute(
            "SELECT uid, file, offset, length, line, day FROM msmt WHERE uid = ?", (uid,)
        ).fetchone()
        return Location(*row) if row else None

    @_locked
    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM msmt").fetchone()[0])

    @_locked
    def untabled(self, limit: int, after: tuple[str, int, int] | None = None) -> list[Location]:
        """Measurements not yet in the tables, in archive order (after ``after``: the
        (file, offset, line) of the last one of the previous page)."""
        cond, args = "", cast(tuple[Any, ...], ())
        if after is not None:
            cond, args = " AND (file, offset, line) > (?, ?, ?)", after
        rows = self.db.execute(
            "SELECT uid, file, offset, length, line, day FROM msmt WHERE tabled = 0"
            f"{cond} ORDER BY file, offset, line LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [Location(*r) for r in rows]

    @_locked
    def file_sizes(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT file, size FROM files").fetchall())

    # ------------------------------------------------------------------ writes
    @_locked
    def add(self, rows: Iterable[NewRow], sizes: dict[str, int]) -> None:
        """Record new measurements and the archive sizes that now include them (one commit)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR IGNORE INTO msmt(uid, hash, file, offset, length, line, day) "
                "VALUES (?,?,?,?,?,?,?)",
                [(r.uid, r.hash, r.file, r.offset, r.length, r.line, r.day) for r in rows],
            )
            self.db.executemany(
                "INSERT INTO files(file, size) VALUES (?, ?) "
                "ON CONFLICT(file) DO UPDATE SET size = excluded.size",
                list(sizes.items()),
            )

    @_locked
    def mark_tabled(self, uids: Sequence[str], pending_id: int | None) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("UPDATE msmt SET tabled = 1 WHERE uid = ?", [(u,) for u in uids])
            if pending_id is not None:
                self.db.execute("DELETE FROM pending WHERE id = ?", (pending_id,))

    @_locked
    def reset_tabled(self) -> None:
        self.db.execute("UPDATE msmt SET tabled = 0")

    @_locked
    def forget_all(self) -> None:
        """Drop the archive index (not the ledger), before re-indexing from the archive."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM msmt")
            self.db.execute("DELETE FROM files")
            self.db.execute("DELETE FROM pending")

    @_locked
    def begin_pending(self, kind: str, paths: str) -> int:
        cur = self.db.execute("INSERT INTO pending(kind, paths) VALUES (?, ?)", (kind, paths))
        return int(cur.lastrowid or 0)

    @_locked
    def end_pending(self, pending_id: int) -> None:
        self.db.execute("DELETE FROM pending WHERE id = ?", (pending_id,))

    @_locked
    def pendings(self) -> list[tuple[int, str, str]]:
        return list(self.db.execute("SELECT id, kind, paths FROM pending ORDER BY id").fetchall())

    # ------------------------------------------------------------------ ledger
    @_locked
    def ledger_done(self, path: str, size: int, mtime_ns: int) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM ledger WHERE path = ? AND size = ? AND mtime_ns = ?",
            (path, size, mtime_ns),
        ).fetchone()
        return row is not None

    @_locked
    def ledger_record(
        self, path: str, size: int, mtime_ns: int, records: int, added: int, bad: int, when: str
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO ledger VALUES (?,?,?,?,?,?,?)",
            (path, size, mtime_ns, records, added, bad, when),
        )
