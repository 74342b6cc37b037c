"""The questions the API asks of the tables, as SQL run by ``reader.TableReader``.

Parameter names and count definitions follow OONI's API (``ooni-backend.md`` §9.2, §9.4)
so OONI users and tools can switch: ``anomaly_count`` = anomaly and not confirmed and not
failure; ``confirmed_count`` = confirmed and not failure; ``failure_count`` = failure;
``ok_count`` = none of the three. didban adds a ``service`` filter and axis, the verdict
``method``/``state``/``layer`` axes, and ``down_count`` (from the verdict state).

An aggregation or a count whose filters and axes are columns of the daily rollups, over
whole days, is answered from them (``store.rollups``: the same numbers, tested); a
time-ordered page over a range of days is read from its starting end a few days at a
time. The explorer's per-day questions are in ``store.daily``.

Values arrive here already validated by the API; every value reaches DuckDB as a bound
parameter, never spliced into SQL (only whitelisted column names are).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal, get_args

import orjson
import pyarrow as pa

from didban.data import catalog
from didban.store import rollups
from didban.store.reader import TableReader
from didban.store.schema import TABLES

Axis = Literal[
    "measurement_start_day",
    "probe_cc",
    "probe_asn",
    "test_name",
    "domain",
    "input",
    "category_code",
    "blocking_type",
    "service",
    "method",
    "layer",
    "state",
]
TimeGrain = Literal["hour", "day", "week", "month", "year", "auto"]
OrderBy = Literal["measurement_start_time", "input", "probe_cc", "probe_asn", "test_name"]
Order = Literal["asc", "desc"]
AXES: Final[tuple[Axis, ...]] = get_args(Axis)
TIME_GRAINS: Final[tuple[TimeGrain, ...]] = get_args(TimeGrain)
ORDER_BY: Final[tuple[OrderBy, ...]] = get_args(OrderBy)

COUNTS_SQL: Final = rollups.COUNTS_SQL


@dataclass
class Filters:
    probe_cc: list[str] = field(default_factory=list)
    probe_asn: list[int] = field(default_factory=list)
    test_name: list[str] = field(default_factory=list)
    domain: list[str] = field(default_factory=list)
    service: list[str] = field(default_factory=list)
    input: str | None = None
    report_id: str | None = None
    category_code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    anomaly: bool | None = None
    confirmed: bool | None = None
    failure: bool | None = None

    def days(self) -> tuple[date, date] | None:
        """The inclusive day range the filters allow, for file pruning (None: unbounded)."""
        if self.since is None or self.until is None:
            return None
        last = self.until.date()
        if self.until.time() == time.min:
            last = days_before(last, 1)
        return self.since.date(), max(last, self.since.date())

    def where(self) -> tuple[str, list[Any]]:
        """SQL conditions (ANDed) over the measurements table, with their parameters."""
        conds: list[str] = []
        params: list[Any] = []

        def in_list(col: str, values: list[Any]) -> None:
            if values:
                conds.append(f"{col} IN ({', '.join('?' * len(values))})")
                params.extend(values)

        in_list("probe_cc", self.probe_cc)
        in_list("probe_asn", self.probe_asn)
        in_list("test_name", self.test_name)
        in_list("service", self.service)
        if self.report_id:
            conds.append("report_id = ?")
            params.append(self.report_id)
        if self.input:  # as in OONI, input overrides domain and category_code
            conds.append("input = ?")
            params.append(self.input)
        else:
            in_list("domain", self.domain)
            if self.category_code:
                conds.append("category_code = ?")
                params.append(self.category_code)
        # ``day`` is the date of measurement_start_time: a bound at midnight needs only the
        # partition column (whole directories pruned, no timestamp column read).
        if self.since is not None:
            conds.append("day >= CAST(? AS DATE)")
            params.append(self.since.date())
            if self.since.time() != time.min:
                conds.append("measurement_start_time >= ?")
                params.append(self.since)
        if self.until is not None:
            if self.until.time() == time.min:
                conds.append("day < CAST(? AS DATE)")
                params.append(self.until.date())
            else:
                conds.append("day <= CAST(? AS DATE) AND measurement_start_time < ?")
                params.extend([self.until.date(), self.until])
        for col in ("anomaly", "confirmed", "failure"):
            value = getattr(self, col)
            if value is not None:
                conds.append(f"{col} = ?")
                params.append(value)
        return (" AND ".join(conds) or "TRUE"), params


def iso_time(t: Any) -> Any:
    """A datetime as OONI writes times (``2026-11-21T09:30:12Z``); other values as they are."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(t, datetime) else t


