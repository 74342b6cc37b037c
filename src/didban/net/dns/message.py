"""What every DNS transport shares: the query as sent, the reply as read, the OONI records
of one lookup, and the interface a transport implements.

A :class:`Transport` makes one lookup (``resolve``) and returns a :class:`DNSResult`: the
OONI ``dnst`` query (df-002), the late replies UDP kept, and the connections DoT and DoH
made. Queries are built by hand (dnspython's ``make_query`` costs ~0.2 ms; the bytes are
the same, tests/net/test_dns.py checks it); replies are read with :mod:`didban.net.dnswire`.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import dns.flags
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from didban.model import failures
from didban.model.ooni import (
    DNSAnswer,
    DNSDuplicateResponse,
    DNSQuery,
    HTTPTransaction,
    TCPConnect,
    TLSHandshake,
)
from didban.net import dnswire
from didban.net.trace import NO_TRACE, Tracer

DEFAULT_TIMEOUT = 4.0
# How long after a stream or DoH lookup's deadline its outer limit fires: its connect and
# TLS steps time out first, so their records (and failure strings) are kept. A lookup can
# therefore last up to timeout + STEP_GRACE.
STEP_GRACE = 0.25
EDNS_PAYLOAD = 1232


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


class Transport(Protocol):
    """One way of asking DNS (probe-cli netxlite's ``DNSTransport``): UDP, TCP, DoT, DoH
    or the system resolver. ``resolve`` never raises for network failures."""

    async def resolve(
        self, hostname: str, *, qtype: str = "A", tracer: Tracer = NO_TRACE
    ) -> DNSResult:
        """Look ``hostname`` up (``qtype`` A or AAAA) as one flow of ``tracer``."""
        ...


def resolver(
    transport: Transport, tracer: Tracer = NO_TRACE
) -> Callable[[str], Awaitable[list[str] | str]]:
    """``transport`` as the host → addresses (or failure string) function that
    ``http.fetch`` asks for each hop; each lookup is a new flow of ``tracer``."""

    async def resolve(host: str) -> list[str] | str:
        result = await transport.resolve(host, tracer=tracer.next())
        return result.failure or result.addrs

    return resolve


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
        return failures.DNS_NXDOMAIN
    if rcode == dns.rcode.SERVFAIL:
        return failures.DNS_SERVFAIL
    if rcode == dns.rcode.REFUSED:
        return failures.DNS_REFUSED
    if rcode != dns.rcode.NOERROR:
        return failures.DNS_SERVER_MISBEHAVING
    return None if has_answer else failures.DNS_NO_ANSWER


@dataclass(frozen=True, slots=True)
class Query:
    """A query as sent: its id, its question (to match replies) and its wire form.

    ``question`` is the key ``dnswire.Message.question`` holds for it: a reply matches
    when its only question is the same, compared without case as DNS names are.
    """

    id: int
    question: bytes
    wire: bytes


def make_query(hostname: str, qtype: str, doh: bool = False) -> Query:
    """The bytes ``dns.message.make_query(name, qtype, use_edns=0, payload=1232)`` with
    RD writes; DoH uses id 0 (RFC 8484 §4.1, cache friendliness), others a random id."""
    name = dns.name.from_text(hostname)
    rdtype = dns.rdatatype.from_text(qtype)
    qid = 0 if doh else int.from_bytes(os.urandom(2), "big")
    header = struct.pack("!HHHHHH", qid, dns.flags.RD, 1, 0, 0, 1)  # QD 1, AR 1 (OPT)
    qname = name.to_wire() or b""
    qtail = struct.pack("!HH", rdtype, dns.rdataclass.IN)
    opt = b"\x00" + struct.pack("!HHIH", dns.rdatatype.OPT, EDNS_PAYLOAD, 0, 0)  # EDNS0
    return Query(qid, qname.lower() + qtail, header + qname + qtail + opt)


def parse_reply(wire: bytes) -> dnswire.Message | None:
    """The reply parsed once (None if it is not a DNS message, or not a reply to one
    question: every query didban sends has one, RFC 9619)."""
    if len(wire) < 12 or wire[4] != 0 or wire[5] != 1:
        return None
    try:
        return dnswire.parse(wire)
    except dnswire.WireError:
        return None


def matches(query: Query, reply: dnswire.Message, check_id: bool = True) -> bool:
    """``reply`` answers ``query``: a response, the same question, the same id (unless
    ``check_id`` is off: DoH, and UDP replies kept with a wrong id)."""
    if check_id and reply.id != query.id:
        return False
    return bool(reply.flags & dnswire.QR) and reply.question == (query.question,)


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


class Records:
    """The OONI records of one lookup: what every query and late reply of it shares
    (name, type, engine, resolver address, the flow's tags and transaction id)."""

    def __init__(
        self, hostname: str, qtype: str, engine: str, address: str, tracer: Tracer
    ) -> None:
        self.hostname, self.qtype, self.engine, self.address = hostname, qtype, engine, address
        self.tags, self.tid = tracer.record_tags(), tracer.transaction_id

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
        self, wire: bytes, reply: dnswire.Message | None, t0: float, t: float
    ) -> DNSQuery:
        """The record of a reply already parsed by :func:`parse_reply` (None: unparsable)."""
        if reply is None:
            return self.query(failures.DNS_SERVER_MISBEHAVING, None, t0, t, raw=wire)
        answers = parse_answers(reply)
        has = any(a.answer_type == self.qtype.upper() for a in answers)
        failure = rcode_failure(reply.rcode, has)
        return self.query(failure, answers or None, t0, t, rcode=reply.rcode, raw=wire)
