"""The byte-stream interface HTTP code reads and writes: plain TCP or an established TLS.

Both :class:`didban.net.tcp.TCPStream` and :class:`didban.net.tls.TLSStream` implement it,
so HTTP/1.1 and HTTP/2 run unchanged over either. Reads return ``b""`` at EOF; network
errors are raised as the OS/ssl exception (callers classify them with ``net.errors``).
"""

from __future__ import annotations

from typing import Protocol


class Stream(Protocol):
    """A connected, traced byte stream."""

    @property
    def address(self) -> str:
        """The peer as ``ip:port`` (``[ip6]:port`` for IPv6)."""
        ...

    @property
    def alpn(self) -> str:
        """Negotiated ALPN protocol, ``""`` for plain TCP or none."""
        ...

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` at EOF."""
        ...

    async def write(self, data: bytes) -> None:
        """Send all of ``data``."""
        ...

    def close(self) -> None:
        """Release the connection (idempotent)."""
        ...


def format_address(ip: str, port: int) -> str:
    """OONI's ``ip:port`` spelling, with brackets around IPv6 addresses."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """``"1.2.3.4:53"`` / ``"[::1]:53"`` / ``"1.2.3.4"`` → (ip, port); ValueError if malformed."""
    address = address.strip()
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        if not sep:
            raise ValueError(f"malformed address {address!r}")
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if address.count(":") == 1:
        host, _, port_s = address.partition(":")
        return host, int(port_s)
    return address, default_port
