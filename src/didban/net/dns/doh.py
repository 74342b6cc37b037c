"""DNS over HTTPS (RFC 8484, POST ``application/dns-message``): a DNS transport over
didban's HTTP client, to an explicit bootstrap address, so no system lookup is needed.

Opening a TLS connection per lookup costs a handshake on both sides (~14 ms of CPU per
lookup with h2 set-up, measured in bench/probe_throughput.py). A :class:`DoHSession` keeps
one connection to a DoH server open and multiplexes every lookup of a run over it as its
own HTTP/2 stream (RFC 8484 §5 recommends exactly this; :mod:`didban.net.http2` with its
reader task). Evidence is kept per lookup:

* the lookup that opens a connection records its ``tcp_connect`` and ``tls_handshakes``
  (with the certificate chain and the verification outcome);
* every lookup records its own HTTP exchange (``requests``: POST, status, headers, the
  DNS answer as base64 body, address, ALPN, timings, newest first) and whether the
  connection was reused (``reused_connection``);
* a lookup never waits for another one's connection: when none is open (first lookups,
  after a failure or a GOAWAY) it opens its own, so a blocked DoH server shows its
  failure in every measurement; a request that fails on a *reused* connection before any
  answer is retried once on a fresh connection (both attempts are recorded).

The reads and writes of a shared connection are no lookup's network events (it outlives
the lookup that opened it); each lookup has its ``http_transaction_*`` markers instead.
If the server does not negotiate ``h2`` the exchange runs over HTTP/1.1 on a connection
of its own, closed afterwards. ``resolver_address`` in the record is the DoH URL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from didban.model import failures
from didban.model.ooni import HTTPTransaction, TCPConnect, TLSHandshake
from didban.net import errors, http, http2, tcp, tls, trace
from didban.net.dns import message
from didban.net.httprecord import TransactionBuilder
from didban.net.httpwire import BodySink, RawResponse, authority
from didban.net.stream import format_address, split_address
from didban.net.trace import NO_TRACE, Tracer

DNS_MESSAGE = "application/dns-message"
# The request headers of every DoH exchange, as sent and as recorded.
HEADERS = (("Content-Type", DNS_MESSAGE), ("Accept", DNS_MESSAGE))
MAX_MESSAGE = 65535


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"a DoH URL must be https://host/path, not {url!r}")


@dataclass
class Exchange:
    """What one DoH request did: connection records (if it opened one), its HTTP
    attempts as transactions (oldest first), and the last attempt's reply or failure."""

    tcp_connect: list[TCPConnect] = field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = field(default_factory=list)
    transactions: list[HTTPTransaction] = field(default_factory=list)
    reply: RawResponse | None = None
    failure: str | None = failures.unknown("no DoH request was made")
    reused: bool = False


