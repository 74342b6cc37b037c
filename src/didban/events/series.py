"""Series from didban's verdicts: counts per (country, ASN, target[, resolver | layer]) and bucket.

Reads the store's ``verdicts`` Parquet table (``<data-dir>/tables/verdicts/day=…/``, the
public on-disk layout of docs/store.md) — or any Parquet file or directory of verdict rows
with the same columns, such as ``didban analyze --output V.parquet`` — with an in-memory
DuckDB connection, so it needs no writer lock and runs beside ``didban serve``. The query
is this package's own (the store's query modules are not imported).

Counts, not medians (event-detection.md §4.2): per bucket the number of verdicts in each
state, with ``blocked`` split three ways — ``blocked`` (a block of this target),
``isolated`` (``nin.isolated``) and ``shutdown`` (``shutdown``): run-level verdicts describe
the network, not the target, and must not read as a block of every target at once — and
the number of distinct ``report_id`` values as the count of distinct probes (OONI's
fallback when no probe id exists; an upper bound, since a probe starts a new report per run).

DNS series can be keyed by resolver kind (``--dns-by-resolver``): the verdicts table does not
carry the resolver, so this joins the ``measurements`` table on ``measurement_uid`` for its
``resolver_asn``: ``isp`` when it equals the probe's ASN, ``other`` when it differs, ``""``
when unknown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa

from didban.data import catalog
from didban.events import grid as gridmod
from didban.events.grid import Grid

EPOCH: Final = datetime(1970, 1, 1)
RUN_LEVEL_METHODS: Final = ("nin.isolated", "shutdown")
TARGET_KEYS: Final = ("cc", "asn", "target", "resolver")
LAYER_KEYS: Final = ("cc", "asn", "target", "layer")
STATE_COUNTS: Final = ("ok", "blocked", "isolated", "shutdown", "down", "inconclusive")


class SourceError(ValueError):
    """A verdicts source that cannot be read (one sentence for the user)."""


@dataclass(frozen=True)
class Filters:
    """What to read, and which events to keep: the same names as the aggregation API's
    filters (plus the window, and the event kinds, which only events have)."""

    cc: Sequence[str] = ()
    asn: Sequence[int] = ()
    target: Sequence[str] = ()  # service ids or domains
    since: datetime | None = None  # naive UTC, inclusive
    until: datetime | None = None  # naive UTC, exclusive
    kind: Sequence[str] = ()

    def targets(self) -> list[str]:
        """The wanted targets, lower-cased, a domain standing for its catalog service too."""
        wanted = [t.lower() for t in self.target]
        return wanted + [s for t in wanted if "." in t and (s := catalog.service_for_host(t))]


@dataclass(frozen=True)
class VerdictSource:
    """Verdict rows on disk: the store's hive-partitioned table, or Parquet files."""

    root: Path
    hive: bool  # day=YYYY-MM-DD partitions (the store's layout)
    measurements: Path | None = None  # the store's measurements table (resolver kind)

    @classmethod
    def store(cls, data_dir: Path) -> VerdictSource:
        tables = Path(data_dir) / "tables"
        if not Path(data_dir).is_dir():
            raise SourceError(f"there is no store at {data_dir} (see --data-dir)")
        return cls(tables / "verdicts", True, tables / "measurements")

    @classmethod
    def parquet(cls, path: Path) -> VerdictSource:
        path = Path(path)
        if not path.exists():
            raise SourceError(f"{path} does not exist")
        hive = path.is_dir() and any(p.name.startswith("day=") for p in path.iterdir())
        return cls(path, hive)

    def files(self, table_root: Path, days: tuple[date, date] | None) -> list[str]:
        if table_root.is_file():
            return [str(table_root)]
        if not table_root.is_dir():
            return []
        out: list[str] = []
        if not self.hive:
            return sorted(str(p) for p in table_root.rglob("*.parquet"))
        for name in sorted(os.listdir(table_root)):
            if not name.startswith("day="):
                continue
            if days is not None and not (f"day={days[0]}" <= name <= f"day={days[1]}"):
                continue
            with os.scandir(table_root / name) as it:
                out.extend(sorted(e.path for e in it if e.name.endswith(".parquet")))
        return out


@dataclass
class _Sql:
    conds: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)


def _where(f: Filters) -> _Sql:
    q = _Sql()

    def in_list(expr: str, values: Sequence[Any]) -> None:
        if values:
            q.conds.append(f"{expr} IN ({', '.join('?' * len(values))})")
            q.params.extend(values)

    in_list("probe_cc", f.cc)
    in_list("asn", f.asn)
    if f.target:
        marks = ", ".join("?" * len(f.target))
        q.conds.append(f"(service IN ({marks}) OR domain IN ({marks}))")
        q.params.extend([*f.target, *f.target])
    if f.since is not None:
        q.conds.append("measurement_start_time >= ?")
        q.params.append(f.since)
    if f.until is not None:
        q.conds.append("measurement_start_time < ?")
        q.params.append(f.until)
    return q


