"""DNS over TCP (RFC 1035 §4.2.2: two-byte length framing), and the framed lookup DoT runs
over TLS (RFC 7858): connect, handshake when asked, one query, one reply.

The connect and the handshake each get what is left of the lookup's budget and record
their own timeout; an outer limit a little later (``STEP_GRACE``) only bounds the
exchange, so it never cancels a step before that step's record is written.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from didban.model import failures
from didban.net import errors, tcp, tls, trace
from didban.net.dns.message import (
    DEFAULT_TIMEOUT,
    STEP_GRACE,
    DNSResult,
    Records,
    make_query,
    matches,
    parse_reply,
)
from didban.net.stream import Stream, format_address, split_address
from didban.net.trace import NO_TRACE, Tracer


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """The handshake of a DoT lookup: SNI, roots, and whether a failed verification
    stops the lookup."""

    server_name: str
    ca_file: str | None = None
    verify_peer: bool = True


@dataclass(frozen=True, slots=True)
class TCP:
    """A DNS server at ``server`` (``"ip"`` or ``"ip:port"``, default port 53) over TCP."""

    server: str
    timeout: float = DEFAULT_TIMEOUT

    async def resolve(
        self, hostname: str, *, qtype: str = "A", tracer: Tracer = NO_TRACE
    ) -> DNSResult:
        ip, port = split_address(self.server, 53)
        return await framed_lookup(
            hostname, qtype, "tcp", ip, port, tracer=tracer, timeout=self.timeout
        )


async def _read_exact(stream: Stream, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        chunk = await stream.read(65536)
        if not chunk:
            raise errors.NetFailure(failures.EOF_ERROR, "connection closed mid-reply")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


async def framed_lookup(
    hostname: str,
    qtype: str,
    engine: str,
    ip: str,
    port: int,
    *,
    tracer: Tracer,
    timeout: float,
    tls_options: TLSOptions | None = None,
) -> DNSResult:
    """One query over a TCP (``tls_options``: TLS) connection to ``ip:port``, recorded
    as engine ``engine`` with the connection's ``tcp_connect``/``tls_handshakes``."""
    address = format_address(ip, port)
    records = Records(hostname, qtype, engine, address, tracer)
    query = make_query(hostname, qtype)
    tracer.event(trace.RESOLVE_START, address=address)
    t0 = tracer.now()
    result = DNSResult(records.query(None, None, t0, t0))
    failure: str | None = None
    wire = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def left() -> float:
        return max(deadline - loop.time(), 0.001)

    try:
        async with asyncio.timeout_at(deadline + STEP_GRACE):
            connected = await tcp.connect(ip, port, tracer=tracer, timeout=left())
            result.tcp_connect.append(connected.record)
            stream: Stream | None = connected.stream
            if connected.stream is not None and tls_options is not None:
                handshake = await tls.handshake(
                    connected.stream,
                    server_name=tls_options.server_name,
                    alpn=("dot",),
                    ca_file=tls_options.ca_file,
                    verify_peer=tls_options.verify_peer,
                    timeout=left(),
                )
                result.tls_handshakes.append(handshake.record)
                stream = handshake.stream
                failure = handshake.failure
            elif stream is None:
                failure = connected.failure
            if stream is not None:
                try:
                    await stream.write(struct.pack("!H", len(query.wire)) + query.wire)
                    buf = bytearray()
                    (length,) = struct.unpack("!H", await _read_exact(stream, 2, buf))
                    wire = await _read_exact(stream, length, buf)
                finally:
                    stream.close()
    except Exception as exc:
        failure = errors.classify(exc)
    t = tracer.now()
    if failure is None:
        reply = parse_reply(wire)
        if reply is not None and matches(query, reply):
            result.query = records.from_reply(wire, reply, t0, t)
        else:
            failure = failures.DNS_SERVER_MISBEHAVING
    if failure is not None:
        result.query = records.query(failure, None, t0, t)
    tracer.event(trace.RESOLVE_DONE, t0=t0, t=t, address=address, failure=result.failure)
    return result
