"""Where an address is: the shipped IP → ASN snapshot and IP → country, both offline.

The ASN snapshot lives in ``didban/data/asn/`` as three zstd Parquet files:
``asn-ipv4.parquet`` (start, end as uint32, asn), ``asn-ipv6.parquet`` (start, end as
16-byte big-endian binaries, asn) and ``asn-names.parquet`` (asn, org), plus
``SOURCE.json`` (package, version, date) and the upstream licence files; ranges are
inclusive and sorted by start, so a lookup is one binary search (``didban.store.asndb``
builds them). The country is the address's *registration* country from the RIR
delegation files compiled into ``iptocc`` (NRO statistics, CC BY 4.0). No lookup ever
leaves the machine.

A lab's own mapping (``LabDescriptor.asn_map``) overrides both: ``AsnDB(overrides=...)``.
The probe (its own network), the control helper (``ip_info``) and the store (observation
rows) all read addresses through this one module.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from didban.data import path as data_path
from didban.model.addresses import parse_ip
from didban.model.labinfo import AsnRow


def snapshot_dir() -> Path:
    return data_path("asn")


def country(ip: str) -> str | None:
    """The registration country (ISO 3166-1 alpha-2) of ``ip``; None for private or
    unknown addresses and for text that is not an address."""
    addr = parse_ip(ip)
    if addr is None or not addr.is_global:
        return None
    import iptocc  # ~50 ms: only when a public address is looked up

    cc = iptocc.country_code(str(addr))
    # RIR files also use EU and AP (regions, not countries): no country then
    return cc if isinstance(cc, str) and len(cc) == 2 and cc not in ("EU", "AP") else None


def _v6_key(addr: ipaddress.IPv6Address) -> bytes:
    return addr.packed


@dataclass(frozen=True)
class AsnInfo:
    asn: int
    org: str | None
    cc: str | None = None


class AsnDB:
    """Longest-match-free range lookup (ranges do not overlap) with optional overrides."""

    def __init__(self, directory: Path | None = None, overrides: Sequence[AsnRow] = ()) -> None:
        d = directory or snapshot_dir()
        self.directory = d
        # numpy arrays, not lists: 5 MB instead of 80 (every ingest worker holds one)
        self._v4_start = np.zeros(0, dtype=np.uint32)
        self._v4_end = np.zeros(0, dtype=np.uint32)
        self._v4_asn = np.zeros(0, dtype=np.uint32)
        self._v6_start = np.zeros(0, dtype="S16")  # 16-byte big-endian: bytes order = order
        self._v6_end = np.zeros(0, dtype="S16")
        self._v6_asn = np.zeros(0, dtype=np.uint32)
        self._names: dict[int, str] = {}
        if (d / "asn-ipv4.parquet").exists():
            import pyarrow.parquet as pq  # ~100 ms: only when the snapshot is loaded

            t4 = pq.read_table(d / "asn-ipv4.parquet")
            self._v4_start = _column(t4, "start", np.uint32)
            self._v4_end = _column(t4, "end", np.uint32)
            self._v4_asn = _column(t4, "asn", np.uint32)
            t6 = pq.read_table(d / "asn-ipv6.parquet")
            self._v6_start = _column(t6, "start", "S16")
            self._v6_end = _column(t6, "end", "S16")
            self._v6_asn = _column(t6, "asn", np.uint32)
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
        addr = parse_ip(ip)
        if addr is None:
            return None
        for net, info in self._overrides:
            if addr.version == net.version and addr in net:
                return info
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if isinstance(addr, ipaddress.IPv4Address):
            n = int(addr)
            # a uint32 scalar: with a Python int numpy would convert the whole array per call
            i = int(np.searchsorted(self._v4_start, np.uint32(n), side="right")) - 1
            if i >= 0 and n <= int(self._v4_end[i]):
                asn = int(self._v4_asn[i])
                return AsnInfo(asn, self._names.get(asn), country(str(addr)))
            return None
        key = _v6_key(addr)
        j = int(np.searchsorted(self._v6_start, key, side="right")) - 1
        # the 16 bytes themselves (an S16 item read alone loses its trailing zero bytes)
        if j >= 0 and key <= self._v6_end[j : j + 1].tobytes():
            asn = int(self._v6_asn[j])
            return AsnInfo(asn, self._names.get(asn), country(str(addr)))
        return None


def _column(table: Any, name: str, dtype: Any) -> Any:
    """A column of a snapshot table as a numpy array (16-byte binaries as ``S16``)."""
    col = table.column(name).combine_chunks()
    if dtype == "S16":
        return np.frombuffer(
            col.buffers()[1], dtype="S16", count=len(col), offset=16 * col.offset
        ).copy()
    return col.to_numpy().astype(dtype)


@lru_cache(maxsize=1)
def default_db() -> AsnDB:
    """The shipped snapshot, loaded once per process."""
    return AsnDB()
