"""Building the offline IP → ASN snapshot from ip-location-db CSVs (``didban data update``).

The snapshot's format and its lookup live in :mod:`didban.data.ipasn` (the probe and the
control helper read it too); this module only writes it.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from didban.data.ipasn import default_db, snapshot_dir

__all__ = ["build", "snapshot_dir"]

LICENCE_FILES = ("DBIP-LICENSE", "NRO_LICENSE", "ROUTEVIEWS-LICENSE", "MODIFICATIONS")


def _rows(csv_path: Path) -> Iterable[tuple[str, str, int, str]]:
    with csv_path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) >= 3 and row[2].isdigit():
                yield row[0], row[1], int(row[2]), row[3] if len(row) > 3 else ""


def build(package_dir: Path, out_dir: Path, version: str, date: str) -> dict[str, int]:
    """Convert an unpacked ``@ip-location-db/asn`` package into the snapshot files.

    Writes into a temporary sibling directory, then replaces ``out_dir`` whole, so a
    failed build leaves the previous snapshot untouched. Returns row counts.
    """
    v4 = package_dir / "asn-ipv4.csv"
    v6 = package_dir / "asn-ipv6.csv"
    for needed in (v4, v6):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} is missing: not an @ip-location-db/asn package")
    names: dict[int, str] = {}
    s4: list[int] = []
    e4: list[int] = []
    a4: list[int] = []
    for start, end, asn, org in _rows(v4):
        s4.append(int(ipaddress.IPv4Address(start)))
        e4.append(int(ipaddress.IPv4Address(end)))
        a4.append(asn)
        names.setdefault(asn, org)
    s6: list[bytes] = []
    e6: list[bytes] = []
    a6: list[int] = []
    for start, end, asn, org in _rows(v6):
        s6.append(ipaddress.IPv6Address(start).packed)
        e6.append(ipaddress.IPv6Address(end).packed)
        a6.append(asn)
        names.setdefault(asn, org)
    order4 = sorted(range(len(s4)), key=s4.__getitem__)
    order6 = sorted(range(len(s6)), key=s6.__getitem__)
    tmp = out_dir.with_name(out_dir.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    opts: dict[str, Any] = {"compression": "zstd", "compression_level": 19}
    pq.write_table(
        pa.table(
            {
                "start": pa.array([s4[i] for i in order4], pa.uint32()),
                "end": pa.array([e4[i] for i in order4], pa.uint32()),
                "asn": pa.array([a4[i] for i in order4], pa.uint32()),
            }
        ),
        tmp / "asn-ipv4.parquet",
        **opts,
    )
    pq.write_table(
        pa.table(
            {
                "start": pa.array([s6[i] for i in order6], pa.binary(16)),
                "end": pa.array([e6[i] for i in order6], pa.binary(16)),
                "asn": pa.array([a6[i] for i in order6], pa.uint32()),
            }
        ),
        tmp / "asn-ipv6.parquet",
        **opts,
    )
    asns = sorted(names)
    pq.write_table(
        pa.table(
            {
                "asn": pa.array(asns, pa.uint32()),
                "org": pa.array([names[a] for a in asns], pa.string()),
            }
        ),
        tmp / "asn-names.parquet",
        **opts,
    )
    for name in LICENCE_FILES:
        if (package_dir / name).exists():
            shutil.copy(package_dir / name, tmp / name)
    meta = {
        "package": "@ip-location-db/asn",
        "version": version,
        "date": date,
        "licence": "CC BY 4.0 (RouteViews, DB-IP Lite, NRO); see the licence files here",
        "attribution": "IP to ASN data by RouteViews, NRO and DB-IP (https://db-ip.com)",
        "ipv4_ranges": len(s4),
        "ipv6_ranges": len(s6),
        "asns": len(names),
    }
    (tmp / "SOURCE.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    readme = out_dir / "README.md"
    if readme.exists():
        shutil.copy(readme, tmp / "README.md")
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    default_db.cache_clear()
    return {"ipv4_ranges": len(s4), "ipv6_ranges": len(s6), "asns": len(names)}
