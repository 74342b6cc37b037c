"""What one web_connectivity measurement has found so far, shared by its flows.

Each flow (DNS resolvers, endpoints, control, HTTP, QUIC) adds its records to the test
keys here as soon as it has them, so when the URL's deadline cuts the measurement short
the state is what gets written. Addresses carry the resolvers that gave them (OONI LTE's
origin flags); the HTTP fetch prefers system-resolver addresses, then UDP, then DoH.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from didban.model.ooni import TCPConnect, TLSHandshake, WebConnectivityTestKeys
from didban.net.stream import Stream
from didban.net.trace import EventLog, Tracer

# Address origins, OONI LTE style (system first in the HTTP priority order).
SYSTEM, UDP, DOH = "system", "udp", "doh"
PRIORITY = {SYSTEM: 0, UDP: 1, DOH: 2}


@dataclass(frozen=True, slots=True)
class Target:
    """The URL measured, taken apart once."""

    url: str
    scheme: str
    host: str
    port: int  # the URL's port, or the scheme's default
    explicit_port: bool

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(url, parts.scheme, parts.hostname or "", port, parts.port is not None)


@dataclass(slots=True)
class Endpoint:
    """One endpoint flow: TCP (and for https TLS) to ``ip:port``; ``ip_check`` marks the
    :443 check of an http URL's addresses (OONI extension E001)."""

    ip: str
    port: int
    origins: set[str]
    tls: bool
    ip_check: bool = False
    tracer: Tracer | None = None
    tcp: TCPConnect | None = None
    handshake: TLSHandshake | None = None
    stream: Stream | None = None  # kept open until the fetch has picked its connection

    @property
    def ok(self) -> bool:
        if self.tcp is None or self.tcp.status.failure is not None:
            return False
        return not self.tls or (self.handshake is not None and self.handshake.failure is None)

    @property
    def rank(self) -> int:
        return min(PRIORITY.get(o, 3) for o in self.origins) if self.origins else 3

    @property
    def failure(self) -> str | None:
        """The flow's failure: the handshake's, else the connect's."""
        if self.handshake is not None and self.handshake.failure:
            return self.handshake.failure
        return self.tcp.status.failure if self.tcp is not None else None


def _doh_keys() -> dict[str, Any]:
    return {"queries": [], "tcp_connect": [], "tls_handshakes": [], "requests": []}


@dataclass(slots=True)
class State:
    """Everything measured so far; on a deadline this is what gets written."""

    tk: WebConnectivityTestKeys
    log: EventLog
    addrs: dict[str, set[str]] = field(default_factory=dict)  # ip -> origins, insertion order
    doh: dict[str, Any] = field(default_factory=_doh_keys)
    endpoints: list[Endpoint] = field(default_factory=list)
    system_done: bool = False  # the system resolver's query is recorded
    http_started: bool = False
    http_done: bool = False
    control_done: bool = False
    # set when the UDP resolver's first reply is in (or it failed): its addresses are known,
    # though the lookup keeps listening for late replies
    udp_answered: asyncio.Event = field(default_factory=asyncio.Event)

    def add_addresses(self, addrs: list[str], origin: str) -> None:
        for a in addrs:
            self.addrs.setdefault(a, set()).add(origin)
