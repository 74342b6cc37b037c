"""What the rules read from a measured URL, parsed once per distinct URL.

``info(url)`` gives the scheme, host, port and whether the host is an IP literal (the web
rules), the domain a verdict names and the catalog service it belongs to (the verdict), and
a slot for the per-status "final response" evidence (shared by every verdict on that URL).
One dict lookup per measurement replaces four: a URL decoded from a measurement is a new
string, so every lookup hashes it and compares it with the stored key.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from didban.analysis import netaddr
from didban.data import catalog
from didban.model.verdict import Evidence


class URLInfo:
    """One URL as the rules and the verdict read it."""

    __slots__ = ("domain", "host", "host_is_ip", "layers", "port", "scheme", "service", "url")

    def __init__(self, url: str) -> None:
        self.url: str = url
        scheme, host, port = _split(url)
        self.scheme: str = scheme
        self.host: str = host  # lower-case, no trailing dot; '' when the URL has none
        self.port: int = port
        self.host_is_ip: bool = netaddr.is_ip(host)
        self.domain: str | None = _domain(url)
        self.service: str | None = _service(url)
        # the final-response evidence per status code (web_connectivity.evidence); never
        # mutated once made
        self.layers: dict[int | None, Evidence] = {}


_INFO: Final[dict[str, URLInfo]] = {}


def info(url: str) -> URLInfo:
    """``url`` parsed (cached in a dict emptied at ``netaddr.CACHE_SIZE`` entries)."""
    out = _INFO.get(url)
    if out is None:
        out = netaddr.remember(_INFO, url, URLInfo(url))
    return out


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
