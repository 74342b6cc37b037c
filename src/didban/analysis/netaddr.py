"""Address helpers for the rules: bogon test, ``ip:port`` parsing, IP literals.

Bogons are the special-purpose ranges a public name never legitimately resolves to
(RFC 6890 private, loopback, link-local, shared, multicast, reserved, and ``::/8``, which
holds Iran's AAAA blockpage answer ``d0::11`` that probe-cli's list misses,
ooni-methodology.md §6.3). The RFC 5737 TEST-NET ranges are deliberately *not* bogons:
the didban lab gives every real service a TEST-NET address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Final

_BOGONS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/8",
        "100::/64",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)


@lru_cache(maxsize=65536)
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def is_bogon(text: str) -> bool:
    """True when ``text`` is an IP address inside a bogon range (False for non-addresses)."""
    ip = parse_ip(text)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in _BOGONS)


def is_ip(text: str | None) -> bool:
    return bool(text) and _is_ip(text or "")


@lru_cache(maxsize=65536)
def _is_ip(text: str) -> bool:
    return parse_ip(text) is not None


def is_ipv6(text: str) -> bool:
    ip = parse_ip(text)
    return ip is not None and ip.version == 6


def endpoint(ip: str, port: int) -> str:
    """OONI's ``ip:port`` spelling (IPv6 in brackets), as used by the test helper's maps."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def split_endpoint(address: str | None) -> tuple[str, int | None]:
    return _split_endpoint(address) if address else ("", None)


@lru_cache(maxsize=65536)
def _split_endpoint(address: str) -> tuple[str, int | None]:
    """``("1.2.3.4", 443)`` from ``"1.2.3.4:443"`` or ``"[::1]:443"``; port None if absent."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port.isdigit() else None
    if address.count(":") == 1:
        host, _, port = address.partition(":")
        return host, int(port) if port.isdigit() else None
    return address, None
