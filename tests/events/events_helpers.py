"""Verdict tables for the events tests: rows written in the store's on-disk layout."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from didban.store.schema import TABLES

T0 = datetime(2026, 3, 1)
_SERIAL = itertools.count()


def verdict(
    t: datetime,
    state: str,
    *,
    cc: str = "IR",
    asn: int = 44244,
    service: str | None = "instagram",
    method: str | None = None,
    layer: str | None = None,
    report: str = "r1",
    uid: str | None = None,
) -> dict[str, Any]:
    if state == "blocked" and method is None:
        method, layer = "tls.sni.reset", "tls"
    if uid is None:
        uid = f"{t:%Y%m%d%H%M%S}.{next(_SERIAL):06d}_{cc}_webconnectivity_{asn}"
    return {
        "measurement_uid": uid,
        "report_id": report,
        "input": f"https://www.{service}.com/" if service else None,
        "test_name": "web_connectivity",
        "probe_cc": cc,
        "probe_asn": f"AS{asn}",
        "measurement_start_time": t,
        "state": state,
        "rule_id": "test.rule",
        "rules_version": "test",
        "confidence": 0.9,
        "layer": layer,
        "method": method,
        "fingerprint_id": None,
        "confirmed": False,
        "service": service,
        "domain": f"www.{service}.com" if service else None,
        "blocking": "false",
        "accessible": state == "ok",
        "evidence": "[]",
        "reason": "",
    }


def write_store(
    data_dir: Path, rows: Iterable[dict[str, Any]], table: str = "verdicts", name: str = "part-0"
) -> Path:
    """Write rows as ``data_dir/tables/<table>/day=…/<name>.parquet`` (the store's layout)."""
    schema = TABLES[table]
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_day[f"{r['measurement_start_time']:%Y-%m-%d}"].append(r)
    for day, day_rows in by_day.items():
        d = data_dir / "tables" / table / f"day={day}"
        d.mkdir(parents=True, exist_ok=True)
        full = [{f.name: r.get(f.name) for f in schema} for r in day_rows]
        pq.write_table(pa.Table.from_pylist(full, schema=schema), d / f"{name}.parquet")
    return data_dir


def hourly(
    hours: int,
    per_hour: int,
    blocked_from: int | None = None,
    blocked_until: int | None = None,
    start: datetime = T0,
    blocked_when: Callable[[int], bool] | None = None,
    **kw: Any,
) -> list[dict[str, Any]]:
    """``per_hour`` verdicts an hour for ``hours`` hours, blocked in hours [from, until)
    (or in the hours where ``blocked_when(hour)`` holds)."""
    out = []
    for h in range(hours):
        if blocked_when is not None:
            blocked = blocked_when(h)
        else:
            blocked = blocked_from is not None and blocked_from <= h < (blocked_until or 10**9)
        for i in range(per_hour):
            t = start + timedelta(hours=h, minutes=(60 * i) // per_hour)
            out.append(verdict(t, "blocked" if blocked else "ok", report=f"r{h}-{i % 3}", **kw))
    return out
