"""Address helpers for the rules: bogon test, ``ip:port`` parsing, IP literals.

The bogon ranges themselves live in ``didban.model.addresses`` (shared with the test
helper).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from didban.model.addresses import in_bogon_range


@lru_cache(maxsize=65536)
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def is_bogon(text: str) -> bool:
    """True when ``text`` is an IP address inside a bogon range (False for non-addresses).
    Cached: the control's addresses are tested in every failed fetch
    (``wc.dns.bogon_everywhere``), and a range test walks every bogon range."""
    ip = parse_ip(text)
    return ip is not None and in_bogon_range(ip)


def is_ip(text: str | None) -> bool:
    return text is not None and parse_ip(text) is not None


def is_ipv6(text: str) -> bool:
    """Whether ``text`` is an IPv6 literal (parsed only when it has a colon: an IPv4
    literal never does)."""
    if ":" not in text:
        return False
    ip = parse_ip(text)
    return ip is not None and ip.version == 6


def endpoint(ip: str, port: int) -> str:
    """OONI's ``ip:port`` spelling (IPv6 in brackets), as used by the test helper's maps."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def split_endpoint(address: str | None) -> tuple[str, int | None]:
    """``("1.2.3.4", 443)`` from ``"1.2.3.4:443"`` or ``"[::1]:443"``; port None if absent."""
    if not address:
        return "", None
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port.isascii() and port.isdigit() else None
    if address.count(":") == 1:
        host, _, port = address.partition(":")
        return host, int(port) if port.isascii() and port.isdigit() else None
    return address, None
