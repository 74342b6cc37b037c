"""DNS answers for the lab zone (authoritative + recursive in one): the wire logic shared by
the public resolvers (UDP, TCP, DoT, DoH) and the ISP resolver's domestic names.

A records come from :mod:`didban.lab.zone`; AAAA and other types of an existing name get an
empty NOERROR answer (the lab is IPv4-only); names outside the zone get NXDOMAIN with an SOA
in the authority section, as a real recursive resolver returns for a non-existent name;
another class than IN or another opcode than QUERY gets NOTIMP.

Two ways to the same answer:

* :func:`answer_wire` (the public resolvers' hot path): bytes in, bytes out. An ordinary
  query (one uncompressed question, no records but an optional empty OPT, nothing after it)
  is read with :mod:`didban.net.dnswire` and answered with ``struct``, byte for byte what
  dnspython's ``make_response`` + ``to_wire`` render (same name compression, EDNS echoed
  with payload 8192, TC and an empty answer when the UDP limit is exceeded, A records in
  the order of the same ``random.shuffle`` dnspython applies to an RRset). Anything
  else (EDNS options, records in the query, compression, trailing bytes, UPDATE, bytes
  dnswire rejects) goes through the dnspython path below, so the answer never changes.
* :func:`parse` / :func:`make_response` / :func:`answer` / :func:`to_wire` /
  :func:`udp_limit` on dnspython messages, for the ISP resolver (hijack policy, forwarding).
"""

from __future__ import annotations

import random
import socket
import struct
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
from didban.net import dnswire

ANSWER_TTL: Final = 300
SOA_TTL: Final = 86400
_SOA: Final = "a.root-servers.net. nstld.verisign-grs.com. 2026112100 1800 900 604800 86400"
# dnspython's make_response advertises this EDNS payload (its ``our_payload`` default).
RESPONSE_PAYLOAD: Final = 8192

_HEADER: Final = struct.Struct("!HHHHHH")
_RR: Final = struct.Struct("!HHIH")  # type, class, TTL, rdata length (after the owner)
_TC: Final = 0x0200
_OPCODE_RD: Final = 0x7900  # the query bits a response copies: opcode and RD
_OPCODE_UPDATE: Final = 5
_NOERROR, _NXDOMAIN, _NOTIMP = 0, 3, 4
_TYPE_SOA: Final = 6
# the response's OPT record: root owner, payload 8192, extended rcode/version/flags 0, no data
_OPT_RR: Final = b"\x00" + _RR.pack(dnswire.TYPE_OPT, RESPONSE_PAYLOAD, 0, 0)
_SOA_MNAME: Final = (b"a", b"root-servers", b"net")
_SOA_RNAME: Final = (b"nstld", b"verisign-grs", b"com")
_SOA_NUMBERS: Final = struct.pack("!IIIII", 2026112100, 1800, 900, 604800, 86400)


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
        resp.authority.append(dns.rrset.from_text(dns.name.root, SOA_TTL, "IN", "SOA", _SOA))
        return resp
    if q.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        resp.answer.append(dns.rrset.from_text_list(q.name, ANSWER_TTL, "IN", "A", list(addrs)))
    return resp


def to_wire(resp: dns.message.Message, max_size: int = 65535) -> bytes:
    try:
        return resp.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        resp.answer.clear()
        resp.flags |= dns.flags.TC
        return resp.to_wire()


def udp_limit(query: dns.message.Message) -> int:
    return max(512, query.payload) if query.edns >= 0 else 512


def answer_wire(wire: bytes, *, udp: bool = False) -> bytes | None:
    """Encoded answer to an encoded query; None when the query is malformed, is a response
    (QR set) or has not exactly one question.

    Over UDP (``udp=True``) an answer longer than the query's limit (its EDNS payload, at
    least 512; 512 without EDNS) is truncated: TC set, answer section empty."""
    if len(wire) < 12 or wire[2] & 0x80 or wire[4] or wire[5] != 1:
        return None  # what parse() says of these, whether dnspython can read them or not
    try:
        msg = dnswire.parse(wire)
    except dnswire.WireError:
        msg = None
    out = None if msg is None else _fast_answer(msg, udp)
    if out is not None:
        return out
    query = parse(wire)
    if query is None:
        return None
    return to_wire(answer(query), udp_limit(query) if udp else 65535)


