"""didban's DNS wire parser reads what dnspython reads, and rejects what would change evidence."""

from __future__ import annotations

import contextlib
import socket
import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from didban.net import dnswire
from didban.net.dns import message

LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
NAME = st.lists(LABEL, min_size=1, max_size=5).map(lambda ls: ".".join(ls) + ".")
IPV4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
IPV6 = st.binary(min_size=16, max_size=16).map(lambda b: socket.inet_ntop(socket.AF_INET6, b))


def _reply(qname: str, records: list[tuple[str, str, int, str]], rcode: int) -> bytes:
    q = dns.message.make_query(qname, "A", use_edns=0, payload=1232)
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.Rcode.make(rcode))
    for owner, rtype, ttl, value in records:
        r.answer.append(dns.rrset.from_text(owner, ttl, "IN", rtype, value))
    return r.to_wire()


RECORD = st.one_of(
    st.tuples(NAME, st.just("A"), st.integers(0, 2**31 - 1), IPV4),
    st.tuples(NAME, st.just("AAAA"), st.integers(0, 2**31 - 1), IPV6),
    st.tuples(NAME, st.just("CNAME"), st.integers(0, 2**31 - 1), NAME),
    st.tuples(NAME, st.just("TXT"), st.integers(0, 2**31 - 1), st.just('"v=1"')),
)


@settings(max_examples=300, deadline=None)
@given(
    NAME,
    st.lists(RECORD, max_size=6),
    st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, 16]),
)
def test_reads_what_dnspython_reads(
    qname: str, records: list[tuple[str, str, int, str]], rcode: int
) -> None:
    wire = _reply(qname, records, rcode)
    ours = dnswire.parse(wire)
    ref = dns.message.from_wire(wire)
    assert ours.id == ref.id
    assert ours.rcode == ref.rcode()  # extended rcode (BADVERS=16) from the OPT record
    assert bool(ours.flags & dnswire.QR)
    assert ours.qnames == (dns.name.from_text(qname).to_text(),)
    assert ours.edns_payload == ref.payload
    # every A/AAAA/CNAME record as written, in wire order, each with its own TTL
    expected = [(o, t, ttl, v) for o, t, ttl, v in records if t in dnswire.TYPE_TEXT.values()]
    got = [
        (r.name, dnswire.TYPE_TEXT[r.rtype], r.ttl, ours.text(r))
        for r in ours.answer
        if r.rtype in dnswire.TYPE_TEXT
    ]
    assert got == expected
    # and every value dnspython finds (it keeps one CNAME per owner, the last; we keep all)
    assert {(n, t, v) for n, t, _, v in got} >= {
        (rrset.name.to_text(), dns.rdatatype.to_text(rd.rdtype), rd.to_text())
        for rrset in ref.answer
        for rd in rrset
        if rd.rdtype in dnswire.TYPE_TEXT
    }


def test_repeated_records_and_their_own_ttls_are_kept() -> None:
    # an injector that repeats a record with other TTLs: dnspython merges them, we must not
    q = dns.message.make_query("www.instagram.com", "A")
    head = struct.pack("!HHHHHH", q.id, 0x8180, 1, 2, 0, 0)
    question = (dns.name.from_text("www.instagram.com").to_wire() or b"") + struct.pack("!HH", 1, 1)
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4)
    wire = head + question + rr + bytes([10, 10, 34, 36]) + rr[:6] + struct.pack("!IH", 7, 4)
    wire += bytes([10, 10, 34, 36])
    m = dnswire.parse(wire)
    assert [(r.name, r.ttl, m.text(r)) for r in m.answer] == [
        ("www.instagram.com.", 60, "10.10.34.36"),
        ("www.instagram.com.", 7, "10.10.34.36"),
    ]


def test_question_matches_without_case() -> None:
    q = dns.message.make_query("WWW.Example.ORG", "A")
    r = dns.message.make_response(q)
    m = dnswire.parse(r.to_wire())
    assert m.question == (
        (dns.name.from_text("www.example.org").to_wire() or b"") + b"\x00\x01\x00\x01",
    )
    assert m.qnames == ("WWW.Example.ORG.",)