def _days(f: Filters) -> tuple[date, date] | None:
    if f.since is None and f.until is None:
        return None
    first = f.since.date() if f.since else date(1970, 1, 1)
    last = (f.until - timedelta(microseconds=1)).date() if f.until else date(9999, 12, 31)
    return first, last


_ASN_SQL: Final = (
    "CASE WHEN upper(probe_asn) LIKE 'AS%' THEN TRY_CAST(probe_asn[3:] AS BIGINT) "
    "ELSE TRY_CAST(probe_asn AS BIGINT) END"
)
_TARGET_SQL: Final = "coalesce(service, domain, input, test_name)"


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC (a DuckDB file would lock other processes out)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def _read(files: list[str], hive: bool) -> str:
    names = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    return f"read_parquet({names}, hive_partitioning = {'true' if hive else 'false'})"


def base_query(src: VerdictSource, f: Filters, by_resolver: bool) -> tuple[str, list[Any]] | None:
    """The SELECT (and its parameters) of the verdict rows ``f`` selects, with ``cc``,
    ``asn``, ``target`` and ``resolver`` columns added, or None when there are no files.
    Other queries of this package (an event's evidence) are written over it."""
    files = src.files(src.root, _days(f))
    if not files:
        return None
    w = _where(f)
    resolver = "''"
    join = ""
    if by_resolver and src.measurements is not None:
        mfiles = src.files(src.measurements, _days(f))
        if mfiles:
            join = (
                f" LEFT JOIN (SELECT measurement_uid AS muid, resolver_asn, probe_asn AS m_asn "
                f"FROM {_read(mfiles, src.hive)}) m ON m.muid = v.measurement_uid"
            )
            resolver = (
                "CASE WHEN m.resolver_asn IS NULL THEN '' "
                "WHEN m.resolver_asn = m.m_asn THEN 'isp' ELSE 'other' END"
            )
    sql = (
        f"SELECT * FROM (SELECT v.*, probe_cc AS cc, {_ASN_SQL} AS asn, "
        f"{_TARGET_SQL} AS target, {resolver} AS resolver "
        f"FROM {_read(files, src.hive)} v{join}) WHERE {' AND '.join(w.conds) or 'TRUE'}"
    )
    return sql, w.params


def _retrying(fn: Any, *args: Any) -> Any:
    """Run ``fn``; a file removed by a concurrent compaction is listed again (3 tries)."""
    for attempt in range(3):
        try:
            return fn(*args)
        except duckdb.IOException:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def time_range(src: VerdictSource, f: Filters) -> tuple[datetime, datetime] | None:
    """First and last ``measurement_start_time`` the filters select, or None."""

    def run() -> tuple[datetime, datetime] | None:
        base = base_query(src, f, False)
        if base is None:
            return None
        sql, params = base
        row = (
            connect()
            .execute(
                f"SELECT min(measurement_start_time), max(measurement_start_time) FROM ({sql})",
                params,
            )
            .fetchone()
        )
        if row is None or row[0] is None:
            return None
        return row[0], row[1]

    result: tuple[datetime, datetime] | None = _retrying(run)
    return result