class DoHSession:
    """Lookups to one DoH server over one shared HTTP/2 connection (per event loop).

    ``url`` is the DoH URL (its host is SNI and ``:authority``), ``bootstrap_address``
    (``ip`` or ``ip:port``) where to connect. Call :meth:`close` when the run ends.
    """

    def __init__(
        self,
        url: str,
        bootstrap_address: str,
        *,
        ca_file: str | None = None,
        verify_peer: bool = True,
    ) -> None:
        _check_url(url)
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or ""
        self.ip, self.port = split_address(bootstrap_address, parts.port or 443)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.authority = authority(self.host, parts.port or 443, "https")
        self.ca_file = ca_file
        self.verify_peer = verify_peer
        self._conn: http2.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def matches(self, url: str, bootstrap_address: str) -> bool:
        parts = urlsplit(url)
        where = split_address(bootstrap_address, parts.port or 443)
        return url == self.url and where == (self.ip, self.port)

    def _live(self) -> http2.Connection | None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (e.g. a second asyncio.run)
            if self._conn is not None:  # its reader task died with the old loop
                self._conn.stream.close()
            self._conn, self._loop = None, loop
        if self._conn is not None and self._conn.dead is not None:
            self._conn.close()
            self._conn = None
        return self._conn

    async def exchange(
        self, body: bytes, *, tracer: Tracer, timeout: float, into: Exchange | None = None
    ) -> Exchange:
        """POST ``body`` (a DNS query in wire format); raises only on cancellation/timeout.

        Records go into ``into`` (if given) as they happen, so a caller's deadline that
        cancels the exchange still keeps what was measured (e.g. the TCP connect).
        """
        ex = into if into is not None else Exchange()
        conn = self._live()
        ex.reused = conn is not None

        def attempt() -> TransactionBuilder:
            return TransactionBuilder(tracer, self.url, "POST", HEADERS, binary_body=True)

        def end(
            builder: TransactionBuilder, raw: RawResponse | None, failure: str | None, alpn: str
        ) -> None:
            ex.transactions.append(builder.done(raw, failure, alpn))
            ex.reply, ex.failure = raw, failure

        if conn is not None:
            builder = attempt()
            builder.start(conn.address)
            try:
                raw = await conn.request(
                    "POST", "https", self.authority, self.path, HEADERS, body, BodySink(MAX_MESSAGE)
                )
            except Exception as exc:
                end(builder, None, errors.classify(exc), "h2")
            else:
                end(builder, raw, None, "h2")
                return ex
        # open a connection of our own (first lookups, or the shared one failed); the
        # connect and the handshake share the budget, so each records its own timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def left() -> float:
            return max(deadline - loop.time(), 0.001)

        # the connection's records share the lookup's flow (transaction id)
        connected = await tcp.connect(self.ip, self.port, tracer=tracer, timeout=left())
        ex.tcp_connect.append(connected.record)
        handshake: tls.TLSResult | None = None
        if connected.stream is not None:
            handshake = await tls.handshake(
                connected.stream,
                server_name=self.host,
                ca_file=self.ca_file,
                verify_peer=self.verify_peer,
                timeout=left(),
            )
            ex.tls_handshakes.append(handshake.record)
        address = format_address(self.ip, self.port)
        if handshake is None or handshake.stream is None:
            failed = (handshake or connected).failure
            ex.transactions.append(attempt().record(None, failed, address))
            ex.reply, ex.failure = None, failed
            return ex
        stream = handshake.stream
        builder = attempt()
        builder.start(address)
        if stream.alpn != "h2":
            try:
                raw = await http.request_on_stream(
                    stream,
                    self.url,
                    method="POST",
                    headers=HEADERS,
                    body=body,
                    body_cap=MAX_MESSAGE,
                    timeout=timeout,
                )
            except Exception as exc:
                end(builder, None, errors.classify(exc), stream.alpn)
            else:
                end(builder, raw, None, stream.alpn)
            finally:
                stream.close()
            return ex
        # the connection outlives this lookup: its reads and writes are no lookup's events
        stream.raw.tracer = NO_TRACE
        new = http2.Connection(stream)
        new.start_reader()
        try:
            raw = await new.request(
                "POST", "https", self.authority, self.path, HEADERS, body, BodySink(MAX_MESSAGE)
            )
        except BaseException as exc:
            new.close()
            if not isinstance(exc, Exception):
                raise
            end(builder, None, errors.classify(exc), "h2")
            return ex
        end(builder, raw, None, "h2")
        if self._live() is None:
            self._conn = new  # share it with every later lookup
        else:
            new.close()  # another lookup's connection is already shared
        return ex

    def close(self) -> None:
        """Close the shared connection (if any); later lookups open a new one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True, slots=True)
class DoH:
    """A DoH resolver at ``url``, reached at ``bootstrap_address`` (``"ip"`` or
    ``"ip:port"``); the URL host is the SNI and ``:authority``/Host.

    With ``session`` (a :class:`DoHSession` for the same URL and address) lookups run on
    the session's shared HTTP/2 connection; without one each lookup opens a connection
    of its own and closes it. Either way ``requests`` holds the HTTP exchange (and
    ``tcp_connect``/``tls_handshakes`` the connection it opened, if any).
    """

    url: str
    bootstrap_address: str
    ca_file: str | None = None
    verify_peer: bool = True
    timeout: float = message.DEFAULT_TIMEOUT
    session: DoHSession | None = None

    def __post_init__(self) -> None:
        _check_url(self.url)

    async def resolve(
        self, hostname: str, *, qtype: str = "A", tracer: Tracer = NO_TRACE
    ) -> message.DNSResult:
        shared = self.session is not None and self.session.matches(self.url, self.bootstrap_address)
        session = self.session if shared and self.session is not None else None
        if session is None:
            session = DoHSession(
                self.url, self.bootstrap_address, ca_file=self.ca_file, verify_peer=self.verify_peer
            )
        records = message.Records(hostname, qtype, "doh", self.url, tracer)
        query = message.make_query(hostname, qtype, doh=True)
        tracer.event(trace.RESOLVE_START, address=self.url)
        t0 = tracer.now()
        result = message.DNSResult(records.query(None, None, t0, t0))
        failure: str | None = None
        wire = b""
        ex = Exchange()
        try:
            # the session's connect and handshake time out first (and are recorded)
            async with asyncio.timeout(self.timeout + message.STEP_GRACE):
                await session.exchange(query.wire, tracer=tracer, timeout=self.timeout, into=ex)
        except Exception as exc:
            failure = errors.classify(exc)
        finally:
            if not shared:
                session.close()
        result.tcp_connect.extend(ex.tcp_connect)
        result.tls_handshakes.extend(ex.tls_handshakes)
        result.reused_connection = ex.reused
        result.requests.extend(reversed(ex.transactions))  # newest first
        if failure is None:  # else the deadline (or a bug) ended the exchange
            failure = ex.failure
            if failure is None and ex.reply is not None:
                if ex.reply.status != 200:
                    failure = failures.HTTP_UNEXPECTED_STATUS_CODE
                else:
                    wire = ex.reply.body
        t = tracer.now()
        if failure is None:
            reply = message.parse_reply(wire)
            if reply is not None and message.matches(query, reply, check_id=False):
                result.query = records.from_reply(wire, reply, t0, t)
            else:
                failure = failures.DNS_SERVER_MISBEHAVING
        if failure is not None:
            result.query = records.query(failure, None, t0, t)
        tracer.event(trace.RESOLVE_DONE, t0=t0, t=t, address=self.url, failure=result.failure)
        return result