def test_escaped_labels_are_written_as_dnspython_writes_them() -> None:
    name = dns.name.Name([b"a.b", b'q"', b"\x07x", b"ok", b""])
    r = dns.message.make_response(dns.message.make_query(name, "A"))
    m = dnswire.parse(r.to_wire())
    assert m.qnames == (name.to_text(),)


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (b"\x00" * 11, "shorter than a DNS header"),
        (struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\x03www", "past the end"),
        (struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01", "backwards"),
        (struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\x80abc\x00\x00\x01\x00\x01", "label"),
        (
            struct.pack("!HHHHHH", 1, 0x8180, 0, 1, 0, 0)
            + b"\x00"
            + struct.pack("!HHIH", 1, 1, 60, 3)
            + b"\x01\x02\x03",
            "not 4 octets",
        ),
        (
            struct.pack("!HHHHHH", 1, 0x8180, 0, 1, 0, 0)
            + b"\x00"
            + struct.pack("!HHIH", 1, 1, 60, 9)
            + b"\x01\x02\x03\x04",
            "record data runs past",
        ),
        (
            struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0)
            + (b"\x3f" + b"a" * 63) * 4
            + b"\x00\x00\x01\x00\x01",
            "longer than 255",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(wire: bytes, why: str) -> None:
    with pytest.raises(dnswire.WireError, match=why):
        dnswire.parse(wire)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_wire_error(wire: bytes) -> None:
    with contextlib.suppress(dnswire.WireError):
        dnswire.parse(wire)


@settings(max_examples=200, deadline=None)
@given(NAME, st.lists(RECORD, max_size=4), st.integers(0, 200), st.integers(0, 255))
def test_corrupted_replies_parse_or_raise_wire_error(
    qname: str, records: list[tuple[str, str, int, str]], at: int, byte: int
) -> None:
    wire = bytearray(_reply(qname, records, 0))
    wire[at % len(wire)] = byte
    with contextlib.suppress(dnswire.WireError):
        dnswire.parse(bytes(wire))


def _pointer_chain(n: int) -> bytes:
    """A reply whose n questions each point at the one before: a name n pointers deep."""
    head = struct.pack("!HHHHHH", 1, 0x8180, n, 0, 0, 0)
    body = b"\x01a\x00\x00\x01\x00\x01"
    offsets = [12]
    for _ in range(n - 1):
        offsets.append(12 + len(body))
        body += struct.pack("!H", 0xC000 | offsets[-2]) + b"\x00\x01\x00\x01"
    return head + body


def test_a_reply_built_to_stall_the_parser_is_refused() -> None:
    # dnspython stops at 16 pointers too; without a bound this reply took seconds to read
    with pytest.raises(dnswire.WireError, match="compression pointers"):
        dnswire.parse(_pointer_chain(5000))
    assert dnswire.parse(_pointer_chain(16)).qnames[-1] == "a."
    # many questions each pointing at a long name: bounded by the labels read per message
    head = struct.pack("!HHHHHH", 1, 0x8180, 4000, 0, 0, 0)
    name = b"\x01x" * 120 + b"\x00"
    wire = head + name + b"\x00\x01\x00\x01" + b"\xc0\x0c\x00\x01\x00\x01" * 3999
    with pytest.raises(dnswire.WireError, match="labels in one message"):
        dnswire.parse(wire)
    # and the probe refuses any reply that does not answer exactly one question
    assert message.parse_reply(wire) is None
    assert message.parse_reply(_pointer_chain(2)) is None


def test_records_of_other_classes_are_read_but_are_not_addresses() -> None:
    q = dns.message.make_query("www.example.org", "A")
    head = struct.pack("!HHHHHH", q.id, 0x8180, 1, 2, 0, 0)
    question = (dns.name.from_text("www.example.org").to_wire() or b"") + b"\x00\x01\x00\x01"
    chaos = b"\xc0\x0c" + struct.pack("!HHIH", 1, 3, 60, 0)  # class CH, type A, no data
    real = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7])
    m = dnswire.parse(head + question + chaos + real)
    assert [(a.answer_type, a.ipv4) for a in message.parse_answers(m)] == [("A", "192.0.2.7")]
