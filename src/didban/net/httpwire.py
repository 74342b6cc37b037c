"""What one HTTP exchange sends and reads, whatever the version: the request target and
authority of a URL, the headers a browser sends, the response as read, and the capped,
timed body sink the HTTP/1.1 and HTTP/2 readers fill.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 10.0
DEFAULT_BODY_CAP = 1 << 19  # 512 KiB (OONI maxbody)
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (
    ("User-Agent", USER_AGENT),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.9"),
)
READ_SIZE = 65536


@dataclass
class RawResponse:
    """What one request on one stream returned."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    body_length: int
    truncated: bool
    http_version: str
    throughput: float | None  # body bytes per second, headers → last body byte


class BodySink:
    """Collects a body up to the cap and times it for the throughput figure."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.length = 0
        self.truncated = False
        self.t_start = asyncio.get_running_loop().time()
        self.t_end = self.t_start

    def start(self) -> None:
        """The response headers arrived: the body's clock starts."""
        self.t_start = self.t_end = asyncio.get_running_loop().time()

    def add(self, data: bytes) -> bool:
        """Append; False once the cap is exceeded (stop reading)."""
        self.t_end = asyncio.get_running_loop().time()
        room = self.cap - self.length
        self.length += len(data)
        if len(data) > room:
            self.chunks.append(data[: max(room, 0)])
            self.truncated = True
            return False
        self.chunks.append(data)
        return True

    def response(self, status: int, headers: list[tuple[str, str]], version: str) -> RawResponse:
        elapsed = self.t_end - self.t_start
        return RawResponse(
            status=status,
            headers=headers,
            body=b"".join(self.chunks),
            body_length=self.length,
            truncated=self.truncated,
            http_version=version,
            throughput=self.length / elapsed if elapsed > 0 and self.length else None,
        )


def target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, request target) of an absolute http(s) URL; ValueError if not."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    return scheme, parts.hostname, port, path + (f"?{parts.query}" if parts.query else "")


def authority(host: str, port: int, scheme: str) -> str:
    """The Host header / ``:authority`` of ``host:port`` (the port only when not the
    scheme's default; IPv6 literals in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return shown if port == default else f"{shown}:{port}"
