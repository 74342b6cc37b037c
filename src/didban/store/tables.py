"""Writing the hive-partitioned Parquet tables: small incremental files, then compaction.

Incremental files: rows are buffered in memory and written, per table and day, as
``<root>/<table>/day=<YYYY-MM-DD>/inc-<ns>-<n>.parquet`` (written under a ``.tmp`` name,
fsynced, then renamed, so a reader never sees half a file). The server flushes every
few seconds, after a few thousand rows, and before any query it answers; an ingest
run flushes every batch.

Compaction: when a day holds more than ``COMPACT_AT`` files, they are merged into one
``part-<ns>.parquet`` sorted by (probe_cc, measurement_start_time). Both steps are
recorded in the index's ``pending`` table first, so a crash in the middle is repaired
on the next open (half-written files removed, rows re-derived from the archive); the
table never holds a row twice.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from didban.files.durable import fsync_dir
from didban.store.index import Index
from didban.store.schema import TABLES

COMPACT_AT: Final = 16
_SORT: Final = [("probe_cc", "ascending"), ("measurement_start_time", "ascending")]


class RWLock:
    """Many readers or one writer; readers are queries, the writer is file removal."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    def acquire_write(self, timeout: float | None = None) -> bool:
        """Take the write side; False if readers still hold it after ``timeout`` seconds."""
        with self._cond:
            ok = self._cond.wait_for(lambda: not (self._writer or self._readers), timeout)
            if ok:
                self._writer = True
            return ok

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()


def write_parquet(table: pa.Table, dest: Path) -> None:
    """Write ``table`` to ``dest`` atomically (temporary name, fsync, rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)


class TableWriter:
    def __init__(self, root: Path, index: Index, lock: RWLock) -> None:
        self.root = root
        self.index = index
        self.lock = lock
        self._mutex = threading.Lock()
        self._rows: dict[str, dict[str, list[dict[str, Any]]]] = {
            t: defaultdict(list) for t in TABLES
        }
        self._uids: list[str] = []
        self._seq = 0
        self.last_flush = time.monotonic()

    @property
    def pending_rows(self) -> int:
        return len(self._uids)

    def add(self, uid: str, day: str, rows: dict[str, list[dict[str, Any]]]) -> None:
        with self._mutex:
            for table, items in rows.items():
                if items:
                    self._rows[table][day].extend(items)
            self._uids.append(uid)

    def flush(self) -> int:
        """Write buffered rows; returns how many measurements were made queryable."""
        with self._mutex:
            if not self._uids:
                self.last_flush = time.monotonic()
                return 0
            rows, uids = self._rows, self._uids
            self._rows = {t: defaultdict(list) for t in TABLES}
            self._uids = []
            stamp = time.time_ns()
            planned: list[tuple[Path, str, list[dict[str, Any]]]] = []
            for table, by_day in rows.items():
                for day, items in by_day.items():
                    self._seq += 1
                    name = f"inc-{stamp}-{os.getpid()}-{self._seq}.parquet"
                    planned.append((self.root / table / f"day={day}" / name, table, items))
            self._write(
                [(p, pa.Table.from_pylist(items, schema=TABLES[t])) for p, t, items in planned],
                uids,
            )
            self.last_flush = time.monotonic()
            return len(uids)

    def write_tables(self, tables: dict[str, dict[str, pa.Table]], uids: Sequence[str]) -> None:
        """Write Arrow tables (table → day → rows) as new files and mark ``uids`` as in the
        tables, with the crash protocol of ``flush`` (a bulk loader builds its rows
        columnar, in worker processes)."""
        with self._mutex:
            stamp = time.time_ns()
            planned: list[tuple[Path, pa.Table]] = []
            for table, by_day in tables.items():
                for day, rows in by_day.items():
                    if rows.num_rows:
                        self._seq += 1
                        name = f"inc-{stamp}-{os.getpid()}-{self._seq}.parquet"
                        planned.append((self.root / table / f"day={day}" / name, rows))
            self._write(planned, uids)

    def _write(self, planned: list[tuple[Path, pa.Table]], uids: Sequence[str]) -> None:
        """Record the files in ``pending``, write them, make their names durable, then mark
        ``uids`` tabled and drop the pending record in one commit."""
        pid = self.index.begin_pending("flush", orjson.dumps([str(p) for p, _ in planned]).decode())
        for dest, table in planned:
            write_parquet(table, dest)
        for directory in {dest.parent for dest, _ in planned}:
            fsync_dir(directory)  # the renames, before the index says the rows are there
        self.index.mark_tabled(uids, pid)

    def day_dirs(self, table: str) -> list[Path]:
        d = self.root / table
        return sorted(p for p in d.iterdir() if p.name.startswith("day=")) if d.exists() else []

    def compact(self, min_files: int = COMPACT_AT, incremental_only: bool = False) -> int:
        """Merge each day holding at least ``min_files`` files into one; returns days merged.

        ``incremental_only`` merges just the small ``inc-*`` files (what the server does
        every minute, so its cost stays bounded); otherwise every file of the day.
        """
        merged = 0
        pattern = "inc-*.parquet" if incremental_only else "*.parquet"
        for table in TABLES:
            for day_dir in self.day_dirs(table):
                with self._mutex:  # only files of finished flushes (see ``recover``)
                    olds = sorted(day_dir.glob(pattern))
                if len(olds) < max(min_files, 2):
                    continue
                if self._compact_day(table, day_dir, olds):
                    merged += 1
        return merged

    def _compact_day(self, table: str, day_dir: Path, olds: list[Path]) -> bool:
        schema = TABLES[table]
        parts = [pq.read_table(p, schema=schema) for p in olds]
        merged = pa.concat_tables(parts).sort_by(_SORT)
        dest = day_dir / f"part-{time.time_ns()}.parquet"
        pid = self.index.begin_pending(
            "compact", orjson.dumps({"new": str(dest), "old": [str(p) for p in olds]}).decode()
        )
        tmp = dest.with_name(dest.name + ".tmp")
        pq.write_table(merged, tmp, compression="zstd")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        # Readers must see either the old files or the new one, never both. A long
        # reader (a streamed export) makes the merge wait for a later round instead of
        # stalling the caller (the collector's commit thread).
        if not self.lock.acquire_write(timeout=2.0):
            tmp.unlink(missing_ok=True)
            self.index.end_pending(pid)
            return False
        try:
            os.replace(tmp, dest)
            for p in olds:
                p.unlink(missing_ok=True)
        finally:
            self.lock.release_write()
        self.index.end_pending(pid)
        return True

    def recover(self) -> None:
        """Undo what a crash left half done (see the module docstring)."""
        for pid, kind, paths in self.index.pendings():
            data = orjson.loads(paths)
            if kind == "flush":
                for p in data:
                    Path(p).unlink(missing_ok=True)
                    Path(p + ".tmp").unlink(missing_ok=True)
            elif kind == "compact":
                new = Path(data["new"])
                if new.exists():
                    for p in data["old"]:
                        Path(p).unlink(missing_ok=True)
                Path(str(new) + ".tmp").unlink(missing_ok=True)
            self.index.end_pending(pid)
        for tmp in self.root.rglob("*.parquet.tmp") if self.root.exists() else []:
            tmp.unlink(missing_ok=True)

    def drop_all(self) -> None:
        with self._mutex, self.lock.write():
            self._rows = {t: defaultdict(list) for t in TABLES}
            self._uids = []
            shutil.rmtree(self.root, ignore_errors=True)
