"""Bogon address ranges: where a public name never legitimately resolves to.

RFC 6890 special-purpose ranges (private, loopback, link-local, shared, multicast,
reserved) plus ``::/8``, which holds Iran's AAAA blockpage answer ``d0::11`` that
probe-cli's list misses (ooni-methodology.md §6.3). The RFC 5737 TEST-NET ranges are
deliberately *not* bogons: the didban lab gives every real service a TEST-NET address.
Shared by analysis (bogon answers) and the test helper (never connect to a bogon).
"""

from __future__ import annotations

import ipaddress
from typing import Final

BOGONS: Final = tuple(
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


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``text`` spells — brackets (``[2001:db8::1]``) and an IPv6 zone
    (``fe80::1%eth0``) allowed — or None when it is not an IP address."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None


def in_bogon_range(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True when ``ip`` (IPv4-mapped IPv6 unwrapped) lies in a bogon range."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in BOGONS)


def is_bogon(text: str) -> bool:
    """True when ``text`` is an IP address inside a bogon range (False for non-addresses)."""
    try:
        return in_bogon_range(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return False