LIST_COLUMNS: Final = (
    "measurement_uid, report_id, probe_cc, probe_asn, test_name, measurement_start_time, "
    "input, domain, service, category_code, anomaly, confirmed, failure, state, layer, "
    "method, rules_version"
)


def list_measurements(
    reader: TableReader,
    filters: Filters,
    order_by: OrderBy,
    order: Order,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of measurements and the total number matching.

    In time order over a range of days the page is read a few days at a time from the
    end it starts at (a day, then two, four...: days partition the start time, so the
    pages join in order), and the total comes from the daily rollups when they hold every
    filter — at 100 M rows the difference between reading the newest day and sorting a
    month."""
    where, params = filters.where()
    direction = "ASC" if order == "asc" else "DESC"
    order_sql = f"ORDER BY {order_by} {direction}, measurement_uid {direction}"
    select = f"SELECT {LIST_COLUMNS} FROM {{measurements}} WHERE {where}"
    days = filters.days()
    if order_by == "measurement_start_time" and days is not None:
        rows = _by_days(reader, select, order_sql, params, days, order, offset + limit)
        rows = rows[offset : offset + limit]
    else:
        rows = reader.rows(f"{select} {order_sql} LIMIT ? OFFSET ?", [*params, limit, offset], days)
    total = count(reader, filters)
    for r in rows:
        r["probe_asn"] = f"AS{r['probe_asn']}"
        r["measurement_start_time"] = iso_time(r["measurement_start_time"])
        r["scores"] = {"blocking_type": r["method"], "state": r["state"]}
    return rows, total


def _by_days(
    reader: TableReader,
    select: str,
    order_sql: str,
    params: list[Any],
    days: tuple[date, date],
    order: Order,
    want: int,
) -> list[dict[str, Any]]:
    """The first ``want`` rows of ``select`` in time order, read by growing day chunks."""
    first, last = days
    out: list[dict[str, Any]] = []
    span = 1
    lo, hi = first, last
    while lo <= hi and len(out) < want:
        if order == "desc":
            chunk = (max(lo, hi - timedelta(days=span - 1)), hi)
            hi = chunk[0] - timedelta(days=1)
        else:
            chunk = (lo, min(hi, lo + timedelta(days=span - 1)))
            lo = chunk[1] + timedelta(days=1)
        out += reader.rows(
            f"{select} AND day BETWEEN CAST(? AS DATE) AND CAST(? AS DATE) {order_sql} LIMIT ?",
            [*params, *chunk, want - len(out)],
            chunk,
        )
        span *= 2
    return out


def count(reader: TableReader, filters: Filters) -> int:
    """How many measurements match ``filters`` (from the rollups when they hold them)."""
    where, params = filters.where()
    days = filters.days()
    rollup = _rollup_for(filters, [], "day")
    if rollup is not None and days is not None:
        source = rollups.relation(reader, rollup, *days)[0]
        sql = f"SELECT coalesce(sum(measurement_count), 0) AS n FROM {source} WHERE {where}"
    else:
        sql = f"SELECT count(*) AS n FROM {{measurements}} WHERE {where}"
    return int(reader.rows(sql, params, days)[0]["n"])


def verdict_for(reader: TableReader, uid: str, day: str) -> dict[str, Any] | None:
    rows = reader.rows(
        "SELECT * EXCLUDE (day) FROM {verdicts} WHERE day = CAST(? AS DATE) "
        "AND measurement_uid = ?",
        [day, uid],
        (date.fromisoformat(day), date.fromisoformat(day)),
    )
    if not rows:
        return None
    v = rows[0]
    v["measurement_start_time"] = iso_time(v["measurement_start_time"])
    v["blocking"] = orjson.loads(v["blocking"]) if v["blocking"] else None
    v["evidence"] = orjson.loads(v["evidence"]) if v["evidence"] else []
    return v


def auto_grain(since: date, until: date) -> TimeGrain:
    span = (until - since).days
    if span <= 7:
        return "hour"
    if span <= 180:
        return "day"
    if span <= 730:
        return "week"
    return "month"


def _bucket(grain: TimeGrain) -> str:
    if grain == "hour":
        return "strftime(date_trunc('hour', measurement_start_time), '%Y-%m-%dT%H:%M:%SZ')"
    if grain == "day":
        return "strftime(day, '%Y-%m-%d')"
    return f"strftime(date_trunc('{grain}', day), '%Y-%m-%d')"


def axis_columns(axes: Sequence[str], bucket: str) -> list[str]:
    """The SELECT columns of the aggregation's axes, named as OONI's API names them;
    ``bucket`` is the SQL dialect's expression of the time bucket (DuckDB's here, Spark's
    in ``didban.scale``)."""
    columns: list[str] = []
    for axis in axes:
        if axis == "measurement_start_day":
            columns.append(f"{bucket} AS measurement_start_day")
        elif axis == "blocking_type":
            columns.append("method AS blocking_type")
        else:
            columns.append(axis)
    return columns


_ROLLUP_AXES: Final = frozenset(
    ("measurement_start_day", "probe_cc", "probe_asn", "test_name", "blocking_type", "service",
     "method", "layer", "state")
)  # fmt: skip


def _rollup_for(filters: Filters, axes: list[Axis], grain: TimeGrain) -> rollups.Rollup | None:
    """The rollup that answers this aggregation exactly, or None (then the table does):
    whole days, and only the rollups' columns as filters and axes."""
    if filters.domain or filters.input or filters.report_id or filters.category_code:
        return None
    if any(v is not None for v in (filters.anomaly, filters.confirmed, filters.failure)):
        return None
    if filters.since is None or filters.until is None:
        return None
    if filters.since.time() != time.min or filters.until.time() != time.min:
        return None
    if any(a not in _ROLLUP_AXES for a in axes) or (
        grain == "hour" and "measurement_start_day" in axes
    ):
        return None
    return rollups.DAILY_ASN if filters.probe_asn or "probe_asn" in axes else rollups.DAILY_CC


