"""Verdict tables for the events tests: rows written in the store's on-disk layout."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from didban.store.schema import VERDICTS

T0 = datetime(2026, 3, 1)


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
    return {
        "measurement_uid": uid
        or f"{t:%Y%m%d%H%M%S}.{hash((t, cc, asn, service, report)) % 10**6:06d}_{cc}_webconnectivity_{asn}{service}",
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


def write_store(data_dir: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write verdict rows as ``data_dir/tables/verdicts/day=…/part-0.parquet``."""
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_day[f"{r['measurement_start_time']:%Y-%m-%d}"].append(r)
    for day, day_rows in by_day.items():
        d = data_dir / "tables" / "verdicts" / f"day={day}"
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(day_rows, schema=VERDICTS), d / "part-0.parquet")
    return data_dir


def hourly(
    hours: int,
    per_hour: int,
    blocked_from: int | None = None,
    blocked_until: int | None = None,
    start: datetime = T0,
    **kw: Any,
) -> list[dict[str, Any]]:
    """``per_hour`` verdicts an hour for ``hours`` hours, blocked in [from, until)."""
    out = []
    for h in range(hours):
        blocked = blocked_from is not None and blocked_from <= h < (blocked_until or 10**9)
        for i in range(per_hour):
            t = start + timedelta(hours=h, minutes=(60 * i) // per_hour)
            out.append(verdict(t, "blocked" if blocked else "ok", report=f"r{h}-{i % 3}", **kw))
    return out