def window(src: VerdictSource, f: Filters, step: timedelta) -> tuple[datetime, int] | None:
    """The grid's first bucket and bucket count for ``f``: from ``since`` (or the first
    verdict's bucket) to ``until`` (or through the last verdict's bucket); None when a
    bound is missing and nothing is selected."""
    span = time_range(src, f) if f.since is None or f.until is None else None
    if span is None and (f.since is None or f.until is None):
        return None
    lo = f.since if f.since is not None else span[0]  # type: ignore[index]
    start = gridmod.floor_time(lo, step)
    last = f.until - step if f.until is not None else span[1]  # type: ignore[index]
    n = -(-(last - start + step) // step) if f.until is not None else (last - start) // step + 1
    return start, max(1, int(n))


def _counts_sql(step: timedelta, start: datetime, keys: Sequence[str], probes: bool) -> str:
    """Counts per key and bucket. ``count_if`` is a HUGEINT in DuckDB, which reaches numpy
    as Python objects: cast to BIGINT (3× faster grids)."""
    step_us = step // timedelta(microseconds=1)
    start_us = (start - EPOCH) // timedelta(microseconds=1)
    key_list = ", ".join(keys)
    return f"""
        SELECT {key_list},
               CAST((epoch_us(measurement_start_time) - {start_us}) // {step_us} AS BIGINT) AS b,
               CAST(count_if(state = 'ok') AS BIGINT) AS ok,
               CAST(count_if(state = 'blocked' AND coalesce(method, '') NOT IN
                             ('nin.isolated', 'shutdown')) AS BIGINT) AS blocked,
               CAST(count_if(coalesce(method, '') = 'nin.isolated') AS BIGINT) AS isolated,
               CAST(count_if(coalesce(method, '') = 'shutdown') AS BIGINT) AS shutdown,
               CAST(count_if(state = 'down') AS BIGINT) AS down,
               CAST(count_if(state = 'inconclusive') AS BIGINT) AS inconclusive
               {", count(DISTINCT report_id) AS probes" if probes else ""}
        FROM base GROUP BY ALL
    """


def _grid(
    src: VerdictSource,
    f: Filters,
    step: timedelta,
    keys: Sequence[str],
    by_resolver: bool,
    span: tuple[datetime, int] | None,
    probes: bool,
) -> Grid:
    span = span or window(src, f, step)
    if span is None:
        return Grid(f.since or EPOCH, step, 0, tuple(keys), [])
    start, n_buckets = span

    def run() -> pa.Table:
        base = base_query(src, f, by_resolver)
        if base is None:
            return None
        sql, params = base
        con = connect()
        query = f"WITH base AS ({sql}) {_counts_sql(step, start, keys, probes)}"
        return con.sql(query, params=params).to_arrow_table()

    table: pa.Table | None = _retrying(run)
    if table is None or table.num_rows == 0:
        return Grid(start, step, n_buckets, tuple(keys), [])
    con = connect()
    con.register("agg", table)
    key_list = ", ".join(keys)
    ranked = con.sql(
        f"SELECT dense_rank() OVER (ORDER BY {key_list}) - 1 AS sid, * FROM agg"
    ).to_arrow_table()
    key_rows = con.sql(f"SELECT DISTINCT {key_list} FROM agg ORDER BY {key_list}").fetchall()
    names = (*STATE_COUNTS, "probes") if probes else STATE_COUNTS
    values = {name: ranked.column(name).to_numpy() for name in names}
    return gridmod.build(
        start,
        step,
        n_buckets,
        keys,
        [tuple(r) for r in key_rows],
        ranked.column("sid").to_numpy(),
        ranked.column("b").to_numpy(),
        values,
    )


def target_grid(
    src: VerdictSource,
    f: Filters,
    step: timedelta = timedelta(hours=1),
    *,
    by_resolver: bool = False,
    span: tuple[datetime, int] | None = None,
    probes: bool = True,
) -> Grid:
    """Counts per (cc, asn, target, resolver) and bucket: the detector's input.
    ``probes=False`` leaves out the distinct-probe count, which the detector does not
    use and which costs most of the scan (the events' own probe counts come from their
    evidence query)."""
    return _grid(src, f, step, TARGET_KEYS, by_resolver, span, probes)


def layer_grid(
    src: VerdictSource,
    f: Filters,
    step: timedelta = timedelta(hours=1),
    *,
    span: tuple[datetime, int] | None = None,
) -> Grid:
    """Counts per (cc, asn, target, layer) and bucket (``layer`` is the verdict's: null
    for ``ok``): which layer a block sits on, hour by hour."""
    return _grid(src, f, step, LAYER_KEYS, False, span, True)


def rollup(g: Grid, keys: Sequence[str], names: Sequence[str] | None = None) -> Grid:
    """The counts ``names`` (all by default) summed over every series sharing ``keys``
    (e.g. ``("cc", "asn")``). ``probes`` is not additive and is left out."""
    pos = [g.key_names.index(k) for k in keys]
    index: dict[tuple[Any, ...], int] = {}
    sid = np.empty(g.n_series, dtype=np.int64)
    for i, k in enumerate(g.keys):
        sid[i] = index.setdefault(tuple(k[p] for p in pos), len(index))
    out: dict[str, Any] = {}
    for name in names or [n for n in g.counts if n != "probes"]:
        acc = np.zeros((len(index), g.n_buckets))
        np.add.at(acc, sid, g.counts[name])
        out[name] = acc
    return Grid(g.start, g.step, g.n_buckets, tuple(keys), list(index), out)


def volume(g: Grid, keys: Sequence[str]) -> Grid:
    """Verdicts per bucket, whatever their state, summed over every series sharing
    ``keys`` (``("cc",)`` or ``("cc", "asn")``), as the count ``n``: the volume series
    whose silence reads as a shutdown or an outage."""
    r = rollup(g, keys, [n for n in STATE_COUNTS if n in g.counts])
    total = sum(r.counts.values(), np.zeros((r.n_series, r.n_buckets)))
    return Grid(r.start, r.step, r.n_buckets, r.key_names, r.keys, {"n": total})
