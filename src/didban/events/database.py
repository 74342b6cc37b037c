"""The SQLite files the events package keeps in a data directory (saved events, alert
subscriptions and their outbox): opened for writing with a write-ahead log and ``FULL``
synchronous commits (a change is on disk when its transaction returns), or read-only.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self


class Database:
    """One SQLite file under ``data_dir``: ``_tx()`` is one ``BEGIN IMMEDIATE`` transaction,
    rolled back when its block raises."""

    def __init__(
        self, path: Path, schema: str, *, readonly: bool = False, mode: int | None = None
    ) -> None:
        """``mode``: the permissions of a file this call creates, set before anything is
        written to it (SQLite gives its journal files the same)."""
        self.path = path
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        if new and mode is not None:
            os.chmod(path, mode)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(schema)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
