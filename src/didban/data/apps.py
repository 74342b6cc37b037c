"""The app catalog (``apps.yaml``): what each app experiment contacts, and where.

One row per app (its ``id`` is the experiment's, OONI's ``test_name``) with the endpoints
the app itself uses — data-centre addresses, host names and ports, URLs, the AS its
addresses must belong to, the CA files it pins — each row with its source. The probe's app
experiments read their endpoints here; the lab serves a stand-in for each endpoint (names
through the lab's zone, literal addresses at a lab address of their own).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import yaml

from didban.data import path


class Endpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One thing an app contacts: a host or an address (with ports), or a URL."""

    id: str
    kind: str
    source: str
    host: str | None = None
    address: str | None = None
    ports: tuple[int, ...] = ()
    url: str | None = None
    asn: int | None = None

    @property
    def hostname(self) -> str | None:
        """The DNS name the endpoint is reached by (its host, or its URL's host)."""
        if self.host:
            return self.host
        if self.url:
            name = urlsplit(self.url).hostname
            return name if name and not _is_address(name) else None
        return None


class App(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    name: str
    source: str
    endpoints: tuple[Endpoint, ...]
    service: str | None = None
    asn: int | None = None
    ca: tuple[str, ...] = ()

    def of_kind(self, *kinds: str) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.kind in kinds)

    def endpoint(self, endpoint_id: str) -> Endpoint:
        for e in self.endpoints:
            if e.id == endpoint_id:
                return e
        raise KeyError(f"app '{self.id}' has no endpoint '{endpoint_id}'")

    def ca_files(self) -> tuple[Path, ...]:
        """The pinned CA files (``data/pins/``)."""
        return tuple(path(f"pins/{name}") for name in self.ca)


class _Catalog(msgspec.Struct, forbid_unknown_fields=True):
    apps: list[App]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1)
def apps() -> tuple[App, ...]:
    """Every app of the catalog, in file order."""
    raw = yaml.safe_load(path("apps.yaml").read_text(encoding="utf-8"))
    return tuple(msgspec.convert(raw, _Catalog).apps)


def by_id(app_id: str) -> App:
    for a in apps():
        if a.id == app_id:
            return a
    raise KeyError(f"no app '{app_id}' in the catalog")


def literal_addresses() -> tuple[tuple[App, Endpoint], ...]:
    """Endpoints given as IP literals (reached without a lookup), in catalog order."""
    return tuple((a, e) for a in apps() for e in a.endpoints if e.address)


def hostnames() -> tuple[tuple[App, Endpoint, str], ...]:
    """(app, endpoint, name) for every endpoint reached by a DNS name, in catalog order."""
    out: list[tuple[App, Endpoint, str]] = []
    for a in apps():
        for e in a.endpoints:
            name = e.hostname
            if name:
                out.append((a, e, name.lower()))
    return tuple(out)
