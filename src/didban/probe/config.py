"""What an experiment needs to know about the world: resolvers, DoH, control helper, CA, timeouts.

Real-network defaults follow OONI (ooni-methodology.md §3.4-3.5): a public UDP resolver
(8.8.8.8:53), DoH at ``https://dns.google/dns-query`` and OONI's own test helper
(``https://0.th.ooni.org/``, oohelperd-compatible). They are used only when a user runs the
probe on a real network; in the lab every value comes from the lab descriptor, and in tests
the network guard refuses any of them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from didban.model.labinfo import AsnRow
from didban.net.stream import split_address

DEFAULT_UDP_RESOLVER = "8.8.8.8:53"
DEFAULT_DOH_URL = "https://dns.google/dns-query"
DEFAULT_CONTROL_URL = "https://0.th.ooni.org/"

# Well-known DoH hosts and an address to reach each without a DNS lookup (bootstrap).
DOH_BOOTSTRAP: dict[str, str] = {
    "dns.google": "8.8.8.8",
    "mozilla.cloudflare-dns.com": "1.1.1.1",
    "cloudflare-dns.com": "1.1.1.1",
    "dns.quad9.net": "9.9.9.9",
    "dns.nextdns.io": "45.90.28.0",
}


class ConfigError(ValueError):
    """A bad --resolver / --doh / --control value (one sentence)."""


def parse_resolver(value: str, flag: str = "--resolver", default_port: int = 53) -> tuple[str, int]:
    """``IP`` or ``IP:PORT`` (``[v6]:PORT``) → (ip, port), ``default_port`` when absent;
    errors name ``flag``, the option the value came from."""
    try:
        ip, port = split_address(value, default_port)
        ipaddress.ip_address(ip)
    except ValueError:
        raise ConfigError(
            f"{flag} {value!r} is not an IP address with an optional port "
            f"(e.g. 8.8.8.8:{default_port})"
        ) from None
    if not 0 < port < 65536:
        raise ConfigError(f"{flag} {value!r}: the port must be 1-65535")
    return ip, port


def check_http_url(flag: str, value: str, *, https_only: bool = False) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{flag} {value!r} is not a valid URL") from None
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{flag} {value!r} must be an {' or '.join(schemes)} URL with a host")
    return value


@dataclass(slots=True)
class ProbeConfig:
    udp_resolver: tuple[str, int] = ("8.8.8.8", 53)
    doh_url: str | None = DEFAULT_DOH_URL
    doh_bootstrap: str | None = None  # IP of the DoH server; None: the table, then getaddrinfo
    control_url: str | None = DEFAULT_CONTROL_URL
    ca_file: str | None = None  # PEM bundle for every TLS verification; None: system roots
    dns_timeout: float = 4.0
    duplicate_wait: float = 0.5
    tcp_timeout: float = 10.0
    tls_timeout: float = 10.0
    http_timeout: float = 10.0
    control_timeout: float = 30.0
    quic_timeout: float = 5.0
    max_redirects: int = 10
    body_cap: int = 1 << 19
    quic: bool = True
    lab_profile: str | None = None
    extra_scrub: list[str] = field(default_factory=list)
    # App experiments: catalog address -> the address to contact instead (the lab's
    # stand-ins), app id -> CA files replacing the catalog's pinned ones, and the IP->ASN
    # rows that take precedence over the shipped snapshot (the lab's asn_map).
    address_map: dict[str, str] = field(default_factory=dict)
    pinned_cas: dict[str, list[str]] = field(default_factory=dict)
    asn_rows: list[AsnRow] = field(default_factory=list)
    app_timeout: float = 60.0  # OONI's whole-experiment bound for the IM tests
    stun_timeout: float = 5.0

    def doh_address(self) -> str | None:
        if not self.doh_url:
            return None
        if self.doh_bootstrap:
            return self.doh_bootstrap
        host = urlsplit(self.doh_url).hostname or ""
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            return DOH_BOOTSTRAP.get(host)
