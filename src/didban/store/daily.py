"""The explorer's questions, answered per day from the daily rollups (``store.rollups``):
the MAT grid of a country (service × day), its calendar of volume, its networks, the
countries with blocks, a service's days per country, since when a service is blocked,
and one witness per block from the measurements table. A day's state is the larger of
blocked and ok among its measurements (blocked on a tie), else down, else inconclusive —
a share, as OONI's MAT grid colours its cells.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from didban.store import rollups
from didban.store.queries import iso_time
from didban.store.reader import TableReader


def _cell_state(c: dict[str, Any]) -> str:
    """A day's state for one service: the larger of blocked and ok (blocked on a tie),
    else down, else inconclusive — a share, as OONI's MAT grid colours cells."""
    if c["blocked"] and c["blocked"] >= c["ok"]:
        return "blocked"
    if c["ok"]:
        return "ok"
    return "down" if c["down"] else "inconclusive"


_BY_STATE: Final = """
    sum(n) AS measurements,
    coalesce(sum(n) FILTER (WHERE state = 'blocked'), 0) AS blocked,
    coalesce(sum(n) FILTER (WHERE state = 'ok'), 0) AS ok,
    coalesce(sum(n) FILTER (WHERE state = 'down'), 0) AS down,
    coalesce(sum(n) FILTER (WHERE state IS NULL OR state = 'inconclusive'), 0) AS inconclusive,
    arg_max(method, n) FILTER (WHERE state = 'blocked' AND method IS NOT NULL) AS method
"""


def _daily(
    reader: TableReader,
    keys: str,
    first: date,
    last: date,
    probe_cc: str | None = None,
    probe_asn: list[int] | None = None,
    service: str | None = None,
) -> list[dict[str, Any]]:
    """Counts per state and the main blocking method per ``keys`` over days
    ``first``..``last`` (inclusive), from the daily rollups."""
    rollup = rollups.DAILY_ASN if probe_asn or "probe_asn" in keys else rollups.DAILY_CC
    rel = rollups.relation(reader, rollup, first, last)[0]
    conds = ["day BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)"]
    params: list[Any] = [first, last]
    if probe_cc:
        conds.append("probe_cc = ?")
        params.append(probe_cc)
    if probe_asn:
        conds.append(f"probe_asn IN ({', '.join('?' * len(probe_asn))})")
        params.extend(probe_asn)
    if service:
        conds.append("service = ?")
        params.append(service)
    sql = (
        f"WITH x AS (SELECT {keys}, state, method, sum(measurement_count) AS n FROM {rel} "
        f"WHERE {' AND '.join(conds)} GROUP BY ALL) "
        f"SELECT {keys}, {_BY_STATE} FROM x GROUP BY ALL ORDER BY ALL"
    )
    out = reader.rows(sql, params, (first, last))
    for row in out:
        row["state"] = _cell_state(row)
    return out


def grid(
    reader: TableReader, cc: str, first: date, last: date, probe_asn: list[int]
) -> list[dict[str, Any]]:
    """The MAT grid of ``cc``: one row per (service, day) that has measurements, with the
    counts per state, the cell's state and the main blocking method."""
    return _daily(reader, "coalesce(service, '') AS service, day", first, last, cc, probe_asn)


def calendar(
    reader: TableReader, cc: str, first: date, last: date, probe_asn: list[int]
) -> list[dict[str, Any]]:
    """Measurements per day in ``cc`` (the calendar of volume), with the states."""
    return _daily(reader, "day", first, last, cc, probe_asn)


def networks(reader: TableReader, cc: str, first: date, last: date) -> list[dict[str, Any]]:
    """Per ASN of ``cc``: measurements, states and the main blocking method."""
    rows = _daily(reader, "probe_asn", first, last, cc)
    return sorted(rows, key=lambda r: (-r["measurements"], r["probe_asn"]))