def aggregate(
    reader: TableReader,
    filters: Filters,
    axis_x: Axis | None,
    axis_y: Axis | None,
    grain: TimeGrain,
    use_rollups: bool = True,
) -> list[dict[str, Any]]:
    """OONI ``/aggregation`` rows: one per (axis_x, axis_y) cell with the five counts.

    Answered from a daily rollup when one holds every filter and axis (the same numbers,
    tested), else from the measurements table."""
    where, params = filters.where()
    names = [a for a in (axis_x, axis_y) if a]
    dims = axis_columns(names, _bucket(grain))
    rollup = _rollup_for(filters, names, grain) if use_rollups else None
    source, counts = "{measurements}", COUNTS_SQL
    days = filters.days()
    if rollup is not None and days is not None:
        source = rollups.relation(reader, rollup, *days)[0]
        counts = rollups.SUMS_SQL
    select = ", ".join([*dims, counts])
    # by position: the blocking_type axis is the ``method`` column named like another column
    positions = ", ".join(str(i) for i in range(1, len(names) + 1))
    group = f"GROUP BY {positions} ORDER BY {positions}" if names else ""
    return reader.rows(f"SELECT {select} FROM {source} WHERE {where} {group}", params, days)


_STATE_RANK: Final = {"blocked": 0, "down": 1, "ok": 2, "inconclusive": 3}


