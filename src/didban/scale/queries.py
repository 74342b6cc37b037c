"""The API's aggregation and ``didban.events``' series, computed by Spark over the tables.

``aggregate`` answers what ``store.queries.aggregate`` answers (OONI's ``/aggregation``:
one row per (axis_x, axis_y) cell with the same counts, whose SQL — ``COUNTS_SQL`` — is
the store's own text, which Spark SQL runs unchanged); ``series`` builds the grid
``events.series.target_grid`` (or ``layer_grid``) builds, from the same count
definitions. Only the bucket expressions are Spark's spelling of DuckDB's.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from didban.events import grid as gridmod
from didban.events.grid import Grid
from didban.events.series import EPOCH, LAYER_KEYS, STATE_COUNTS, TARGET_KEYS
from didban.store.queries import AXES, COUNTS_SQL, axis_columns

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_GRAINS: Final = ("hour", "day", "week", "month", "year")
_ASN: Final = (
    "CASE WHEN upper(probe_asn) LIKE 'AS%' THEN try_cast(substring(probe_asn, 3) AS BIGINT) "
    "ELSE try_cast(probe_asn AS BIGINT) END"
)


def _view(spark: SparkSession, tables: Path, table: str) -> str:
    name = f"didban_{table}"
    spark.read.parquet(str(tables / table)).createOrReplaceTempView(name)
    return name


def _bucket(grain: str) -> str:
    if grain == "hour":
        return (
            "date_format(date_trunc('hour', measurement_start_time), \"yyyy-MM-dd'T'HH:mm:ss'Z'\")"
        )
    if grain == "day":
        return "date_format(day, 'yyyy-MM-dd')"
    return f"date_format(date_trunc('{grain}', day), 'yyyy-MM-dd')"


def aggregate(
    spark: SparkSession,
    tables: Path,
    axis_x: str | None,
    axis_y: str | None,
    grain: str = "day",
    probe_cc: list[str] | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[dict[str, Any]]:
    """``store.queries.aggregate``'s rows for these axes, the countries and the day range
    (``since`` inclusive, ``until`` exclusive)."""
    for axis in (axis_x, axis_y):
        if axis is not None and axis not in AXES:
            raise ValueError(f"unknown axis {axis!r}; one of {', '.join(AXES)}")
    if grain not in _GRAINS:
        raise ValueError(f"unknown time grain {grain!r}; one of {', '.join(_GRAINS)}")
    view = _view(spark, tables, "measurements")
    names = [a for a in (axis_x, axis_y) if a is not None]
    dims = axis_columns(names, _bucket(grain))
    conds: list[str] = ["TRUE"]
    params: list[Any] = []
    if probe_cc:
        conds.append(f"probe_cc IN ({', '.join('?' * len(probe_cc))})")
        params.extend(probe_cc)
    if since is not None:
        conds.append("day >= ?")
        params.append(since)
    if until is not None:
        conds.append("day < ?")
        params.append(until)
    positions = [str(i) for i in range(1, len(names) + 1)]
    order = ", ".join(f"{p} NULLS LAST" for p in positions)  # DuckDB's default
    group = f"GROUP BY {', '.join(positions)} ORDER BY {order}" if names else ""
    sql = f"SELECT {', '.join([*dims, COUNTS_SQL])} FROM {view} WHERE {' AND '.join(conds)} {group}"
    return [r.asDict() for r in spark.sql(sql, args=params).collect()]


def series(
    spark: SparkSession,
    tables: Path,
    step: timedelta = timedelta(hours=1),
    since: datetime | None = None,
    until: datetime | None = None,
    cc: list[str] | None = None,
    by_layer: bool = False,
) -> Grid:
    """``events.series.target_grid`` (``layer_grid`` with ``by_layer``) of the verdicts:
    counts per (cc, asn, target, resolver | layer) and bucket, and distinct probes."""
    view = _view(spark, tables, "verdicts")
    conds: list[str] = ["TRUE"]
    params: list[Any] = []
    if cc:
        conds.append(f"probe_cc IN ({', '.join('?' * len(cc))})")
        params.extend(cc)
    if since is not None:
        conds.append("measurement_start_time >= ?")
        params.append(since)
    if until is not None:
        conds.append("measurement_start_time < ?")
        params.append(until)
    where = " AND ".join(conds)
    row = spark.sql(
        f"SELECT min(measurement_start_time), max(measurement_start_time) FROM {view} "
        f"WHERE {where}",
        args=params,
    ).first()
    keys = LAYER_KEYS if by_layer else TARGET_KEYS
    if row is not None and row[0] is not None:
        first, latest = row[0], row[1]
    elif since is not None and until is not None:
        first, latest = since, until - step
    else:
        return Grid(since or EPOCH, step, 0, keys, [])
    start = gridmod.floor_time(since if since is not None else first, step)
    last = until - step if until is not None else latest
    n = -(-(last - start + step) // step) if until is not None else (last - start) // step + 1
    n_buckets = max(1, int(n))
    step_us = step // timedelta(microseconds=1)
    start_us = (start - EPOCH) // timedelta(microseconds=1)
    fourth = "layer" if by_layer else "'' AS resolver"
    sql = f"""
        SELECT probe_cc AS cc, {_ASN} AS asn,
               coalesce(service, domain, input, test_name) AS target, {fourth},
               (unix_micros(CAST(measurement_start_time AS TIMESTAMP)) - {start_us})
                 div {step_us} AS b,
               count_if(state = 'ok') AS ok,
               count_if(state = 'blocked' AND coalesce(method, '') NOT IN
                        ('nin.isolated', 'shutdown')) AS blocked,
               count_if(coalesce(method, '') = 'nin.isolated') AS isolated,
               count_if(coalesce(method, '') = 'shutdown') AS shutdown,
               count_if(state = 'down') AS down,
               count_if(state = 'inconclusive') AS inconclusive,
               count(DISTINCT report_id) AS probes
        FROM {view} WHERE {where}
        GROUP BY 1, 2, 3, 4, 5
    """
    got = spark.sql(sql, args=params).collect()
    names = (*STATE_COUNTS, "probes")
    return gridmod.build_keyed(
        start,
        step,
        n_buckets,
        keys,
        [tuple(r[k] for k in keys) for r in got],
        [int(r["b"]) for r in got],
        {name: [float(r[name]) for r in got] for name in names},
    )
