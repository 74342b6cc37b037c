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
    throughput: float | None  # body bytes/s, headers → last byte of the first 512 KiB


class BodySink:
    """Collects a body up to the cap and times it for the throughput figure.

    The rate is taken over the body's first ``rate_window`` bytes (default: the probe's cap,
    512 KiB): a reader with a larger cap (the test helper reads up to 16 MiB) times the same
    span of the same download as the probe, so their ratio compares like with like (a
    longer transfer's rate is higher only because slow start weighs less)."""

    def __init__(self, cap: int, rate_window: int = DEFAULT_BODY_CAP) -> None:
        self.cap = cap
        self.rate_window = rate_window
        self.chunks: list[bytes] = []
        self.length = 0
        self.truncated = False
        self.t_start = asyncio.get_running_loop().time()
        self.t_end = self.t_start
        self.t_window: float | None = None  # when the window's last byte arrived

    def start(self) -> None:
        """The response headers arrived: the body's clock starts."""
        self.t_start = self.t_end = asyncio.get_running_loop().time()

    def add(self, data: bytes) -> bool:
        """Append; False once the cap is exceeded (stop reading)."""
        self.t_end = asyncio.get_running_loop().time()
        room = self.cap - self.length
        self.length += len(data)
        if self.t_window is None and self.length >= self.rate_window:
            self.t_window = self.t_end
        if len(data) > room:
            self.chunks.append(data[: max(room, 0)])
            self.truncated = True
            return False
        self.chunks.append(data)
        return True

    def throughput(self) -> float | None:
        """Body bytes per second over the first ``rate_window`` bytes (all, when fewer)."""
        if self.t_window is not None:
            elapsed, counted = self.t_window - self.t_start, self.rate_window
        else:
            elapsed, counted = self.t_end - self.t_start, self.length
        return counted / elapsed if elapsed > 0 and counted else None

    def response(self, status: int, headers: list[tuple[str, str]], version: str) -> RawResponse:
        return RawResponse(
            status=status,
            headers=headers,
            body=b"".join(self.chunks),
            body_length=self.length,
            truncated=self.truncated,
            http_version=version,
            throughput=self.throughput(),
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