def service_states(
    reader: TableReader, cc: str, since: datetime, until: datetime, probe_asn: list[int]
) -> list[dict[str, Any]]:
    """The current state of every catalog service in ``cc`` (see ``docs/api.md``).

    For each service, the latest measurement of each of its inputs in the window is
    taken (preferring one with a definite state over an inconclusive or unclassified
    one); the service is ``blocked`` if any input's latest is blocked, else ``down``,
    else ``ok``, else ``inconclusive``; with no measurement at all it is ``no_data``
    (never ``ok``). The witness is the latest measurement carrying that state.
    """
    filters = Filters(probe_cc=[cc], probe_asn=probe_asn, since=since, until=until)
    where, params = filters.where()
    # one hash aggregation per (service, input): the row with the largest (definite state,
    # time, uid) — what a window ranking would pick, without sorting the window
    latest = reader.rows(
        "SELECT service, input, unnest(arg_max("
        "struct_pack(measurement_uid, measurement_start_time, probe_asn, "
        "state := coalesce(state, 'inconclusive'), method, layer, rules_version), "
        "struct_pack(definite := coalesce(state IN ('ok', 'blocked', 'down'), false), "
        "t := measurement_start_time, u := measurement_uid))) "
        f"FROM {{measurements}} WHERE {where} AND service IS NOT NULL GROUP BY service, input",
        params,
        filters.days(),
    )
    counts = reader.rows(
        "SELECT service, coalesce(state, 'none') AS state, count(*) AS n "
        f"FROM {{measurements}} WHERE {where} AND service IS NOT NULL GROUP BY ALL",
        params,
        filters.days(),
    )
    by_service: dict[str, list[dict[str, Any]]] = {}
    for r in latest:
        by_service.setdefault(r["service"], []).append(r)
    tallies: dict[str, dict[str, int]] = {}
    for c in counts:
        t = tallies.setdefault(c["service"], {})
        key = c["state"] if c["state"] != "none" else "unclassified"
        t[key] = t.get(key, 0) + int(c["n"])
    out: list[dict[str, Any]] = []
    for svc in catalog.services():
        items = by_service.get(svc.id, [])
        entry: dict[str, Any] = {
            "service": svc.id,
            "name": svc.name,
            "category_code": svc.category,
            "state": "no_data",
            "method": None,
            "layer": None,
            "witness": None,
            "counts": tallies.get(svc.id, {}),
            "inputs": [],
        }
        if items:
            best = min(
                items,
                key=lambda r: (
                    _STATE_RANK.get(r["state"], 9),
                    -r["measurement_start_time"].timestamp(),
                ),
            )
            entry.update(
                state=best["state"],
                method=best["method"],
                layer=best["layer"],
                witness={
                    "measurement_uid": best["measurement_uid"],
                    "measurement_start_time": iso_time(best["measurement_start_time"]),
                    "input": best["input"],
                    "probe_asn": f"AS{best['probe_asn']}",
                    "rules_version": best["rules_version"],
                },
            )
            entry["inputs"] = [
                {
                    "input": r["input"],
                    "state": r["state"],
                    "method": r["method"],
                    "measurement_uid": r["measurement_uid"],
                    "measurement_start_time": iso_time(r["measurement_start_time"]),
                }
                for r in sorted(items, key=lambda r: r["input"] or "")
            ]
        out.append(entry)
    return out


def export_batches(
    reader: TableReader, table: str, since: date, until: date, probe_cc: list[str]
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Arrow batches of ``table`` for days ``since`` ≤ day ≤ ``until`` (and countries)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    schema = TABLES[table].append(pa.field("day", pa.date32()))
    cond = "day BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)"
    params: list[Any] = [since, until]
    if probe_cc:
        cond += f" AND probe_cc IN ({', '.join('?' * len(probe_cc))})"
        params.extend(probe_cc)
    cols = ", ".join(f.name for f in schema)
    sql = f"SELECT {cols} FROM {{{table}}} WHERE {cond} ORDER BY day, measurement_start_time"
    return schema, reader.batches(sql, params, (since, until))


def days_before(day: date, days: int) -> date:
    """``day`` minus ``days``, held at the calendar's first day (a window can start there)."""
    return max(day, date.min + timedelta(days=days)) - timedelta(days=days)


def default_window(days: int = 30) -> tuple[date, date]:
    """OONI-style default: ``until`` = tomorrow (exclusive end), ``since`` = ``days`` before."""
    until = datetime.now(UTC).date() + timedelta(days=1)
    return until - timedelta(days=days), until
