"""The per-lab certificate authority (trustme) and the server TLS contexts built from it.

``lab up`` creates one root CA per lab and writes ``ca.pem`` (what clients trust) and
``ca-key.pem`` (read only by the lab's own server processes) to the state dir. Each server
process reloads the CA and issues its leaves in memory: one leaf per site (its names, their
wildcards and its addresses as SANs), a wildcard leaf for the bench hosts, and picks the
leaf by SNI (falling back to the leaf of the local address when the client sent no SNI).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import trustme

from didban.lab import plan, zone

CA_FILE: Final = "ca.pem"
CA_KEY_FILE: Final = "ca-key.pem"
ALPN_HTTP: Final = ("h2", "http/1.1")


def create(state_dir: Path) -> Path:
    """Create the lab root CA in ``state_dir``; return the path of its certificate."""
    ca = trustme.CA(organization_name="didban lab", organization_unit_name="lab root CA")
    cert = state_dir / CA_FILE
    key = state_dir / CA_KEY_FILE
    ca.cert_pem.write_to_path(str(cert))
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(ca.private_key_pem.bytes())
    return cert


def load(state_dir: Path) -> trustme.CA:
    return trustme.CA.from_pem(
        (state_dir / CA_FILE).read_bytes(), (state_dir / CA_KEY_FILE).read_bytes()
    )


# --- the apps' own CAs ----------------------------------------------------------------------
# An app that pins a CA of its own (data/apps.yaml ``ca``: Signal) gets a lab stand-in for
# it: a second root, ``<app>-ca.pem``, that clients do not trust by default. The lab serves
# the app's backend names with leaves from it (services.main); the app experiment verifies
# against the lab CA plus this one, as the real app does against the public roots plus its own.


def app_ca_file(state_dir: Path, app_id: str) -> Path:
    return state_dir / f"{app_id}-ca.pem"


def create_app_ca(state_dir: Path, app_id: str, organization: str) -> Path:
    """Create the lab's stand-in for the CA ``app_id`` pins; return its certificate's path."""
    ca = trustme.CA(organization_name=f"{organization} (didban lab)", organization_unit_name=app_id)
    cert = app_ca_file(state_dir, app_id)
    ca.cert_pem.write_to_path(str(cert))
    key = state_dir / f"{app_id}-ca-key.pem"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(ca.private_key_pem.bytes())
    return cert


def load_app_ca(state_dir: Path, app_id: str) -> trustme.CA:
    return trustme.CA.from_pem(
        app_ca_file(state_dir, app_id).read_bytes(),
        (state_dir / f"{app_id}-ca-key.pem").read_bytes(),
    )


class LeafStore:
    """Leaf certificates of one server process, keyed by hostname, with SNI selection."""

    def __init__(self, ca: trustme.CA, alpn: Iterable[str] = ALPN_HTTP) -> None:
        self._ca = ca
        self._alpn = list(alpn)
        self._leaves: dict[str, trustme.LeafCert] = {}  # site key -> leaf
        self._ctx: dict[str, ssl.SSLContext] = {}  # site key -> context
        self._by_name: dict[str, str] = {}  # exact name -> site key
        self._wild: dict[str, str] = {}  # parent domain -> site key
        self._by_addr: dict[str, str] = {}  # local address -> site key

    def _context(self, leaf: trustme.LeafCert) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        leaf.configure_cert(ctx)
        ctx.set_alpn_protocols(self._alpn)
        ctx.sni_callback = self._pick
        return ctx

    def _add(self, key: str, leaf: trustme.LeafCert) -> None:
        self._leaves[key] = leaf
        self._ctx[key] = self._context(leaf)

    def add_site(self, site: zone.Site) -> None:
        identities = list(site.names)
        if site.wildcard:
            identities += [f"*.{n}" for n in site.names]
        identities += list(site.addrs)
        leaf = self._ca.issue_cert(
            *identities,
            common_name=site.names[0],
            organization_name="didban lab",
            organization_unit_name=site.key,
        )
        self._add(site.key, leaf)
        for n in site.names:
            self._by_name[n] = site.key
            if site.wildcard:
                self._wild[n] = site.key
        for a in site.addrs:
            self._by_addr.setdefault(a, site.key)

    def add_bench(self) -> None:
        leaf = self._ca.issue_cert(
            f"*.{plan.BENCH_DOMAIN}",
            plan.BENCH_DOMAIN,
            *plan.BENCH_ADDRS,
            common_name=f"*.{plan.BENCH_DOMAIN}",
            organization_name="didban lab",
            organization_unit_name="bench",
        )
        self._add("bench", leaf)
        self._wild[plan.BENCH_DOMAIN] = "bench"
        self._by_name[plan.BENCH_DOMAIN] = "bench"
        for a in plan.BENCH_ADDRS:
            self._by_addr.setdefault(a, "bench")

    def add_pinned(self, key: str, ca: trustme.CA, names: Iterable[str]) -> None:
        """Serve the exact ``names`` with a leaf issued by ``ca`` (an app's own CA) instead
        of the lab root's: chosen by SNI before any wildcard site."""
        names = list(names)
        if not names:
            return
        leaf = ca.issue_cert(
            *names,
            common_name=names[0],
            organization_name="didban lab",
            organization_unit_name=key,
        )
        self._add(key, leaf)
        for n in names:
            self._by_name[n] = key

    def leaf(self, key: str) -> trustme.LeafCert:
        return self._leaves[key]

    def key_for_addr(self, addr: str) -> str | None:
        return self._by_addr.get(addr)

    def key_for_name(self, name: str) -> str | None:
        name = name.lower().rstrip(".")
        if name in self._by_name:
            return self._by_name[name]
        probe = name
        while "." in probe:
            probe = probe.split(".", 1)[1]
            if probe in self._wild:
                return self._wild[probe]
        return None

    def server_context(self, local_addr: str) -> ssl.SSLContext:
        """The context for a socket bound to ``local_addr``: it presents the leaf of the
        address's site (clients without SNI, e.g. dialling a bare IP, or with an unknown
        name), and its SNI callback switches to the leaf of any other known name."""
        return self._ctx[self._by_addr.get(local_addr) or next(iter(self._ctx))]

    def _pick(self, sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        key = self.key_for_name(name) if name else None
        if key is not None and self._ctx[key] is not ctx:
            sslobj.context = self._ctx[key]
