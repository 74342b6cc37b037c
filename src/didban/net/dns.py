"""DNS lookups recorded as OONI ``dnst`` queries: UDP (with late replies), TCP, DoT, DoH, system.

UDP uses our own socket and keeps listening after the first reply (default 500 ms, OONI
LTE) so an injected answer and the genuine one are both kept, in arrival order: the first
reply is the query result, later ones go to ``duplicates`` (``x_dns_duplicate_responses``).
DoT and DoH run over didban's own TCP/TLS/HTTP code with an explicit server address, so
no system lookup is needed. The system resolver is ``getaddrinfo`` in a thread, recorded
as OONI engine ``getaddrinfo`` with query type ``ANY``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import dns.exception
import dns.flags
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import msgspec

from didban.model import failures as F
from didban.model.ooni import (
    DNSAnswer,
    DNSDuplicateResponse,
    DNSQuery,
    HTTPTransaction,
    TCPConnect,
    TLSHandshake,
)
from didban.net import dnswire, errors, guard
from didban.net import doh as dohmod
from didban.net import http as httpmod
from didban.net import tcp as tcpmod
from didban.net import tls as tlsmod
from didban.net import trace as tr
from didban.net.stream import Stream, format_address, split_address

# The request headers recorded for every DoH exchange (RFC 8484 POST).
_DOH_HEADERS = (("Content-Type", dohmod.DNS_MESSAGE), ("Accept", dohmod.DNS_MESSAGE))

DEFAULT_TIMEOUT = 4.0
# How long after a stream or DoH lookup's deadline its outer limit fires: its connect and
# TLS steps time out first, so their records (and failure strings) are kept. A lookup can
# therefore last up to timeout + STEP_GRACE.
STEP_GRACE = 0.25
DEFAULT_DUPLICATE_WAIT = 0.5


@dataclass
class DNSResult:
    """One lookup: the OONI query, late replies, and the connections DoT/DoH made."""

    query: DNSQuery
    duplicates: list[DNSDuplicateResponse] = field(default_factory=list)
    tcp_connect: list[TCPConnect] = field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = field(default_factory=list)
    requests: list[HTTPTransaction] = field(default_factory=list)  # DoH exchanges, newest first
    reused_connection: bool = False  # DoH: the lookup ran on an already open connection

    @property
    def failure(self) -> str | None:
        return self.query.failure

    @property
    def addrs(self) -> list[str]:
        """IPv4/IPv6 addresses of the (first) answer, in answer order, deduplicated."""
        return answer_addrs(self.query.answers)


async def resolve_udp(
    hostname: str,
    server: str,
    *,
    trace: tr.Trace,
    qtype: str = "A",
    timeout: float = DEFAULT_TIMEOUT,
    wait_duplicates: float = DEFAULT_DUPLICATE_WAIT,
    tags: list[str] | None = None,
    transaction_id: int | None = None,
    on_answer: Callable[[DNSResult], None] | None = None,
    on_duplicate: Callable[[DNSDuplicateResponse], None] | None = None,
) -> DNSResult:
    """Query ``server`` (``"ip"`` or ``"ip:port"``, default port 53) over UDP.

    After the first matching reply the socket keeps listening for ``wait_duplicates``
    seconds, so an injected answer and the genuine one are both kept.

    ``on_answer`` (if given) is called exactly once, with the lookup's result as soon as it
    is known: the first reply's, so a caller can use the addresses during that wait; or,
    when no reply came, the failure (``generic_timeout_error`` also when the caller is
    cancelled first). ``on_duplicate`` is called with every other reply (later ones, and
    those with another query id) as it arrives. So a caller cancelled at any point still
    has the query and every reply so far. The returned result has the same answer, plus the
    duplicates in arrival order. The callbacks must not raise: an exception in one is
    recorded as the lookup's network failure."""
    ip, port = split_address(server, 53)
    tid = trace.new_transaction_id() if transaction_id is None else transaction_id
    address = format_address(ip, port)
    query = _make_query(hostname, qtype)
    wire = query.to_wire()
    base = _Base(hostname, qtype, "udp", address, tags, tid)
    trace.event(tr.RESOLVE_START, address=address, tags=tags, transaction_id=tid)
    guard.check(ip)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    t0 = trace.now()
    first_result: DNSResult | None = None
    # every reply but the answer, built as it arrives (arrival order)
    duplicates: list[DNSDuplicateResponse] = []
    failure: str | None = None

    def duplicate(data: bytes, reply: dnswire.Message, t_dup: float, wrong: bool) -> None:
        dup = base.from_reply(data, reply, qtype, t0, t_dup)
        if wrong:
            dup.failure = F.DNS_WRONG_QUERY_ID
        record = DNSDuplicateResponse(**msgspec.structs.asdict(dup))
        duplicates.append(record)
        if on_duplicate is not None:
            on_duplicate(record)

    def unanswered(why: str) -> DNSResult:
        result = DNSResult(base.query(why, None, t0, trace.now()))
        if on_answer is not None:
            on_answer(result)
        return result

    try:
        await loop.sock_connect(sock, (ip, port))
        await loop.sock_sendall(sock, wire)
        trace.event(
            tr.WRITE_TO,
            t0=t0,
            address=address,
            num_bytes=len(wire),
            proto="udp",
            tags=tags,
            transaction_id=tid,
        )
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    data = await loop.sock_recv(sock, 65535)
            except TimeoutError:
                break
            trace.event(
                tr.READ_FROM,
                address=address,
                num_bytes=len(data),
                proto="udp",
                tags=tags,
                transaction_id=tid,
            )
            reply = _parse(data)  # each datagram is parsed once
            if reply is not None and _matches(query, reply):
                t_reply = trace.now()
                if first_result is None:
                    deadline = loop.time() + wait_duplicates
                    first_result = DNSResult(base.from_reply(data, reply, qtype, t0, t_reply))
                    if on_answer is not None:
                        on_answer(first_result)
                else:
                    duplicate(data, reply, t_reply, False)
            elif reply is not None and _matches(query, reply, check_id=False):
                # same question, other id: kept, flagged, never the answer
                duplicate(data, reply, trace.now(), True)
    except asyncio.CancelledError:
        if first_result is None:
            unanswered(F.GENERIC_TIMEOUT)
        raise
    except Exception as exc:
        failure = errors.classify(exc)
        trace.event(
            tr.READ_FROM,
            address=address,
            failure=failure,
            proto="udp",
            tags=tags,
            transaction_id=tid,
        )
    finally:
        sock.close()
    result = first_result or unanswered(failure or F.GENERIC_TIMEOUT)
    t_first = result.query.t
    result.duplicates.extend(duplicates)
    trace.event(
        tr.RESOLVE_DONE,
        t0=t0,
        t=t_first,
        address=address,
        failure=result.failure,
        tags=tags,
        transaction_id=tid,
    )
    return result


