"""Read access to the tables: in-memory DuckDB connections over the Parquet files.

``TableReader`` runs SQL; the questions the API asks live in ``queries``. Each thread gets
its own in-memory connection (a DuckDB database file would allow only one process;
python-stack.md §7.2). SQL names the tables as ``{measurements}``, ``{observations}``
and ``{verdicts}``; ``TableReader.run`` replaces them with a
``read_parquet`` over the table's hive layout (``day`` typed DATE), or with an empty
relation of the right schema when a table has no file yet. When the caller knows the
day range, only that range's files are named (no glob over every day). Queries hold
the store's read lock so compaction never removes a file under them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from didban.store.schema import TABLES
from didban.store.tables import RWLock


def _connect() -> duckdb.DuckDBPyConnection:
    """An in-memory connection in UTC, with an empty relation ``_empty_<table>`` of each
    table's schema (what a table without files reads as)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    for name, schema in TABLES.items():
        empty = pa.table(
            {f.name: pa.array([], f.type) for f in schema} | {"day": pa.array([], pa.date32())}
        )
        con.register(f"_empty_{name}", empty)
    return con


class TableReader:
    """SQL over the Parquet tables of one store, under its read lock."""

    def __init__(
        self, root: Path, lock: RWLock, before: Callable[[], object] | None = None
    ) -> None:
        self.root = root
        self.lock = lock
        self.before = before
        self._local = threading.local()

    def _con(self) -> duckdb.DuckDBPyConnection:
        con: duckdb.DuckDBPyConnection | None = getattr(self._local, "con", None)
        if con is None:
            con = _connect()
            self._local.con = con
        return con

    def files(self, table: str, days: tuple[date, date] | None) -> list[str] | None:
        """The Parquet files of ``table`` whose day lies in ``days`` (inclusive), or None
        for "all of them" (no day bounds). Listing the few matching directories ourselves
        is several times faster than letting DuckDB expand a glob over every day."""
        d = self.root / table
        if days is None or not d.exists():
            return None
        first, last = days
        if (last - first).days > 3660:
            names = [n for n in os.listdir(d) if n.startswith("day=")]
            wanted = [n for n in names if f"day={first}" <= n <= f"day={last}"]
        else:
            wanted = [f"day={first + timedelta(days=k)}" for k in range((last - first).days + 1)]
        out: list[str] = []
        for name in wanted:
            try:
                with os.scandir(d / name) as it:
                    out.extend(e.path for e in it if e.name.endswith(".parquet"))
            except FileNotFoundError:
                continue
        return sorted(out)

    def source(self, table: str, days: tuple[date, date] | None = None) -> str:
        files = self.files(table, days)
        if files is None:
            d = self.root / table
            if not d.exists() or next(d.glob("day=*/*.parquet"), None) is None:
                return f"_empty_{table}"
            target = "'" + str(d / "day=*" / "*.parquet").replace("'", "''") + "'"
        elif not files:
            return f"_empty_{table}"
        else:
            target = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        return f"read_parquet({target}, hive_partitioning = true, hive_types = {{'day': DATE}})"

    def _sql(self, sql: str, days: tuple[date, date] | None = None) -> str:
        return sql.format(**{t: self.source(t, days) for t in TABLES})

    def run(
        self, sql: str, params: Sequence[Any] = (), days: tuple[date, date] | None = None
    ) -> pa.Table:
        """Run ``sql`` (with ``{table}`` placeholders) and return an Arrow table.

        ``days`` (first, last; inclusive) limits the files read; the SQL must still
        filter on ``day`` itself.
        """
        if self.before:
            self.before()
        with self.lock.read():
            return self._con().sql(self._sql(sql, days), params=list(params)).to_arrow_table()

    def rows(
        self, sql: str, params: Sequence[Any] = (), days: tuple[date, date] | None = None
    ) -> list[dict[str, Any]]:
        """The result as a list of dicts (small results: listings, services)."""
        if self.before:
            self.before()
        with self.lock.read():
            cur = self._con().execute(self._sql(sql, days), list(params))
            names = [d[0] for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def batches(
        self,
        sql: str,
        params: Sequence[Any] = (),
        days: tuple[date, date] | None = None,
        batch_rows: int = 65536,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the result in Arrow batches (exports); holds the read lock until done."""
        if self.before:
            self.before()
        with self.lock.read():
            con = _connect()
            try:
                rel = con.sql(self._sql(sql, days), params=list(params))
                reader = rel.to_arrow_reader(batch_rows)
                yield from reader
            finally:
                con.close()