def _fast_answer(msg: dnswire.Message, udp: bool) -> bytes | None:
    """The answer to an ordinary single-question query; None sends it to the dnspython path."""
    key = msg.question[0]  # lower-cased wire name + type + class
    qend = 8 + len(key)  # end of the question name (which starts at 12)
    wire = msg.wire
    if wire[12:qend].lower() != key[:-4] or msg.answer or msg.authority:
        return None  # compressed question name, or records in a query
    size = len(wire)
    additional = msg.additional
    if not additional:
        if size != qend + 4:
            return None  # trailing bytes
        limit = 512
        opt = b""
    else:
        rr = additional[0]
        # exactly one OPT, root owner (its rdata starts 11 octets after the question), empty
        if len(additional) != 1 or rr.rtype != dnswire.TYPE_OPT or rr.start != qend + 15:
            return None
        if rr.end != rr.start or size != rr.end:
            return None
        limit = max(512, rr.rclass)
        opt = _OPT_RR
    opcode = (msg.flags >> 11) & 0xF
    if opcode == _OPCODE_UPDATE:
        return None  # dnspython reads UPDATE with rules of its own
    flags = dnswire.QR | dnswire.RA | (msg.flags & _OPCODE_RD)
    question = wire[12 : qend + 4]  # as the client wrote it (case preserved)
    ancount = nscount = 0
    records = b""
    if opcode != 0 or key[-2:] != b"\x00\x01":  # not QUERY, or class not IN
        rcode = _NOTIMP
    else:
        qname = msg.qnames[0]
        addrs = zone.resolve(qname[:-1] if len(qname) > 1 else qname)
        if addrs is None:
            rcode = _NXDOMAIN
            nscount = 1
            records = _soa_record(key[:-4])
        else:
            rcode = _NOERROR
            if msg.qtypes[0] in (dnswire.TYPE_A, dnswire.TYPE_ANY):
                rrs = list(_a_records(addrs, key[0] == 0))
                random.shuffle(rrs)  # as dnspython's Rdataset.to_wire does, same draws
                ancount, records = len(rrs), b"".join(rrs)
    arcount = 1 if opt else 0
    header = _HEADER.pack(msg.id, flags | rcode, 1, ancount, nscount, arcount)
    out = header + question + records + opt
    if len(out) > (min(limit, 65535) if udp else 65535):
        # where dnspython's to_wire raises TooBig, to_wire() drops the answer and sets TC
        if ancount:
            records = b""
        header = _HEADER.pack(msg.id, flags | _TC | rcode, 1, 0, nscount, arcount)
        out = header + question + records + opt
    return out


def _a_records(addrs: tuple[str, ...], root_owner: bool) -> tuple[bytes, ...]:
    """The A records of ``addrs`` (each address once, in order, as an RRset keeps them),
    owned by the question name through a pointer to offset 12."""
    owner = b"\x00" if root_owner else b"\xc0\x0c"
    head = owner + _RR.pack(dnswire.TYPE_A, dnswire.CLASS_IN, ANSWER_TTL, 4)
    return tuple(head + socket.inet_aton(a) for a in dict.fromkeys(addrs))


def _soa_record(qname: bytes) -> bytes:
    """The NXDOMAIN authority record: root owner, the SOA's names compressed against the
    question name (lower-cased wire form at offset 12) as dnspython's renderer does."""
    if not qname.endswith((b"\x03net\x00", b"\x03com\x00")):
        return _SOA_RR  # no suffix in common with the SOA's names
    return _soa_rr(_suffix_offsets(qname))


def _soa_rr(suffixes: dict[bytes, int]) -> bytes:
    rdata = _compressed(_SOA_MNAME, suffixes) + _compressed(_SOA_RNAME, suffixes) + _SOA_NUMBERS
    return b"\x00" + _RR.pack(_TYPE_SOA, dnswire.CLASS_IN, SOA_TTL, len(rdata)) + rdata


def _suffix_offsets(qname: bytes) -> dict[bytes, int]:
    """Message offset of every non-root suffix of the question name, by its wire form."""
    out: dict[bytes, int] = {}
    pos = 0
    while qname[pos]:
        out.setdefault(qname[pos:], 12 + pos)
        pos += qname[pos] + 1
    return out


def _compressed(labels: tuple[bytes, ...], suffixes: dict[bytes, int]) -> bytes:
    """``labels`` in wire form, ending in a pointer to the longest suffix already written."""
    out = b""
    for i, label in enumerate(labels):
        target = suffixes.get(b"".join(bytes((len(x),)) + x for x in labels[i:]) + b"\x00")
        if target is not None:
            return out + struct.pack("!H", 0xC000 | target)
        out += bytes((len(label),)) + label
    return out + b"\x00"


_SOA_RR: Final = _soa_rr({})