def countries(reader: TableReader, first: date, last: date) -> list[dict[str, Any]]:
    """Per country: measurements, and the services whose measurements were mostly
    blocked in the window (with their main method)."""
    per_service = _daily(reader, "probe_cc, coalesce(service, '') AS service", first, last)
    out: dict[str, dict[str, Any]] = {}
    for r in per_service:
        c = out.setdefault(
            r["probe_cc"], {"probe_cc": r["probe_cc"], "measurements": 0, "blocked": []}
        )
        c["measurements"] += int(r["measurements"])
        if r["state"] == "blocked":  # service "": inputs outside the catalog
            c["blocked"].append({"service": r["service"], "method": r["method"]})
    return sorted(
        out.values(), key=lambda c: (-len(c["blocked"]), -c["measurements"], c["probe_cc"])
    )


def service_days(
    reader: TableReader, service: str, first: date, last: date
) -> list[dict[str, Any]]:
    """One service per (country, day): counts, state and method (its timeline)."""
    return _daily(reader, "probe_cc, day", first, last, service=service)


def blocked_since(
    reader: TableReader,
    cc: str,
    services: list[str],
    first: date,
    last: date,
    probe_asn: list[int],
) -> dict[str, date]:
    """For each of ``services`` whose latest day (from ``first`` to ``last``) was mostly
    blocked, the first day of that run of blocked days (a day is blocked as in ``grid``;
    days without measurements do not break a run)."""
    if not services:
        return {}
    rollup = rollups.DAILY_ASN if probe_asn else rollups.DAILY_CC
    rel = rollups.relation(reader, rollup, first, last)[0]
    conds = [
        "day BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)",
        "probe_cc = ?",
        f"service IN ({', '.join('?' * len(services))})",
    ]
    params: list[Any] = [first, last, cc, *services]
    if probe_asn:
        conds.append(f"probe_asn IN ({', '.join('?' * len(probe_asn))})")
        params.extend(probe_asn)
    rows = reader.rows(
        "WITH d AS (SELECT service, day, "
        "coalesce(sum(measurement_count) FILTER (WHERE state = 'blocked'), 0) AS b, "
        "coalesce(sum(measurement_count) FILTER (WHERE state = 'ok'), 0) AS o "
        f"FROM {rel} WHERE {' AND '.join(conds)} GROUP BY service, day), "
        "s AS (SELECT service, day, b > 0 AND b >= o AS blocked FROM d), "
        "e AS (SELECT service, max(day) FILTER (WHERE NOT blocked) AS ended, max(day) AS latest "
        "FROM s GROUP BY service) "
        "SELECT s.service, min(s.day) AS since FROM s JOIN e USING (service) "
        "WHERE s.blocked AND (e.ended IS NULL OR s.day > e.ended) AND e.latest > "
        "coalesce(e.ended, DATE '0001-01-01') GROUP BY s.service",
        params,
        (first, last),
    )
    return {r["service"]: r["since"] for r in rows}


def latest_blocked(
    reader: TableReader, cc: str, services: dict[str, date], probe_asn: list[int]
) -> dict[str, dict[str, Any]]:
    """For each service, its latest blocked measurement on the given day (a witness)."""
    if not services:
        return {}
    first, last = min(services.values()), max(services.values())
    names = list(services)
    conds = [
        "probe_cc = ?",
        "state = 'blocked'",
        f"service IN ({', '.join('?' * len(names))})",
        "day BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)",
    ]
    params: list[Any] = [cc, *names, first, last]
    if probe_asn:
        conds.append(f"probe_asn IN ({', '.join('?' * len(probe_asn))})")
        params.extend(probe_asn)
    rows = reader.rows(
        "SELECT service, day, measurement_uid, measurement_start_time, probe_asn, input, method "
        f"FROM {{measurements}} WHERE {' AND '.join(conds)} "
        "QUALIFY row_number() OVER (PARTITION BY service, day "
        "ORDER BY measurement_start_time DESC, measurement_uid DESC) = 1",
        params,
        (first, last),
    )
    out = {}
    for r in rows:
        if services.get(r["service"]) == r["day"]:
            r["measurement_start_time"] = iso_time(r["measurement_start_time"])
            r["probe_asn"] = f"AS{r['probe_asn']}"
            out[r["service"]] = r
    return out
