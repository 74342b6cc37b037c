"""Rollups: daily counts derived from the measurements table, so that questions over a
year of a 100-million-row store read thousands of rows instead of millions.

Two rollups, both keyed by day and by the verdict's ``state``, ``method`` and ``layer``,
holding the counts OONI defines (``COUNTS_SQL``: measurement, ok, anomaly, confirmed,
failure, and didban's down):

============  ====================================================  ======================
rollup        one row per                                           sorted by (for pruning)
============  ====================================================  ======================
``daily_cc``  day, probe_cc, test_name, service, state, method,     service, probe_cc, day
              layer
``daily_asn`` the same and probe_asn                                probe_cc, day
============  ====================================================  ======================

Layout: ``<data-dir>/tables/rollups/<name>/month=<YYYY-MM>/part-<ns>.parquet`` (one file
per month, small row groups) and ``tables/rollups/manifest.json``, which records for each
day the measurement files the day's rows were computed from. Rollups are derived data,
like the tables: ``didban store rebuild`` drops them with the tables and computes them
again, ``store compact`` and ingest call ``refresh(store, days)``.

A reader never trusts a stale rollup: ``relation`` compares each day's current
measurement files with the manifest and answers the days that changed since (a live
collector's today, a day compacted since) from the measurements table itself, in the same
SQL. A rollup is therefore only ever a faster path to the same numbers — tested by
comparing both paths. A month file is swapped in under the store's write lock (as
compaction swaps files), so a query in the same process sees either the old or the new
file, never a half-written one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from didban.store.reader import TableReader

if TYPE_CHECKING:
    from didban.store.store import Store

log = logging.getLogger(__name__)

# OONI's count definitions (ooni-backend.md §9.4); count_if over no rows is NULL in
# DuckDB, so every count is coalesced to 0 as OONI's are.
COUNTS_SQL: Final = """
    count(*) AS measurement_count,
    coalesce(count_if(NOT anomaly AND NOT confirmed AND NOT failure), 0) AS ok_count,
    coalesce(count_if(anomaly AND NOT confirmed AND NOT failure), 0) AS anomaly_count,
    coalesce(count_if(confirmed AND NOT failure), 0) AS confirmed_count,
    coalesce(count_if(failure), 0) AS failure_count,
    coalesce(count_if(coalesce(state = 'down', false)), 0) AS down_count
"""
COUNTS: Final = (
    "measurement_count",
    "ok_count",
    "anomaly_count",
    "confirmed_count",
    "failure_count",
    "down_count",
)
SUMS_SQL: Final = ", ".join(f"CAST(coalesce(sum({c}), 0) AS BIGINT) AS {c}" for c in COUNTS)

_VERDICT_KEYS: Final = ("test_name", "service", "state", "method", "layer")


@dataclass(frozen=True)
class Rollup:
    name: str
    keys: tuple[str, ...]  # after ``day``
    sort: tuple[str, ...]


DAILY_CC: Final = Rollup("daily_cc", ("probe_cc", *_VERDICT_KEYS), ("service", "probe_cc", "day"))
DAILY_ASN: Final = Rollup(
    "daily_asn", ("probe_cc", "probe_asn", *_VERDICT_KEYS), ("probe_cc", "day")
)
ROLLUPS: Final = {r.name: r for r in (DAILY_CC, DAILY_ASN)}
ROW_GROUP: Final = 32_768
MANIFEST: Final = "manifest.json"


def directory(tables_root: Path) -> Path:
    return tables_root / "rollups"


def _day_files(tables_root: Path | str, day: date) -> list[str]:
    try:  # plain strings: a page lists hundreds of days
        with os.scandir(f"{tables_root}/measurements/day={day}") as it:
            return sorted(e.name for e in it if e.name.endswith(".parquet"))
    except FileNotFoundError:
        return []


def _signature(names: list[str]) -> str:
    return hashlib.sha1("\n".join(names).encode()).hexdigest()[:16]


class _Manifest:
    """The manifest, read again only when its file changed (a query reads it each time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[int, dict[str, str]]] = {}

    def read(self, path: Path) -> dict[str, str]:
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        with self._lock:
            hit = self._cache.get(path)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        try:
            days = orjson.loads(path.read_bytes()).get("days", {})
        except (OSError, orjson.JSONDecodeError, AttributeError):
            days = {}
        with self._lock:
            self._cache[path] = (stamp, days)
        return dict(days) if isinstance(days, dict) else {}


