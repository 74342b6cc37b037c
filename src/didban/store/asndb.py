"""The offline IP → ASN table: building it from ip-location-db CSVs and looking addresses up.

The shipped snapshot lives in ``didban/data/asn/`` as three zstd Parquet files:
``asn-ipv4.parquet`` (start, end as uint32, asn), ``asn-ipv6.parquet`` (start, end as
16-byte big-endian binaries, asn) and ``asn-names.parquet`` (asn, org), plus
``SOURCE.json`` (package, version, date) and the upstream licence files. Ranges are
inclusive and sorted by start, so a lookup is one binary search.

A lab's own mapping (``LabDescriptor.asn_map``) overrides the snapshot: ``AsnDB(overrides=...)``.
"""

from __future__ import annotations

import bisect
import csv
import ipaddress
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from didban.data import path as data_path
from didban.model.labinfo import AsnRow

LICENCE_FILES = ("DBIP-LICENSE", "NRO_LICENSE", "ROUTEVIEWS-LICENSE", "MODIFICATIONS")


@dataclass(frozen=True)
class AsnInfo:
    asn: int
    org: str | None
    cc: str | None = None


def snapshot_dir() -> Path:
    return data_path("asn")


def _v6_key(addr: ipaddress.IPv6Address) -> bytes:
    return addr.packed


class AsnDB:
    """Longest-match-free range lookup (ranges do not overlap) with optional overrides."""

    def __init__(self, directory: Path | None = None, overrides: Sequence[AsnRow] = ()) -> None:
        d = directory or snapshot_dir()
        self.directory = d
        self._v4_start: list[int] = []
        self._v4_end: list[int] = []
        self._v4_asn: list[int] = []
        self._v6_start: list[bytes] = []
        self._v6_end: list[bytes] = []
        self._v6_asn: list[int] = []
        self._names: dict[int, str] = {}
        if (d / "asn-ipv4.parquet").exists():
            t4 = pq.read_table(d / "asn-ipv4.parquet")
            self._v4_start = t4.column("start").to_pylist()
            self._v4_end = t4.column("end").to_pylist()
            self._v4_asn = t4.column("asn").to_pylist()
            t6 = pq.read_table(d / "asn-ipv6.parquet")
            self._v6_start = t6.column("start").to_pylist()
            self._v6_end = t6.column("end").to_pylist()
            self._v6_asn = t6.column("asn").to_pylist()
            tn = pq.read_table(d / "asn-names.parquet")
            self._names = dict(
                zip(tn.column("asn").to_pylist(), tn.column("org").to_pylist(), strict=True)
            )
        self._overrides = [
            (ipaddress.ip_network(r.cidr, strict=False), AsnInfo(r.asn, r.org, r.cc))
            for r in overrides
        ]
        self.version = self._read_version(d)

    def with_overrides(self, overrides: Sequence[AsnRow]) -> AsnDB:
        """The same snapshot (shared, not reloaded) with a lab's rows taking precedence."""
        clone = object.__new__(AsnDB)
        clone.__dict__.update(self.__dict__)
        clone.__dict__["_cache"] = {}
        clone._overrides = [
            (ipaddress.ip_network(r.cidr, strict=False), AsnInfo(r.asn, r.org, r.cc))
            for r in overrides
        ]
        return clone

    @staticmethod
    def _read_version(d: Path) -> str:
        src = d / "SOURCE.json"
        if not src.exists():
            return "none"
        meta = json.loads(src.read_text(encoding="utf-8"))
        return f"{meta.get('package', '?')}@{meta.get('version', '?')}"

    def __len__(self) -> int:
        return len(self._v4_start) + len(self._v6_start)

    def lookup(self, ip: str) -> AsnInfo | None:
        """The AS announcing ``ip`` (lab overrides first), or None (unknown, bogon, bad text)."""
        cache: dict[str, AsnInfo | None] = self.__dict__.setdefault("_cache", {})
        if ip in cache:
            return cache[ip]
        if len(cache) > 100_000:
            cache.clear()
        found = cache[ip] = self._lookup(ip)
        return found

    def _lookup(self, ip: str) -> AsnInfo | None:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0].strip("[]"))
        except ValueError:
            return None
        for net, info in self._overrides:
            if addr.version == net.version and addr in net:
                return info
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if isinstance(addr, ipaddress.IPv4Address):
            n = int(addr)
            i = bisect.bisect_right(self._v4_start, n) - 1
            if i >= 0 and n <= self._v4_end[i]:
                asn = self._v4_asn[i]
                return AsnInfo(asn, self._names.get(asn))
            return None
        key = _v6_key(addr)
        j = bisect.bisect_right(self._v6_start, key) - 1
        if j >= 0 and key <= self._v6_end[j]:
            asn = self._v6_asn[j]
            return AsnInfo(asn, self._names.get(asn))
        return None


@lru_cache(maxsize=1)
def default_db() -> AsnDB:
    """The shipped snapshot, loaded once per process."""
    return AsnDB()


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
