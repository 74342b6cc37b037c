"""The service catalog (``services.yaml``): which services we track and how a URL maps to one."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

import msgspec
import yaml

from didban.data import path


class Service(msgspec.Struct, frozen=True):
    id: str
    name: str
    category: str
    urls: tuple[str, ...]
    domains: tuple[str, ...]
    http3: bool = False
    domestic: bool = False


class _Catalog(msgspec.Struct):
    services: list[Service]


@lru_cache(maxsize=1)
def services() -> tuple[Service, ...]:
    """All catalog services, in file order."""
    raw = yaml.safe_load(path("services.yaml").read_text(encoding="utf-8"))
    return tuple(msgspec.convert(raw, _Catalog).services)


@lru_cache(maxsize=1)
def _by_domain() -> dict[str, str]:
    return {d: s.id for s in services() for d in s.domains}


def by_id(service_id: str) -> Service:
    for s in services():
        if s.id == service_id:
            return s
    raise KeyError(f"no service '{service_id}' in the catalog")


def service_for_host(host: str) -> str | None:
    """The id of the service ``host`` belongs to (exact domain or a subdomain of one)."""
    host = host.lower().rstrip(".")
    table = _by_domain()
    while host:
        if host in table:
            return table[host]
        if "." not in host:
            return None
        host = host.split(".", 1)[1]
    return None


def service_for_url(url: str | None) -> str | None:
    """The id of the service a URL belongs to, or None."""
    if not url:
        return None
    host = urlsplit(url).hostname
    return service_for_host(host) if host else None


def offers_http3(host: str) -> bool:
    """The catalog says the service ``host`` belongs to offers HTTP/3."""
    sid = service_for_host(host)
    return sid is not None and by_id(sid).http3
