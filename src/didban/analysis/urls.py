"""What the rules read from a measured URL, parsed once per distinct URL.

``info(url)`` gives the scheme, host, port and whether the host is an IP literal (the web
rules), and the domain a verdict names and the catalog service it belongs to (the verdict).
One dict lookup per measurement replaces four: a URL decoded from a measurement is a new
string, so every lookup hashes it and compares it with the stored key.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from didban.analysis import netaddr
from didban.data import catalog


@dataclass(frozen=True, slots=True)
class URLInfo:
    """One URL as the rules and the verdict read it."""

    url: str
    scheme: str
    host: str  # lower-case, no trailing dot; '' when the URL has none
    port: int
    host_is_ip: bool
    domain: str | None
    service: str | None


@lru_cache(maxsize=65536)
def info(url: str) -> URLInfo:
    """``url`` parsed, once per distinct URL (a measured archive repeats its URLs)."""
    scheme, host, port = _split(url)
    return URLInfo(url, scheme, host, port, netaddr.is_ip(host), _domain(url), _service(url))


def _split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port); host '' when ``url`` has none or does not parse."""
    try:
        split = urlsplit(url)
        scheme = split.scheme.lower()
        host = (split.hostname or "").rstrip(".").lower()
        port = split.port
    except ValueError:
        return "", "", 0
    return scheme, host, port or (443 if scheme == "https" else 80)


def _domain(url: str) -> str | None:
    """The host of a URL input, or the input itself when it is a bare domain (dnscheck)."""
    if "://" not in url:
        name = url.strip().rstrip(".").lower()
        # a name, not an address with a port ("1.1.1.1:853") or anything with a path
        return name if name and not any(c in name for c in "/: []") else None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.rstrip(".").lower() if host else None


def _service(url: str) -> str | None:
    try:
        return catalog.service_for_url(url)
    except ValueError:
        return None
