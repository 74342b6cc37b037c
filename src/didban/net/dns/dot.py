"""DNS over TLS (RFC 7858): the TCP transport's framed lookup over a TLS connection to an
explicit address (default port 853) with a chosen SNI, so no system lookup is needed; the
handshake (chain, verification outcome) is recorded with the query."""

from __future__ import annotations

from dataclasses import dataclass

from didban.net.dns.message import DEFAULT_TIMEOUT, DNSResult
from didban.net.dns.tcp import TLSOptions, framed_lookup
from didban.net.stream import split_address
from didban.net.trace import NO_TRACE, Tracer


@dataclass(frozen=True, slots=True)
class DoT:
    """A DoT resolver at ``server`` (``"ip"`` or ``"ip:port"``) with SNI ``server_name``;
    ``ca_file`` selects the roots, ``verify_peer=False`` records but ignores a failed
    verification."""

    server: str
    server_name: str = ""
    ca_file: str | None = None
    verify_peer: bool = True
    timeout: float = DEFAULT_TIMEOUT

    async def resolve(
        self, hostname: str, *, qtype: str = "A", tracer: Tracer = NO_TRACE
    ) -> DNSResult:
        ip, port = split_address(self.server, 853)
        handshake = TLSOptions(self.server_name, self.ca_file, self.verify_peer)
        return await framed_lookup(
            hostname,
            qtype,
            "dot",
            ip,
            port,
            tracer=tracer,
            timeout=self.timeout,
            tls_options=handshake,
        )
