"""The flows every app experiment is made of, as OONI's ``urlgetter`` makes them: a DNS
lookup, a TCP connect to a host or address, an HTTP(S) request — each recorded into the
measurement's test keys (df-001/002/005/006/008) and summed up as an :class:`Outcome`
(the failure and OONI's ``failed_operation``: ``resolve``, ``connect``,
``tls_handshake``, ``http_round_trip``).

Names go to the system resolver (OONI's IM tests use it too); every answer is annotated
with its AS (``asn``, ``as_org_name``, df-002) from the shipped snapshot, or the lab's
table in lab mode — facebook_messenger judges consistency by it. Catalog addresses are
translated through ``ProbeConfig.address_map`` (the lab's stand-ins) before any connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from didban.data import ipasn
from didban.model import failures
from didban.model.ooni import DNSAnswer, DNSQuery
from didban.model.ooniapps import URLGetterKeys
from didban.net import dns, http, tcp
from didban.net.stream import format_address
from didban.net.trace import EventLog
from didban.probe.config import ProbeConfig

# OONI's operation names (probe-cli netxlite: ResolveOperation, ConnectOperation, ...).
RESOLVE: Final = "resolve"
CONNECT: Final = "connect"
TLS_HANDSHAKE: Final = "tls_handshake"
QUIC_HANDSHAKE: Final = "quic_handshake"
HTTP_ROUND_TRIP: Final = "http_round_trip"


@dataclass
class Outcome:
    """How one flow ended: None, or the failure and the operation that failed."""

    failure: str | None = None
    failed_operation: str | None = None
    addresses: list[str] = field(default_factory=list)  # what the name resolved to
    query: DNSQuery | None = None  # the lookup's own record (flows run side by side)

    @property
    def ok(self) -> bool:
        return self.failure is None


class Context:
    """What the flows of one measurement share: its event log and test keys, the
    resolver, the AS table, the address translation and the timeouts."""

    def __init__(
        self,
        cfg: ProbeConfig,
        keys: URLGetterKeys,
        log: EventLog,
        *,
        resolver: dns.Transport | None = None,
        test_keys: Any = None,
    ) -> None:
        self.cfg = cfg
        self.keys = keys
        self.test_keys: Any = keys if test_keys is None else test_keys
        self.log = log
        self.resolver: dns.Transport = resolver or dns.System(cfg.dns_timeout)
        self._asn = ipasn.default_db().with_overrides(cfg.asn_rows)

    def address(self, ip: str) -> str:
        """The address to contact for a catalog address (the lab's stand-in, if any)."""
        return self.cfg.address_map.get(ip, ip)

    def url(self, url: str) -> str:
        """``url`` with a catalog address as its host replaced by :meth:`address`."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host not in self.cfg.address_map:
            return url
        netloc = self.address(host) + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    def annotate(self, answers: Sequence[DNSAnswer] | None) -> None:
        """Add ``asn`` and ``as_org_name`` to every address answer (df-002)."""
        for a in answers or ():
            ip = a.ipv4 or a.ipv6
            if ip is None:
                continue
            info = self._asn.lookup(ip)
            a.asn = info.asn if info is not None else 0
            a.as_org_name = info.org if info is not None and info.org else None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def lookup(ctx: Context, host: str, tags: Sequence[str]) -> Outcome:
    """Resolve ``host`` with the system resolver; the query goes into ``queries``."""
    result = await ctx.resolver.resolve(host, tracer=ctx.log.flow(tags))
    ctx.annotate(result.query.answers)
    ctx.keys.queries.append(result.query)
    if result.failure is not None:
        return Outcome(result.failure, RESOLVE, query=result.query)
    return Outcome(addresses=list(result.addrs), query=result.query)


async def tcp_connect(ctx: Context, host: str, port: int, tags: Sequence[str]) -> Outcome:
    """OONI ``tcpconnect://host:port``: resolve (unless an address), then :func:`connect`."""
    if is_ip(host):
        return await connect(ctx, [ctx.address(host)], port, tags)
    found = await lookup(ctx, host, tags)
    if not found.ok:
        return found
    return await connect(ctx, found.addresses, port, tags)


async def connect(
    ctx: Context, addresses: Sequence[str], port: int, tags: Sequence[str]
) -> Outcome:
    """Connect to ``addresses`` in turn until one accepts (that connection is closed at
    once); the last failure when none did."""
    failure: str = failures.DNS_NO_ANSWER
    for ip in addresses:
        r = await tcp.connect(ip, port, tracer=ctx.log.flow(tags), timeout=ctx.cfg.tcp_timeout)
        ctx.keys.tcp_connect.append(r.record)
        if r.stream is not None:
            r.stream.close()
            return Outcome(addresses=list(addresses))
        failure = r.failure or failure
    return Outcome(failure, CONNECT, list(addresses))


async def http_request(
    ctx: Context,
    url: str,
    tags: Sequence[str],
    *,
    method: str = "GET",
    ca_file: str | None = None,
) -> Outcome:
    """OONI ``urlgetter`` of ``url`` (redirects followed): every hop's lookup, connect,
    handshake and request recorded; ``ca_file`` replaces the configured roots."""
    target = ctx.url(url)
    host = urlsplit(target).hostname or ""
    resolved: list[Outcome] = []

    async def resolver(name: str) -> list[str] | str:
        found = await lookup(ctx, name, tags)
        resolved.append(found)
        return found.addresses if found.ok else str(found.failure)

    options = http.FetchOptions(
        ca_file=ca_file if ca_file is not None else ctx.cfg.ca_file,
        tcp_timeout=ctx.cfg.tcp_timeout,
        tls_timeout=ctx.cfg.tls_timeout,
        timeout=ctx.cfg.http_timeout,
        max_redirects=ctx.cfg.max_redirects,
        body_cap=ctx.cfg.body_cap,
    )
    res = await http.fetch(
        target, resolver=resolver, tracer=ctx.log.tagged(tags), options=options, method=method
    )
    ctx.keys.requests.extend(res.requests)
    ctx.keys.tcp_connect.extend(res.tcp_connect)
    ctx.keys.tls_handshakes.extend(res.tls_handshakes)
    addresses = resolved[0].addresses if resolved else ([host] if is_ip(host) else [])
    if res.failure is None:
        return Outcome(addresses=addresses)
    return Outcome(res.failure, _failed_operation(res, resolved), addresses)


def _failed_operation(res: http.FetchResult, resolved: list[Outcome]) -> str:
    """Which step of the last hop failed: its lookup, every connect, the handshake, or
    the round trip after it."""
    last = res.requests[0] if res.requests else None
    failed_lookup = resolved[-1].failure if resolved and not resolved[-1].ok else None
    if last is not None and failed_lookup is not None and last.failure == failed_lookup:
        return RESOLVE
    address = last.address if last is not None else ""
    tried = [c for c in res.tcp_connect if format_address(c.ip, c.port) == address]
    if tried and all(not c.status.success for c in tried):
        return CONNECT
    handshakes = [h for h in res.tls_handshakes if h.address == address]
    if handshakes and handshakes[-1].failure is not None:
        return TLS_HANDSHAKE
    return HTTP_ROUND_TRIP


async def gather(limit: int, flows: Sequence[Coroutine[Any, Any, Outcome]]) -> list[Outcome]:
    """Run ``flows`` with at most ``limit`` at once; their outcomes in order."""
    sem = asyncio.Semaphore(limit)

    async def one(flow: Coroutine[Any, Any, Outcome]) -> Outcome:
        async with sem:
            return await flow

    return list(await asyncio.gather(*(one(f) for f in flows)))
