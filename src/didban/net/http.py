"""HTTP over didban's own TCP/TLS streams: one request, one hop, and a whole fetch.

* :func:`request_on_stream` — one request on an open stream: HTTP/2 when the stream
  negotiated ``h2``, else HTTP/1.1 (DoH and the control client use it directly);
* :func:`exchange` — the same, recorded as an OONI ``httpt`` transaction;
* :func:`fetch_hop` — one hop of a fetch: where to connect (a given stream or address, an
  IP literal, or what the caller's resolver says), TCP (+TLS) to the first address that
  works, the recorded request;
* :func:`fetch` — hops until the response is final, the redirect and cookie decisions
  taken by :mod:`didban.net.redirects`.

Name resolution is the caller's: ``fetch`` asks the :data:`Resolver` it is given (the DNS
transports of :mod:`didban.net.dns` make one), so HTTP never depends on DNS. Each
connection is a flow of its own (``tracer.next()``); records are newest first (OONI).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from didban.model import failures
from didban.model.ooni import HTTPTransaction, TCPConnect, TLSHandshake
from didban.net import errors, http1, http2, redirects, tcp, tls
from didban.net.httprecord import TransactionBuilder
from didban.net.httpwire import (
    DEFAULT_BODY_CAP,
    DEFAULT_HEADERS,
    DEFAULT_TIMEOUT,
    BodySink,
    RawResponse,
    authority,
    target,
)
from didban.net.stream import Stream, format_address, split_address
from didban.net.trace import NO_TRACE, Tracer

# host name → its addresses (IP literals), or an OONI failure string when resolution failed.
Resolver = Callable[[str], Awaitable[list[str] | str]]


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """How a fetch is made, the same for every hop: the request headers (without Host),
    ALPN, the roots and whether a failed verification stops the hop, the redirect limit,
    the body cap, and the timeouts (``timeout`` bounds each request once connected)."""

    headers: Sequence[tuple[str, str]] = DEFAULT_HEADERS
    alpn: Sequence[str] = tls.DEFAULT_ALPN
    ca_file: str | None = None
    verify_peer: bool = True
    max_redirects: int = redirects.MAX_REDIRECTS
    body_cap: int = DEFAULT_BODY_CAP
    tcp_timeout: float = tcp.DEFAULT_TIMEOUT
    tls_timeout: float = tls.DEFAULT_TIMEOUT
    timeout: float = DEFAULT_TIMEOUT


@dataclass
class Hop:
    """One hop: its transaction, the response (None when it failed before one came), the
    connections it tried, and whether the request was sent (False: the hop failed at DNS,
    TCP or TLS, and its transaction only carries that failure)."""

    transaction: HTTPTransaction
    response: RawResponse | None = None
    tcp_connect: list[TCPConnect] = field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = field(default_factory=list)
    sent: bool = True

    @property
    def failure(self) -> str | None:
        return self.transaction.failure


@dataclass
class FetchResult:
    """Everything one :func:`fetch` did; ``requests`` is newest first (OONI order)."""

    requests: list[HTTPTransaction] = field(default_factory=list)
    tcp_connect: list[TCPConnect] = field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = field(default_factory=list)
    failure: str | None = None  # the final hop's failure (http_experiment_failure)
    final_url: str = ""
    final_body: bytes = b""
    throughput: float | None = None  # body bytes/s of the last response received


async def request_on_stream(
    stream: Stream,
    url: str,
    *,
    method: str = "GET",
    host_header: str | None = None,
    headers: Sequence[tuple[str, str]] = DEFAULT_HEADERS,
    body: bytes = b"",
    body_cap: int = DEFAULT_BODY_CAP,
    timeout: float = DEFAULT_TIMEOUT,
) -> RawResponse:
    """One request on an open stream: h2 if the stream negotiated ``h2``, else HTTP/1.1.

    Raises the network/protocol exception on failure (classify with ``net.errors``).
    """
    scheme, host, port, path = target(url)
    host_value = host_header or authority(host, port, scheme)
    return await _request(
        stream, scheme, path, host_value, method, headers, body, body_cap, timeout
    )


async def _request(
    stream: Stream,
    scheme: str,
    path: str,
    host_value: str,
    method: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    body_cap: int,
    timeout: float,
) -> RawResponse:
    sink = BodySink(body_cap)
    async with asyncio.timeout(timeout):
        if stream.alpn == "h2":
            conn = http2.Connection(stream)
            return await conn.request(method, scheme, host_value, path, headers, body, sink)
        return await http1.request(stream, method, path, host_value, headers, body, sink)


async def exchange(
    stream: Stream,
    url: str,
    *,
    tracer: Tracer = NO_TRACE,
    options: FetchOptions = FetchOptions(),
    method: str = "GET",
    headers: Sequence[tuple[str, str]] | None = None,
    body: bytes = b"",
    host_header: str | None = None,
    t0: float | None = None,
) -> tuple[HTTPTransaction, RawResponse | None]:
    """One recorded request on an open stream (closed afterwards): the transaction and
    the response, if one came. ``headers`` default to the options'; ``t0`` (default:
    now) is when the transaction began."""
    scheme, host, port, path = target(url)
    host_value = host_header or authority(host, port, scheme)
    sent = options.headers if headers is None else headers
    builder = TransactionBuilder(tracer, url, method, [("Host", host_value), *sent], t0=t0)
    builder.start(stream.address)
    raw: RawResponse | None = None
    failure: str | None = None
    try:
        raw = await _request(
            stream,
            scheme,
            path,
            host_value,
            method,
            sent,
            body,
            options.body_cap,
            options.timeout,
        )
    except Exception as exc:
        failure = errors.classify(exc)
    finally:
        stream.close()
    return builder.done(raw, failure, stream.alpn), raw


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def fetch_hop(
    request: redirects.Request,
    *,
    tracer: Tracer,
    resolver: Resolver,
    options: FetchOptions,
    headers: Sequence[tuple[str, str]] | None = None,
    address: str | None = None,
    server_name: str | None = None,
    host_header: str | None = None,
    stream: Stream | None = None,
) -> Hop:
    """One hop: connect, send ``request`` (an absolute http(s) URL), read the response.

    Where to connect: ``stream`` (an open, for https verified, connection; its records
    are the caller's, the request is recorded with ``tracer``), else ``address``
    (``"ip"``/``"ip:port"``), else the URL's host when it is an IP literal, else the
    addresses ``resolver`` gives, tried in order until one connects (each a new flow of
    ``tracer``). ``server_name``/``host_header`` override SNI and Host. A hop that
    fails before a request was sent is still a transaction, with the failure (and
    ``Hop.sent`` False).
    """
    scheme, host, port, _ = target(request.url)
    sent = list(options.headers if headers is None else headers)
    host_value = host_header or authority(host, port, scheme)
    hop_t0 = tracer.now()

    def unsent(flow: Tracer, failure: str | None, used: str = "") -> HTTPTransaction:
        builder = TransactionBuilder(
            flow, request.url, request.method, [("Host", host_value), *sent], t0=hop_t0
        )
        return builder.record(None, failure, used)

    conn, flow = stream, tracer
    tcp_records: list[TCPConnect] = []
    tls_records: list[TLSHandshake] = []
    if conn is None:
        candidates: list[tuple[str, int]]
        if address:
            candidates = [split_address(address, port)]
        elif _is_ip(host):
            candidates = [(host, port)]
        else:
            resolved = await resolver(host)
            if isinstance(resolved, str):
                return Hop(unsent(tracer, resolved), sent=False)
            if not resolved:
                return Hop(unsent(tracer, failures.DNS_NO_ANSWER), sent=False)
            candidates = [(ip, port) for ip in resolved]
        sni = server_name if server_name is not None else ("" if _is_ip(host) else host)
        failure: str | None = None
        for ip, p in candidates:
            flow = tracer.next()
            if scheme == "https":
                tcp_r, tls_r = await tls.connect_tls(
                    ip,
                    p,
                    server_name=sni,
                    tracer=flow,
                    alpn=options.alpn,
                    ca_file=options.ca_file,
                    verify_peer=options.verify_peer,
                    tcp_timeout=options.tcp_timeout,
                    tls_timeout=options.tls_timeout,
                )
                tcp_records.append(tcp_r.record)
                if tls_r is not None:
                    tls_records.append(tls_r.record)
                    conn, failure = tls_r.stream, tls_r.failure
                else:
                    failure = tcp_r.failure
            else:
                tcp_r = await tcp.connect(ip, p, tracer=flow, timeout=options.tcp_timeout)
                tcp_records.append(tcp_r.record)
                conn, failure = tcp_r.stream, tcp_r.failure
            if conn is not None:
                break
        else:
            tx = unsent(flow, failure, format_address(*candidates[-1]))
            return Hop(tx, None, tcp_records, tls_records, sent=False)
    tx, raw = await exchange(
        conn,
        request.url,
        tracer=flow,
        options=options,
        method=request.method,
        headers=sent,
        body=request.body,
        host_header=host_value,
        t0=hop_t0,
    )
    return Hop(tx, raw, tcp_records, tls_records)


@dataclass
class Chain:
    """The hops of one fetch, oldest first, and how the chain ended: ``failure`` is the
    last hop's or why it stopped; ``unfollowed`` records a redirect to a URL didban
    cannot fetch (``http_unexpected_redirect_url``), an attempt that was not made."""

    hops: list[Hop] = field(default_factory=list)
    failure: str | None = None
    final_url: str = ""
    unfollowed: HTTPTransaction | None = None

    @property
    def requests(self) -> list[HTTPTransaction]:
        """Every transaction, newest first (OONI order)."""
        newest = [h.transaction for h in reversed(self.hops)]
        return newest if self.unfollowed is None else [self.unfollowed, *newest]

    @property
    def last_response(self) -> RawResponse | None:
        """The last response received (the final one when the chain ended well)."""
        return next((h.response for h in reversed(self.hops) if h.response is not None), None)


# makes one hop: the request and its headers (the options' and the host's cookies)
HopMaker = Callable[[redirects.Request, list[tuple[str, str]]], Awaitable[Hop]]


async def follow_redirects(
    request: redirects.Request,
    make_hop: HopMaker,
    *,
    options: FetchOptions,
    tracer: Tracer = NO_TRACE,
) -> Chain:
    """Hop until the response is final or :func:`redirects.follow` stops the chain.

    ``make_hop`` makes each hop (``fetch`` connects as :func:`fetch_hop` does; the probe
    makes the first on an endpoint's connection); cookies are kept per host across hops.
    ``tracer`` records the unfollowed attempt, if any.
    """
    chain = Chain(final_url=request.url)
    cookies: redirects.Cookies = {}
    while True:
        chain.final_url = request.url
        headers = list(options.headers)
        cookie = redirects.cookie_header(cookies, request.url)
        if cookie is not None:
            headers.append(("Cookie", cookie))
        hop = await make_hop(request, headers)
        chain.hops.append(hop)
        chain.failure = hop.failure
        if hop.response is None:
            return chain
        cookies = redirects.keep_cookies(cookies, request.url, hop.response.headers)
        after = redirects.follow(
            request, hop.response.status, hop.response.headers, options.max_redirects
        )
        if after.failure is not None:
            chain.failure = after.failure
            if after.request is not None:
                chain.final_url = after.request.url
                builder = TransactionBuilder(
                    tracer, after.request.url, after.request.method, options.headers
                )
                chain.unfollowed = builder.record(None, after.failure)
            return chain
        if after.request is None:
            return chain
        request = after.request


async def fetch(
    url: str,
    *,
    resolver: Resolver,
    tracer: Tracer = NO_TRACE,
    options: FetchOptions = FetchOptions(),
    method: str = "GET",
    body: bytes = b"",
    address: str | None = None,
    server_name: str | None = None,
    host_header: str | None = None,
    stream: Stream | None = None,
) -> FetchResult:
    """Fetch ``url`` following redirects; never raises for network failures.

    ``address``, ``server_name``, ``host_header`` and ``stream`` apply to the first hop
    only (see :func:`fetch_hop`); every later hop asks ``resolver``. A hop that made no
    connection is recorded with ``tracer``'s own transaction id (0 for
    :meth:`~didban.net.trace.EventLog.tagged`).
    """
    try:
        target(url)
    except ValueError:
        if stream is not None:
            stream.close()
        failure = failures.unknown(f"unsupported URL {url!r}")
        builder = TransactionBuilder(tracer, url, method, options.headers)
        return FetchResult(requests=[builder.record(None, failure)], failure=failure, final_url=url)

    async def make_hop(request: redirects.Request, headers: list[tuple[str, str]]) -> Hop:
        if request.hop > 0:
            return await fetch_hop(
                request, tracer=tracer, resolver=resolver, options=options, headers=headers
            )
        return await fetch_hop(
            request,
            tracer=tracer,
            resolver=resolver,
            options=options,
            headers=headers,
            address=address,
            server_name=server_name,
            host_header=host_header,
            stream=stream,
        )

    chain = await follow_redirects(
        redirects.Request(url, method, body), make_hop, options=options, tracer=tracer
    )
    last = chain.last_response
    return FetchResult(
        requests=chain.requests,
        tcp_connect=[r for h in chain.hops for r in h.tcp_connect],
        tls_handshakes=[r for h in chain.hops for r in h.tls_handshakes],
        failure=chain.failure,
        final_url=chain.final_url,
        final_body=last.body if last is not None else b"",
        throughput=last.throughput if last is not None else None,
    )
