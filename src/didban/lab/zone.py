"""The lab's name zone: which address every lab hostname resolves to, and back.

One source of truth for the public resolvers (DNS answers), the ISP resolver (domestic
names) and the fake web servers (which site an address or ``Host`` belongs to):

* catalog services: each domain of the service and any subdomain of it → the service's
  addresses in :data:`plan.SERVICE_ADDRS` (or :data:`plan.DOMESTIC_SITES`);
* hosts of ``data/default-list.csv`` that are no catalog service → one address each from
  :data:`plan.EXTRA_POOL`, in the order the list first names them (:func:`extra_hosts`);
* app host names no catalog service owns (``data/apps.yaml``: the STUN servers,
  ``stun.fbsbx.com``) → one address each from :data:`plan.APP_POOL`
  (:func:`plan.app_hosts`);
* ``site<N>.bench.didban.test`` → ``plan.BENCH_ADDRS[(N - 1) % len]`` for any N ≥ 1;
* the public resolvers' hostnames (``dns.google``, ...) → their addresses;
* the names of the circumvention servers (``data/circumvention.yaml``: the Snowflake
  broker, its front domain, the relay) → their stand-ins in :data:`plan.CIRCUMVENTION`
  (answered by DNS only: those servers are not web sites of the services process).
* the accuracy cases ``<label>.cases.didban.test`` → :data:`plan.CASE_SITES`, and the ISP's
  portal (a domestic sinkhole) → :data:`plan.SINKHOLE_PORTAL`.

Names outside the zone do not exist (NXDOMAIN): the lab has no internet behind it.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from didban.data import catalog
from didban.data import path as data_path
from didban.lab import plan
from didban.lab.circumvention import layout

_BENCH_RE = re.compile(r"^site([1-9][0-9]{0,8})\." + re.escape(plan.BENCH_DOMAIN) + r"$")


@dataclass(frozen=True)
class Site:
    """A web site of the lab: who it is, which names it answers, where it lives."""

    key: str  # catalog service id, "extra:<host>", "app:<host>", "bench" or "resolver:<name>"
    names: tuple[str, ...]  # exact hostnames (certificate SANs also get "*.<name>")
    addrs: tuple[str, ...]
    domestic: bool = False  # served from the domestic namespace
    http3: bool = False
    wildcard: bool = True  # subdomains of `names` belong to the site too


def _norm(host: str) -> str:
    return host.lower().rstrip(".")


@lru_cache(maxsize=1)
def extra_hosts() -> tuple[tuple[str, str], ...]:
    """(host, address) for every default-list host that is not a catalog service, in list
    order; each gets the next address of :data:`plan.EXTRA_POOL`."""
    seen: dict[str, str] = {}
    with data_path("default-list.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            host = urlsplit(row.get("url") or "").hostname
            if not host:
                continue
            host = _norm(host)
            if host in seen or catalog.service_for_host(host) is not None:
                continue
            if len(seen) >= len(plan.EXTRA_POOL):
                raise ValueError(
                    f"default-list.csv names more than {len(plan.EXTRA_POOL)} non-catalog "
                    "hosts; plan.EXTRA_POOL is too small"
                )
            seen[host] = plan.EXTRA_POOL[len(seen)]
    return tuple(seen.items())


@lru_cache(maxsize=1)
def sites() -> tuple[Site, ...]:
    """Every named site of the lab (catalog services, extra hosts, resolvers)."""
    out: list[Site] = []
    for svc in catalog.services():
        if svc.id in plan.DOMESTIC_SITES:
            addrs, domestic = plan.DOMESTIC_SITES[svc.id], True
        elif svc.id in plan.SERVICE_ADDRS:
            addrs, domestic = plan.SERVICE_ADDRS[svc.id], False
        else:
            raise ValueError(f"catalog service '{svc.id}' has no address in didban.lab.plan")
        out.append(Site(svc.id, tuple(svc.domains), addrs, domestic, svc.http3))
    for host, addr in extra_hosts():
        out.append(Site(f"extra:{host}", (host,), (addr,), wildcard=False))
    for host, addr, _ in plan.app_hosts():
        out.append(Site(f"app:{host}", (host,), (addr,), wildcard=False))
    for name, (addrs, hostnames) in plan.PUBLIC_RESOLVERS.items():
        out.append(Site(f"resolver:{name}", hostnames, addrs, wildcard=False))
    for label, addr in plan.CASE_SITES.items():
        out.append(Site(f"case:{label}", (case_host(label),), (addr,), wildcard=False))
    out.append(
        Site("isp:portal", (plan.PORTAL_NAME,), (plan.SINKHOLE_PORTAL,), True, wildcard=False)
    )
    return tuple(out)


def case_host(label: str) -> str:
    """The host name of accuracy case ``label`` (``<label>.cases.didban.test``)."""
    return f"{label}.{plan.CASE_DOMAIN}"


@lru_cache(maxsize=1)
def _exact() -> dict[str, Site]:
    return {n: s for s in sites() for n in s.names}


def bench_index(host: str) -> int | None:
    """N for ``site<N>.bench.didban.test``, else None."""
    m = _BENCH_RE.match(_norm(host))
    return int(m.group(1)) if m else None


def bench_host(n: int) -> str:
    return f"site{n}.{plan.BENCH_DOMAIN}"


def bench_addr(n: int) -> str:
    return plan.BENCH_ADDRS[(n - 1) % len(plan.BENCH_ADDRS)]


def site_for_host(host: str) -> Site | None:
    """The site a hostname belongs to (exact name, or a subdomain of a wildcard site)."""
    name = _norm(host)
    table = _exact()
    if name in table:
        return table[name]
    probe = name
    while "." in probe:
        probe = probe.split(".", 1)[1]
        site = table.get(probe)
        if site is not None:
            return site if site.wildcard else None
    return None


@lru_cache(maxsize=1)
def _circumvention_hosts() -> dict[str, str]:
    return layout.hosts()


def resolve(host: str) -> tuple[str, ...] | None:
    """IPv4 addresses of a lab name, or None when the name does not exist."""
    n = bench_index(host)
    if n is not None:
        return (bench_addr(n),)
    circ = _circumvention_hosts().get(_norm(host))
    if circ is not None:
        return (circ,)
    site = site_for_host(host)
    return site.addrs if site else None


def in_bench_zone(host: str) -> bool:
    name = _norm(host)
    return name == plan.BENCH_DOMAIN or name.endswith("." + plan.BENCH_DOMAIN)


@lru_cache(maxsize=1)
def _by_addr() -> dict[str, Site]:
    return {a: s for s in sites() for a in s.addrs}


def site_for_addr(addr: str) -> Site | None:
    return _by_addr().get(addr)


def is_domestic_name(host: str) -> bool:
    site = site_for_host(host)
    return bool(site and site.domestic)


def addresses(*, domestic: bool) -> tuple[str, ...]:
    """Every site address served from the domestic (True) or inet (False) namespace."""
    found: list[str] = []
    for s in sites():
        if s.domestic == domestic:
            found.extend(a for a in s.addrs if a not in found)
    if not domestic:
        found.extend(a for a in plan.BENCH_ADDRS if a not in found)
    return tuple(found)


def resolver_addrs() -> tuple[str, ...]:
    return tuple(a for addrs, _ in plan.PUBLIC_RESOLVERS.values() for a in addrs)
