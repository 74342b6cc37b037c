"""DNS answers for the lab zone (authoritative + recursive in one): the wire logic shared by
the public resolvers (UDP, TCP, DoT, DoH) and the ISP resolver's domestic names.

A records come from :mod:`didban.lab.zone`; AAAA and other types of an existing name get an
empty NOERROR answer (the lab is IPv4-only); names outside the zone get NXDOMAIN with an SOA
in the authority section, as a real recursive resolver returns for a non-existent name.
"""

from __future__ import annotations

from typing import Final

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from didban.lab import zone

ANSWER_TTL: Final = 300
_SOA: Final = "a.root-servers.net. nstld.verisign-grs.com. 2026112100 1800 900 604800 86400"


def parse(wire: bytes) -> dns.message.Message | None:
    """The query in ``wire``, or None when it is not a well-formed DNS query."""
    try:
        msg = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError):
        return None
    if msg.flags & dns.flags.QR or len(msg.question) != 1:
        return None
    return msg


def make_response(query: dns.message.Message, *, recursion: bool = True) -> dns.message.Message:
    resp = dns.message.make_response(query)
    if recursion:
        resp.flags |= dns.flags.RA
    return resp


def answer(query: dns.message.Message) -> dns.message.Message:
    """The lab zone's answer to ``query`` (a parsed, single-question query)."""
    resp = make_response(query)
    q = query.question[0]
    if query.opcode() != dns.opcode.QUERY or q.rdclass != dns.rdataclass.IN:
        resp.set_rcode(dns.rcode.NOTIMP)
        return resp
    name = q.name.to_text(omit_final_dot=True)
    addrs = zone.resolve(name)
    if addrs is None:
        resp.set_rcode(dns.rcode.NXDOMAIN)
        resp.authority.append(dns.rrset.from_text(dns.name.root, 86400, "IN", "SOA", _SOA))
        return resp
    if q.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        resp.answer.append(dns.rrset.from_text_list(q.name, ANSWER_TTL, "IN", "A", list(addrs)))
    return resp


def answer_wire(wire: bytes, *, max_size: int = 65535) -> bytes | None:
    """Encoded answer for an encoded query; None when the query is malformed.

    ``max_size`` is the UDP payload limit: larger answers are truncated (TC set)."""
    query = parse(wire)
    if query is None:
        return None
    return to_wire(answer(query), max_size)


def to_wire(resp: dns.message.Message, max_size: int = 65535) -> bytes:
    try:
        return resp.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        resp.answer.clear()
        resp.flags |= dns.flags.TC
        return resp.to_wire()


def udp_limit(query: dns.message.Message) -> int:
    return max(512, query.payload) if query.edns >= 0 else 512