async def resolve_tcp(
    hostname: str,
    server: str,
    *,
    trace: tr.Trace,
    qtype: str = "A",
    timeout: float = DEFAULT_TIMEOUT,
    tags: list[str] | None = None,
    transaction_id: int | None = None,
) -> DNSResult:
    """Query ``server`` (default port 53) over TCP (RFC 1035 §4.2.2 length framing)."""
    ip, port = split_address(server, 53)
    return await _stream_query(
        hostname,
        qtype,
        "tcp",
        format_address(ip, port),
        ip,
        port,
        trace=trace,
        timeout=timeout,
        tags=tags,
        transaction_id=transaction_id,
        server_name=None,
        ca_file=None,
        verify_peer=True,
    )


async def resolve_dot(
    hostname: str,
    server: str,
    *,
    trace: tr.Trace,
    server_name: str = "",
    qtype: str = "A",
    ca_file: str | None = None,
    verify_peer: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    tags: list[str] | None = None,
    transaction_id: int | None = None,
) -> DNSResult:
    """DNS over TLS (RFC 7858) to ``server`` (default port 853) with SNI ``server_name``."""
    ip, port = split_address(server, 853)
    return await _stream_query(
        hostname,
        qtype,
        "dot",
        format_address(ip, port),
        ip,
        port,
        trace=trace,
        timeout=timeout,
        tags=tags,
        transaction_id=transaction_id,
        server_name=server_name,
        ca_file=ca_file,
        verify_peer=verify_peer,
    )


