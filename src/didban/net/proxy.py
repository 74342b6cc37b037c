"""Asking a proxy for a tunnel over an open TCP stream: SOCKS5 (RFC 1928, with RFC 1929
username/password — which is also how a pluggable transport's client takes a bridge's
arguments, pt-spec §3.5) and HTTP CONNECT (RFC 9110 §9.3.6).

After :func:`socks5_connect` or :func:`http_connect` returns, the stream carries the
tunnel: TLS and HTTP run on it as on any connection (the stream's events stay those of the
connection to the proxy). A refusal raises :class:`ProxyError` with an OONI failure string
(a SOCKS5 reply code mapped where OONI has a name for it, else ``unknown_failure ...``);
network errors propagate for ``net.errors.classify``.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

from didban.model import failures
from didban.net.stream import Stream

SOCKS_VERSION: Final = 5
NO_AUTH: Final = 0x00
USERNAME_PASSWORD: Final = 0x02
# RFC 1928 §6 reply codes → OONI failure strings
_REPLIES: Final = {
    1: failures.unknown("socks5: general SOCKS server failure"),
    2: failures.unknown("socks5: connection not allowed by ruleset"),
    3: failures.NETWORK_UNREACHABLE,
    4: failures.HOST_UNREACHABLE,
    5: failures.CONNECTION_REFUSED,
    6: failures.GENERIC_TIMEOUT,
    7: failures.unknown("socks5: command not supported"),
    8: failures.unknown("socks5: address type not supported"),
}


class ProxyError(Exception):
    """The proxy refused the tunnel; ``failure`` is an OONI failure string."""

    def __init__(self, failure: str, reply: int | None = None) -> None:
        super().__init__(failure)
        self.failure = failure
        self.reply = reply


async def _exactly(stream: Stream, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = await stream.read(n - len(buf))
        if not data:
            raise ProxyError(failures.EOF_ERROR)
        buf += data
    return buf


def socks5_greeting(auth: bool) -> bytes:
    return bytes([SOCKS_VERSION, 1, USERNAME_PASSWORD if auth else NO_AUTH])


def socks5_request(host: str, port: int) -> bytes:
    """CONNECT to an IP literal (ATYP 1 or 4) or a name the proxy resolves (ATYP 3)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")
        addr = bytes([3, len(name)]) + name
    else:
        addr = bytes([1 if ip.version == 4 else 4]) + ip.packed
    return bytes([SOCKS_VERSION, 1, 0]) + addr + struct.pack("!H", port)


async def socks5_connect(
    stream: Stream,
    host: str,
    port: int,
    *,
    username: bytes | None = None,
    password: bytes | None = None,
) -> None:
    """Negotiate a SOCKS5 CONNECT to ``host:port`` (with username/password when given)."""
    auth = username is not None
    await stream.write(socks5_greeting(auth))
    version, method = await _exactly(stream, 2)
    if version != SOCKS_VERSION or method != (USERNAME_PASSWORD if auth else NO_AUTH):
        raise ProxyError(failures.unknown(f"socks5: no acceptable method ({method})"))
    if auth:
        user, pw = username or b"", password or b"\0"
        await stream.write(bytes([1, len(user)]) + user + bytes([len(pw)]) + pw)
        _, status = await _exactly(stream, 2)
        if status != 0:
            raise ProxyError(failures.unknown("socks5: authentication refused"))
    await stream.write(socks5_request(host, port))
    version, reply, _, atyp = await _exactly(stream, 4)
    if version != SOCKS_VERSION:
        raise ProxyError(failures.unknown("socks5: malformed reply"))
    rest = {1: 4, 4: 16}.get(atyp)
    if rest is None:
        rest = (await _exactly(stream, 1))[0] if atyp == 3 else 0
    await _exactly(stream, rest + 2)
    if reply != 0:
        raise ProxyError(_REPLIES.get(reply, failures.unknown(f"socks5: reply {reply}")), reply)


def pt_arguments(args: dict[str, str]) -> tuple[bytes, bytes]:
    """A bridge's ``k=v`` arguments as the SOCKS5 username and password (pt-spec §3.5:
    ``;``-separated, ``\\`` escaping ``;``, ``=`` and ``\\``; split at 255 bytes; a lone NUL
    password when it all fits in the username)."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace(";", "\\;").replace("=", "\\=")

    encoded = ";".join(f"{escape(k)}={escape(v)}" for k, v in args.items()).encode()
    if len(encoded) <= 255:
        return encoded, b"\0"
    return encoded[:255], encoded[255:]


async def http_connect(stream: Stream, host: str, port: int, *, max_head: int = 16384) -> None:
    """Ask an HTTP proxy for a tunnel to ``host:port``; a 2xx answer opens it."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    await stream.write(
        f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: didban\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        data = await stream.read(4096)
        if not data:
            raise ProxyError(failures.EOF_ERROR)
        head += data
        if len(head) > max_head:
            raise ProxyError(failures.unknown("http proxy: answer too long"))
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProxyError(failures.unknown(f"http proxy: bad answer {status_line[:60]!r}"))
    if not 200 <= int(parts[1]) < 300:
        raise ProxyError(failures.unknown(f"http proxy: {status_line[:80]}"), int(parts[1]))
    if head.index(b"\r\n\r\n") + 4 != len(head):
        raise ProxyError(failures.unknown("http proxy: data after the answer"))