_MANIFESTS: Final = _Manifest()


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"  # strftime writes year 94 as "94"


def _month_files(root: Path, name: str, first: date, last: date) -> list[str]:
    out: list[str] = []
    lo, hi = f"month={_month(first)}", f"month={_month(last)}"
    try:
        months = sorted(n for n in os.listdir(root / name) if lo <= n <= hi)
    except FileNotFoundError:
        return []
    for month in months:
        with os.scandir(root / name / month) as it:
            out.extend(sorted(e.path for e in it if e.name.endswith(".parquet")))
    return out


def _present(tables_root: Path, first: date, last: date) -> list[date]:
    """The days from ``first`` to ``last`` that have a measurements directory (listed
    once: a window may span centuries, the store holds a few thousand days)."""
    lo, hi = f"day={first}", f"day={last}"
    try:
        names = os.listdir(tables_root / "measurements")
    except FileNotFoundError:
        return []
    return sorted(
        date.fromisoformat(n[4:]) for n in names if n.startswith("day=") and lo <= n <= hi
    )


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def relation(reader: TableReader, rollup: Rollup, first: date, last: date) -> tuple[str, bool]:
    """SQL (a parenthesised subquery, ``{{measurements}}`` braces escaped for the reader)
    with one row per rollup key and day from ``first`` to ``last`` (inclusive), and whether
    it reads the measurements table (some day is stale). Use it with
    ``reader.rows(sql, params, (first, last))``."""
    if reader.before:  # buffered rows first: the day files are listed below
        reader.before()
    root = directory(reader.root)
    manifest = _MANIFESTS.read(root / MANIFEST)
    fresh: list[date] = []
    stale: list[date] = []
    root_text = str(reader.root)
    for day in _present(reader.root, first, last):
        names = _day_files(root_text, day)
        if names:
            (fresh if manifest.get(str(day)) == _signature(names) else stale).append(day)
    cols = ", ".join(("day", *rollup.keys, *COUNTS))
    parts: list[str] = []
    files = _month_files(root, rollup.name, first, last) if fresh else []
    if files:
        listed = ", ".join(_quote(f) for f in files)
        cond = f"day BETWEEN DATE '{first}' AND DATE '{last}'"
        if stale:
            cond += " AND day NOT IN (" + ", ".join(f"DATE '{d}'" for d in stale) + ")"
        parts.append(f"SELECT {cols} FROM read_parquet([{listed}]) WHERE {cond}")
    if stale:
        keys = ", ".join(("day", *rollup.keys))
        days = ", ".join(f"DATE '{d}'" for d in stale)
        parts.append(
            f"SELECT {keys}, {COUNTS_SQL} FROM {{measurements}} WHERE day IN ({days}) "
            f"GROUP BY {keys}"
        )
    if not parts:
        empty = ", ".join(f"NULL::{t} AS {c}" for c, t in _types(rollup))
        return f"(SELECT {empty} WHERE false)", False
    sql = " UNION ALL ".join(parts)
    return "(" + sql.replace("{", "{{").replace("}", "}}").replace(
        "{{measurements}}", "{measurements}"
    ) + ")", bool(stale)


def _types(rollup: Rollup) -> list[tuple[str, str]]:
    kinds = {"day": "DATE", "probe_asn": "BIGINT"}
    return [(c, kinds.get(c, "VARCHAR")) for c in ("day", *rollup.keys)] + [
        (c, "BIGINT") for c in COUNTS
    ]


def _compute(reader: TableReader, rollup: Rollup, days: list[date]) -> pa.Table:
    keys = ", ".join(("day", *rollup.keys))
    listed = ", ".join("CAST(? AS DATE)" for _ in days)
    return reader.run(
        f"SELECT {keys}, {COUNTS_SQL} FROM {{measurements}} WHERE day IN ({listed}) "
        f"GROUP BY {keys}",
        [str(d) for d in days],
        (min(days), max(days)),
    )


def _schema(rollup: Rollup) -> pa.Schema:
    arrow = {"DATE": pa.date32(), "BIGINT": pa.int64(), "VARCHAR": pa.string()}
    return pa.schema([(c, arrow[t]) for c, t in _types(rollup)])