async def resolve_doh(
    hostname: str,
    url: str,
    *,
    trace: tr.Trace,
    bootstrap_address: str,
    qtype: str = "A",
    ca_file: str | None = None,
    verify_peer: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    tags: list[str] | None = None,
    transaction_id: int | None = None,
    session: dohmod.DoHSession | None = None,
) -> DNSResult:
    """DNS over HTTPS (RFC 8484, POST application/dns-message) to ``url``.

    ``bootstrap_address`` (``"ip"`` or ``"ip:port"``) is where to connect; the URL host is
    the SNI and ``:authority``/Host. ``resolver_address`` in the record is the URL.
    With ``session`` (a :class:`~didban.net.doh.DoHSession` for the same URL and address)
    the lookup runs over the session's shared HTTP/2 connection; without one it opens a
    connection of its own and closes it. Either way ``requests`` holds the HTTP exchange
    (and ``tcp_connect``/``tls_handshakes`` the connection it opened, if any).
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"a DoH URL must be https://host/path, not {url!r}")
    own = session is None or not session.matches(url, bootstrap_address)
    sess = session if session is not None and not own else None
    if sess is None:
        sess = dohmod.DoHSession(url, bootstrap_address, ca_file=ca_file, verify_peer=verify_peer)
    tid = trace.new_transaction_id() if transaction_id is None else transaction_id
    base = _Base(hostname, qtype, "doh", url, tags, tid)
    query = _make_query(hostname, qtype, doh=True)
    payload = query.to_wire()
    trace.event(tr.RESOLVE_START, address=url, tags=tags, transaction_id=tid)
    t0 = trace.now()
    result = DNSResult(base.query(None, None, t0, t0))
    failure: str | None = None
    wire = b""
    ex = dohmod.Exchange()
    try:
        # the session's connect and handshake time out first (and are recorded)
        async with asyncio.timeout(timeout + STEP_GRACE):
            await sess.exchange(
                payload, trace=trace, timeout=timeout, tags=tags, transaction_id=tid, into=ex
            )
    except Exception as exc:
        failure = errors.classify(exc)
    finally:
        if own:
            sess.close()
    result.tcp_connect.extend(ex.tcp_connect)
    result.tls_handshakes.extend(ex.tls_handshakes)
    result.reused_connection = ex.reused
    for raw, att_failure, address, alpn, a_t0, a_t in reversed(ex.attempts):  # newest first
        result.requests.append(
            httpmod.transaction(
                url,
                "POST",
                _DOH_HEADERS,
                raw,
                att_failure,
                address,
                alpn,
                a_t0,
                a_t,
                tags,
                tid,
                binary_body=True,
            )
        )
    if failure is None:  # else the deadline (or a bug) ended the exchange
        raw, failure = ex.last
        if failure is None and raw is not None:
            if raw.status != 200:
                failure = F.HTTP_UNEXPECTED_STATUS_CODE
            else:
                wire = raw.body
    t = trace.now()
    if failure is None:
        reply = _parse(wire)
        if reply is not None and _matches(query, reply, check_id=False):
            result.query = base.from_reply(wire, reply, qtype, t0, t)
        else:
            failure = F.DNS_SERVER_MISBEHAVING
    if failure is not None:
        result.query = base.query(failure, None, t0, t)
    trace.event(
        tr.RESOLVE_DONE,
        t0=t0,
        t=t,
        address=url,
        failure=result.failure,
        tags=tags,
        transaction_id=tid,
    )
    return result


async def resolve_system(
    hostname: str,
    *,
    trace: tr.Trace,
    timeout: float = DEFAULT_TIMEOUT,
    tags: list[str] | None = None,
    transaction_id: int | None = None,
) -> DNSResult:
    """``getaddrinfo`` in a thread: engine ``getaddrinfo``, query_type ``ANY``."""
    tid = trace.new_transaction_id() if transaction_id is None else transaction_id
    base = _Base(hostname, "ANY", "getaddrinfo", "", tags, tid)
    trace.event(tr.RESOLVE_START, tags=tags, transaction_id=tid)
    loop = asyncio.get_running_loop()
    t0 = trace.now()
    failure: str | None = None
    answers: list[DNSAnswer] = []
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(
                hostname, None, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME
            )
    except Exception as exc:
        failure = errors.classify(exc)
    else:
        seen: set[str] = set()
        for family, _, _, canon, sockaddr in infos:
            if (
                canon
                and canon.rstrip(".") != hostname.rstrip(".")
                and not any(a.answer_type == "CNAME" for a in answers)
            ):
                answers.append(DNSAnswer(answer_type="CNAME", hostname=canon))
            ip = str(sockaddr[0])
            if ip in seen:
                continue
            seen.add(ip)
            if family == socket.AF_INET6:
                answers.append(DNSAnswer(answer_type="AAAA", ipv6=ip))
            else:
                answers.append(DNSAnswer(answer_type="A", ipv4=ip))
        if not seen:
            failure = F.DNS_NO_ANSWER
    t = trace.now()
    trace.event(tr.RESOLVE_DONE, t0=t0, t=t, failure=failure, tags=tags, transaction_id=tid)
    return DNSResult(base.query(failure, answers or None, t0, t))


def answer_addrs(answers: list[DNSAnswer] | None) -> list[str]:
    """IP addresses in ``answers``, in order, without repeats."""
    out: list[str] = []
    for a in answers or []:
        ip = a.ipv4 or a.ipv6
        if ip and ip not in out:
            out.append(ip)
    return out


def rcode_failure(rcode: int, has_answer: bool) -> str | None:
    """OONI failure for a reply's rcode (netxlite's mapping), or no_answer / None."""
    if rcode == dns.rcode.NXDOMAIN:
        return F.DNS_NXDOMAIN
    if rcode == dns.rcode.SERVFAIL:
        return F.DNS_SERVFAIL
    if rcode == dns.rcode.REFUSED:
        return F.DNS_REFUSED
    if rcode != dns.rcode.NOERROR:
        return F.DNS_SERVER_MISBEHAVING
    return None if has_answer else F.DNS_NO_ANSWER


EDNS_PAYLOAD = 1232


@dataclass(frozen=True, slots=True)
class Query:
    """A query as sent: its id, its question (to match replies) and its wire form.

    Built by hand because building it with dnspython costs ~0.2 ms a query; the bytes
    are exactly what ``dns.message.make_query(name, qtype, use_edns=0, payload=1232)``
    with RD writes (tests/net/test_dns.py checks this). ``question`` is the key
    ``dnswire.Message.question`` holds for it: a reply matches when its only question is
    the same, compared without case as DNS names are.
    """

    id: int
    question: bytes
    wire: bytes

    def to_wire(self) -> bytes:
        return self.wire


def _make_query(hostname: str, qtype: str, doh: bool = False) -> Query:
    name = dns.name.from_text(hostname)
    rdtype = dns.rdatatype.from_text(qtype)
    # RFC 8484 §4.1: DoH uses id 0 (cache friendliness); otherwise a random id
    qid = 0 if doh else int.from_bytes(os.urandom(2), "big")
    header = struct.pack("!HHHHHH", qid, dns.flags.RD, 1, 0, 0, 1)  # QD 1, AR 1 (OPT)
    qname = name.to_wire() or b""
    qtail = struct.pack("!HH", rdtype, dns.rdataclass.IN)
    opt = b"\x00" + struct.pack("!HHIH", dns.rdatatype.OPT, EDNS_PAYLOAD, 0, 0)  # EDNS0
    return Query(qid, qname.lower() + qtail, header + qname + qtail + opt)


def _parse(wire: bytes) -> dnswire.Message | None:
    """The reply parsed once (None if it is not a DNS message, or not a reply to one
    question: every query didban sends has one, RFC 9619)."""
    if len(wire) < 12 or wire[4] != 0 or wire[5] != 1:
        return None
    try:
        return dnswire.parse(wire)
    except dnswire.WireError:
        return None


def _matches(query: Query, reply: dnswire.Message, check_id: bool = True) -> bool:
    if check_id and reply.id != query.id:
        return False
    return bool(reply.flags & dnswire.QR) and reply.question == (query.question,)


class _Base:
    """The fields every record of one lookup shares."""

    def __init__(
        self, hostname: str, qtype: str, engine: str, address: str, tags: list[str] | None, tid: int
    ) -> None:
        self.hostname, self.qtype, self.engine, self.address = hostname, qtype, engine, address
        self.tags, self.tid = (list(tags) if tags else None), tid

    def query(
        self,
        failure: str | None,
        answers: list[DNSAnswer] | None,
        t0: float,
        t: float,
        rcode: int | None = None,
        raw: bytes | None = None,
    ) -> DNSQuery:
        return DNSQuery(
            hostname=self.hostname,
            query_type=self.qtype,
            engine=self.engine,
            resolver_address=self.address,
            failure=failure,
            answers=answers,
            rcode=rcode,
            raw_response=base64.b64encode(raw).decode() if raw is not None else None,
            t0=round(t0, 6),
            t=round(t, 6),
            tags=self.tags,
            transaction_id=self.tid,
        )

    def from_reply(
        self, wire: bytes, reply: dnswire.Message | None, qtype: str, t0: float, t: float
    ) -> DNSQuery:
        """The record of a reply already parsed by :func:`_parse` (None: unparsable)."""
        if reply is None:
            return self.query(F.DNS_SERVER_MISBEHAVING, None, t0, t, raw=wire)
        answers = parse_answers(reply)
        has = any(a.answer_type == qtype.upper() for a in answers)
        failure = rcode_failure(reply.rcode, has)
        return self.query(failure, answers or None, t0, t, rcode=reply.rcode, raw=wire)


def parse_answers(reply: dnswire.Message) -> list[DNSAnswer]:
    """A, AAAA and CNAME records of the answer section as OONI answers, in wire order,
    each with its own TTL."""
    out: list[DNSAnswer] = []
    for r in reply.answer:
        kind = dnswire.TYPE_TEXT.get(r.rtype)
        if kind is None or r.rclass != dnswire.CLASS_IN:
            continue
        value = reply.text(r)
        if kind == "A":
            out.append(DNSAnswer(answer_type="A", ipv4=value, ttl=r.ttl))
        elif kind == "AAAA":
            out.append(DNSAnswer(answer_type="AAAA", ipv6=value, ttl=r.ttl))
        else:
            out.append(DNSAnswer(answer_type="CNAME", hostname=value, ttl=r.ttl))
    return out


async def _read_exact(stream: Stream, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        chunk = await stream.read(65536)
        if not chunk:
            raise errors.NetFailure(F.EOF_ERROR, "connection closed mid-reply")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


async def _stream_query(
    hostname: str,
    qtype: str,
    engine: str,
    address: str,
    ip: str,
    port: int,
    *,
    trace: tr.Trace,
    timeout: float,
    tags: list[str] | None,
    transaction_id: int | None,
    server_name: str | None,
    ca_file: str | None,
    verify_peer: bool,
) -> DNSResult:
    """DNS over a TCP or TLS stream with two-byte length framing (TCP and DoT)."""
    tid = trace.new_transaction_id() if transaction_id is None else transaction_id
    base = _Base(hostname, qtype, engine, address, tags, tid)
    query = _make_query(hostname, qtype)
    trace.event(tr.RESOLVE_START, address=address, tags=tags, transaction_id=tid)
    t0 = trace.now()
    result = DNSResult(base.query(None, None, t0, t0))
    failure: str | None = None
    wire = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def left() -> float:
        return max(deadline - loop.time(), 0.001)

    try:
        # The connect and the handshake each get what is left of the budget and record
        # their own timeout; the outer limit (a little later) only bounds the exchange, so
        # it never cancels a step before that step's record is written.
        async with asyncio.timeout_at(deadline + STEP_GRACE):
            tcp_r = await tcpmod.connect(
                ip, port, trace=trace, timeout=left(), tags=tags, transaction_id=tid
            )
            result.tcp_connect.append(tcp_r.record)
            stream: Stream | None = tcp_r.stream
            if tcp_r.stream is not None and server_name is not None:
                tls_r = await tlsmod.handshake(
                    tcp_r.stream,
                    server_name=server_name,
                    trace=trace,
                    alpn=("dot",),
                    ca_file=ca_file,
                    verify_peer=verify_peer,
                    timeout=left(),
                    tags=tags,
                    transaction_id=tid,
                )
                result.tls_handshakes.append(tls_r.record)
                stream = tls_r.stream
                failure = tls_r.failure
            elif stream is None:
                failure = tcp_r.failure
            if stream is not None:
                try:
                    payload = query.to_wire()
                    await stream.write(struct.pack("!H", len(payload)) + payload)
                    buf = bytearray()
                    (length,) = struct.unpack("!H", await _read_exact(stream, 2, buf))
                    wire = await _read_exact(stream, length, buf)
                finally:
                    stream.close()
    except Exception as exc:
        failure = errors.classify(exc)
    t = trace.now()
    if failure is None:
        reply = _parse(wire)
        if reply is not None and _matches(query, reply):
            result.query = base.from_reply(wire, reply, qtype, t0, t)
        else:
            failure = F.DNS_SERVER_MISBEHAVING
    if failure is not None:
        result.query = base.query(failure, None, t0, t)
    trace.event(
        tr.RESOLVE_DONE,
        t0=t0,
        t=t,
        address=address,
        failure=result.failure,
        tags=tags,
        transaction_id=tid,
    )
    return result