def _write_month(
    store: Store, rollup: Rollup, month: str, days: list[date], fresh: pa.Table
) -> None:
    """Replace ``days`` of one month file by ``fresh`` rows (the other days kept)."""
    schema = _schema(rollup)
    d = directory(store.tables_root) / rollup.name / f"month={month}"
    olds = sorted(d.glob("*.parquet")) if d.exists() else []
    parts = [fresh.select(schema.names).cast(schema)]
    if olds:
        kept = pq.read_table(olds, schema=schema) if len(olds) > 1 else pq.read_table(olds[0])
        drop = pa.array(days, pa.date32())
        parts.append(kept.cast(schema).filter(pc.invert(pc.is_in(kept["day"], value_set=drop))))
    table = pa.concat_tables(parts).sort_by([(c, "ascending") for c in rollup.sort])
    d.mkdir(parents=True, exist_ok=True)
    dest = d / f"part-{time.time_ns()}.parquet"
    tmp = dest.with_name(dest.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP)
    _fsync(tmp)
    with store.rwlock.write():  # a query sees the old file or the new one
        os.replace(tmp, dest)
        for old in olds:
            old.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _all_days(tables_root: Path) -> list[date]:
    d = tables_root / "measurements"
    if not d.exists():
        return []
    return sorted(date.fromisoformat(p.name[4:]) for p in d.iterdir() if p.name.startswith("day="))


def refresh(store: Store, days: Iterable[date | str] | None = None) -> int:
    """Recompute the rollups of ``days`` (every day of the store when None) from the
    measurements table; returns how many days were refreshed.

    Call it after new measurements reached the tables (ingest), after a compaction, and
    after a rebuild. Buffered rows are flushed first (the reader flushes before a query).
    Days without measurement files lose their rollup rows.
    """
    store.flush()  # buffered rows become the day files listed here
    wanted = (
        _all_days(store.tables_root)
        if days is None
        else sorted({d if isinstance(d, date) else date.fromisoformat(d) for d in days})
    )
    if not wanted:
        return 0
    root = directory(store.tables_root)
    manifest_path = root / MANIFEST
    manifest = dict(_MANIFESTS.read(manifest_path))
    by_month: dict[str, list[date]] = {}
    for d in wanted:
        by_month.setdefault(_month(d), []).append(d)
    for month, month_days in sorted(by_month.items()):
        # the files each day is computed from, listed before the query reads them: a file
        # flushed meanwhile leaves the day stale (answered from the table), never wrong
        signatures = {d: _day_files(store.tables_root, d) for d in month_days}
        for rollup in ROLLUPS.values():
            _write_month(
                store, rollup, month, month_days, _compute(store.reader, rollup, month_days)
            )
        for d, names in signatures.items():
            if names:
                manifest[str(d)] = _signature(names)
            else:
                manifest.pop(str(d), None)
    root.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path.with_name(MANIFEST + ".tmp")
    tmp.write_bytes(orjson.dumps({"version": 1, "days": dict(sorted(manifest.items()))}))
    _fsync(tmp)
    os.replace(tmp, manifest_path)
    return len(wanted)


def stale_days(store: Store) -> list[date]:
    """The store's days whose rollup rows are missing or out of date."""
    manifest = _MANIFESTS.read(directory(store.tables_root) / MANIFEST)
    return [
        d
        for d in _all_days(store.tables_root)
        if manifest.get(str(d)) != _signature(_day_files(store.tables_root, d))
    ]


def refresh_stale(store: Store) -> int:
    """``refresh`` the days whose measurement files changed since their rollup (what
    ``store compact`` runs after merging files); returns how many days."""
    store.flush()
    return refresh(store, stale_days(store)) if stale_days(store) else 0


class Refresher:
    """Keeps a live store's rollups fresh: a thread that runs ``refresh_stale`` at start
    and every ``every`` seconds (a serving store compacts and flushes by itself, and no
    ``store compact`` can run beside it). Until a day is refreshed, readers answer it from
    the table, so this only keeps queries fast."""

    def __init__(self, store: Store, every: float = 300.0) -> None:
        self.store = store
        self.every = every
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollups", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                refresh_stale(self.store)
            except Exception:  # the next round tries again; readers are never wrong
                log.exception("refreshing the rollups failed")
            self.runs += 1
            if self._stop.wait(self.every):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the refresh in progress (before the store is closed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
