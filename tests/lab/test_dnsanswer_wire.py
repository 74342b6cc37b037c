"""The public resolvers' struct-built answers are the answers dnspython built before.

``_reference`` below is the old answer path (dnspython ``from_wire`` + ``make_response`` +
``to_wire``), kept here on purpose so it cannot drift with the module. Every query, good,
odd or malformed, must get the same answer from :func:`dnsanswer.answer_wire` (no root
needed, no network)."""

from __future__ import annotations

import base64
import random
import struct
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from didban.lab import plan, zone
from didban.lab.services import dnsanswer, routes

_SOA = "a.root-servers.net. nstld.verisign-grs.com. 2026112100 1800 900 604800 86400"


def _reference(wire: bytes, udp: bool) -> bytes | None:
    """The answer of the dnspython code the public resolvers used before the struct path."""
    try:
        query = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError):
        return None
    if query.flags & dns.flags.QR or len(query.question) != 1:
        return None
    resp = dns.message.make_response(query)
    resp.flags |= dns.flags.RA
    q = query.question[0]
    if query.opcode() != dns.opcode.QUERY or q.rdclass != dns.rdataclass.IN:
        resp.set_rcode(dns.rcode.NOTIMP)
    else:
        addrs = zone.resolve(q.name.to_text(omit_final_dot=True))
        if addrs is None:
            resp.set_rcode(dns.rcode.NXDOMAIN)
            resp.authority.append(dns.rrset.from_text(dns.name.root, 86400, "IN", "SOA", _SOA))
        elif q.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
            resp.answer.append(dns.rrset.from_text_list(q.name, 300, "IN", "A", list(addrs)))
    limit = (max(512, query.payload) if query.edns >= 0 else 512) if udp else 65535
    try:
        return resp.to_wire(max_size=limit)
    except dns.exception.TooBig:
        resp.answer.clear()
        resp.flags |= dns.flags.TC
        return resp.to_wire()


def _rrsets(section: list[dns.rrset.RRset]) -> list[tuple[object, ...]]:
    return [
        (r.name.labels, r.rdclass, r.rdtype, r.ttl, [rd.to_text() for rd in r]) for r in section
    ]


def _assert_same(wire: bytes, udp: bool) -> bytes | None:
    # dnspython shuffles an RRset's records as it renders them; so do we, with the same
    # draws of ``random``: from the same state both give the same order
    random.seed(wire)
    new = dnsanswer.answer_wire(wire, udp=udp)
    random.seed(wire)
    old = _reference(wire, udp)
    if old is None or new is None:
        assert new is old, wire
        return None
    a, b = dns.message.from_wire(new), dns.message.from_wire(old)
    assert (a.id, a.flags, a.rcode(), a.opcode()) == (b.id, b.flags, b.rcode(), b.opcode())
    # the question exactly as the client wrote it (case preserved)
    assert [(q.name.labels, q.rdtype, q.rdclass) for q in a.question] == [
        (q.name.labels, q.rdtype, q.rdclass) for q in b.question
    ]
    assert _rrsets(a.answer) == _rrsets(b.answer)  # same addresses, same order, TTL 300
    assert _rrsets(a.authority) == _rrsets(b.authority)
    assert _rrsets(a.additional) == _rrsets(b.additional)
    assert (a.edns, a.payload, a.ednsflags, a.options) == (
        b.edns,
        b.payload,
        b.ednsflags,
        b.options,
    )
    assert new == old  # and, beyond the meaning, byte for byte (same name compression)
    return new


def _wire_name(labels: list[bytes]) -> bytes:
    return b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"


def _labels(name: str) -> list[bytes]:
    return [x.encode() for x in name.strip(".").split(".")] if name.strip(".") else []


def _query(
    name: list[bytes] | str,
    qtype: int = 1,
    qclass: int = 1,
    *,
    qid: int = 0x1234,
    flags: int = 0x0100,
    edns: tuple[int, int, bytes] | None = None,  # payload, TTL field, rdata
) -> bytes:
    labels = _labels(name) if isinstance(name, str) else name
    head = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0 if edns is None else 1)
    out = head + _wire_name(labels) + struct.pack("!HH", qtype, qclass)
    if edns is not None:
        payload, ttl, rdata = edns
        out += b"\x00" + struct.pack("!HHIH", 41, payload, ttl, len(rdata)) + rdata
    return out


def _zone_names() -> list[str]:
    names: list[str] = []
    for site in zone.sites():
        for n in site.names[:2]:
            names += [n, "www." + n, "a.b." + n]
    names += [zone.bench_host(n) for n in (1, 2, 17, 1234, 999999999)]
    names += ["site0.bench.didban.test", "bench.didban.test"]
    return names


ZONE_NAMES = _zone_names()
OUTSIDE = [
    "not-in-the-lab.example",
    "no-such-name.didban-lab.test",
    "instagram.com.evil.example",
    "example.net",
    "www.example.com",
    "net",
    "com",
    "root-servers.net",
    "a.root-servers.net",
    "b.a.root-servers.net",
    "verisign-grs.com",
    "nstld.verisign-grs.com",
    "x.nstld.verisign-grs.com",
    "ROOT-Servers.NET",
    "xnet.com",
    "foo.xnet",
    "",  # the root
]
NAMES = ZONE_NAMES + OUTSIDE
QTYPES = [1, 28, 255, 15, 16, 6, 5, 2, 0, 41, 250, 65535]
EDNS: list[tuple[int, int, bytes] | None] = [
    None,
    (1232, 0, b""),
    (512, 0, b""),
    (4096, 0x8000, b""),  # DO bit: not echoed
    (100, 0, b""),  # below 512: the limit stays 512
    (0, 0, b""),
    (65535, 0, b""),
    (1232, 0x00010000, b""),  # EDNS version 1
    (1232, 0x05000000, b""),  # extended rcode bits in a query
]
# EDNS options take the dnspython path: a cookie, ECS, padding (answer padded to 468), junk
OPTIONS = [
    struct.pack("!HH", 10, 8) + b"\x01" * 8,
    struct.pack("!HHHBB", 8, 7, 1, 24, 0) + b"\x0a\x0a\x0a",
    struct.pack("!HH", 12, 4) + b"\x00" * 4,
    struct.pack("!HH", 10, 9) + b"\x01",
]


def _recase(name: str, mask: int) -> str:
    return "".join(c.upper() if mask >> (i % 60) & 1 else c for i, c in enumerate(name))


def _cases() -> Iterator[tuple[bytes, str]]:
    for name in NAMES:
        for qtype in QTYPES:
            yield _query(name, qtype), f"{name} {qtype}"
        for edns in EDNS:
            yield _query(_recase(name, 0x2D2D2D2D2D), edns=edns), f"{name} {edns}"
        for qclass in (3, 4, 254, 255, 0):
            yield _query(name, qclass=qclass), f"{name} class {qclass}"
    for opcode in range(16):
        for qtype in (1, 6):  # UPDATE needs an SOA zone question
            for qclass in (1, 255):
                flags = opcode << 11 | 0x0100
                yield _query("www.instagram.com", qtype, qclass, flags=flags), f"op {opcode}"
                yield _query("nope.example", qtype, qclass, flags=flags, edns=(1232, 0, b"")), "op"
    for flags in (0, 0x0100, 0x0400, 0x0200, 0x0040, 0x0020, 0x0010, 0x0F, 0xFFFF & ~0x8000):
        yield _query("www.instagram.com", flags=flags), f"flags {flags:#x}"
        yield _query("nope.example", flags=flags, edns=(1232, 0, b"")), f"flags {flags:#x}"
    for opt in OPTIONS:
        for name in ("www.instagram.com", "nope.example"):
            yield _query(name, edns=(1232, 0, opt)), f"option {opt!r}"


@pytest.mark.parametrize("udp", [True, False])
def test_every_query_gets_the_old_answer(udp: bool) -> None:
    for wire, what in _cases():
        try:
            _assert_same(wire, udp)
        except AssertionError as exc:
            raise AssertionError(what) from exc


def test_ordinary_queries_do_not_touch_dnspython(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(wire: bytes) -> None:
        raise AssertionError(f"dnspython path for {wire!r}")

    expected = {}
    for wire in _ordinary():
        random.seed(wire)
        expected[wire] = _reference(wire, True)
    monkeypatch.setattr(dnsanswer, "parse", fail)
    for wire, old in expected.items():
        random.seed(wire)
        assert dnsanswer.answer_wire(wire, udp=True) == old


def _ordinary() -> Iterator[bytes]:
    for name in ZONE_NAMES[:40] + OUTSIDE:
        for edns in (None, (1232, 0, b""), (4096, 0x8000, b"")):
            for qtype in (1, 28, 255, 16):
                yield _query(name, qtype, edns=edns)
            yield _query(name, qclass=3, edns=edns)
            yield _query(name, flags=2 << 11, edns=edns)


def _many(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Make ``*many.example`` (and the root) resolve to ``count`` addresses, some repeated
    (an RRset keeps each once): the only way to get past 512 octets in this zone."""
    real = zone.resolve
    unique = [f"10.{i // 256 % 256}.{i % 256}.1" for i in range(count)]
    addrs = tuple(unique + unique[: count // 10])

    def resolve(host: str) -> tuple[str, ...] | None:
        name = host.lower().rstrip(".")
        return addrs if name == "" or name.endswith("many.example") else real(host)

    monkeypatch.setattr(zone, "resolve", resolve)


def test_truncation_at_the_udp_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    truncated = 0
    edns_cases = (None, (512, 0, b""), (600, 0, b""), (1232, 0, b""), (65535, 0, b""))
    for count in (1, 28, 29, 30, 31, 34, 35, 80):
        _many(monkeypatch, count)
        # lengths around every limit: 6 makes an answer of exactly 512 octets with OPT
        for label_len in (*range(1, 64, 4), 6):
            for name in (
                [b"x" * label_len, b"mAny", b"example"],
                [b"x" * 63] * 3 + [b"x" * 48, b"many", b"example"],
                [],
            ):
                for edns in edns_cases:
                    for udp in (True, False):
                        out = _assert_same(_query(name, edns=edns), udp)
                        assert out is not None
                        truncated += bool(out[2] & 0x02)
    assert truncated > 10  # the TC path did run
    _many(monkeypatch, 4200)  # past 65535 octets: truncated over TCP too
    for edns in edns_cases:
        for udp in (True, False):
            out = _assert_same(_query("many.example", edns=edns), udp)
            assert out is not None and out[2] & 0x02


LABEL = st.one_of(
    st.binary(min_size=1, max_size=63),
    st.text(alphabet='abcXYZ019-_.\\"@$;() ', min_size=1, max_size=12).map(str.encode),
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.tuples(st.sampled_from(NAMES), st.integers(0, 2**60)).map(
            lambda t: _labels(_recase(*t))
        ),
        st.lists(LABEL, max_size=6),
        st.tuples(st.lists(LABEL, max_size=2), st.sampled_from(NAMES)).map(
            lambda t: t[0] + _labels(t[1])
        ),
    ),
    st.sampled_from(QTYPES),
    st.sampled_from([1, 1, 1, 3, 255]),
    st.sampled_from(EDNS),
    st.integers(0, 0xFFFF),
    st.booleans(),
)
def test_names_get_the_old_answer(
    labels: list[bytes],
    qtype: int,
    qclass: int,
    edns: tuple[int, int, bytes] | None,
    qid: int,
    udp: bool,
) -> None:
    _assert_same(_query(labels, qtype, qclass, qid=qid, edns=edns), udp)


def _mutations() -> st.SearchStrategy[bytes]:
    base = st.sampled_from(
        [
            _query("www.instagram.com"),
            _query("WWW.Instagram.COM", 28, edns=(1232, 0, b"")),
            _query("nope.example.net", edns=(4096, 0, b"")),
            _query("site7.bench.didban.test", 255),
        ]
    )

    def mutate(wire: bytes, edits: list[tuple[int, int]], cut: int, tail: bytes) -> bytes:
        out = bytearray(wire)
        for pos, value in edits:
            out[pos % len(out)] = value
        return bytes(out[: len(out) - cut]) + tail

    return st.builds(
        mutate,
        base,
        st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3),
        st.sampled_from([0, 0, 0, 1, 2, 5, 11]),
        st.sampled_from([b"", b"", b"\x00", b"junk"]),
    )


@settings(max_examples=600, deadline=None)
@given(st.one_of(_mutations(), st.binary(max_size=80)), st.booleans())
def test_odd_and_malformed_bytes_get_the_old_answer(wire: bytes, udp: bool) -> None:
    _assert_same(wire, udp)


def _raw(head: tuple[int, ...], body: bytes) -> bytes:
    return struct.pack("!HHHHHH", *head) + body


Q = _wire_name(_labels("www.instagram.com")) + b"\x00\x01\x00\x01"
A_RR = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x01\x02\x03\x04"
OPT_RR = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x00\x01garbage",
        _raw((1, 0x8100, 1, 0, 0, 0), Q),  # QR set: a response, not a query
        _raw((1, 0x8180, 1, 0, 0, 0), Q),
        _raw((1, 0x0100, 2, 0, 0, 0), Q + Q),  # two questions
        _raw((1, 0x0100, 2, 0, 0, 0), Q + b"\xc0\x0c\x00\x1c\x00\x01"),
        _raw((1, 0x0100, 0, 0, 0, 0), b""),  # no question
        _raw((1, 0x0100, 0, 0, 0, 1), OPT_RR),
        _raw((1, 0x0100, 1, 0, 0, 0), Q + b"\x00"),  # trailing byte
        _raw((1, 0x0100, 1, 0, 0, 0), Q[:-1]),
        _raw((1, 0x0100, 1, 0, 0, 1), Q),  # announced OPT missing
        _raw((1, 0x0100, 1, 0, 0, 2), Q + OPT_RR + OPT_RR),  # two OPT records
        _raw((1, 0x0100, 1, 0, 0, 1), Q + OPT_RR + b"\x00"),
        _raw((1, 0x0100, 1, 1, 0, 0), Q + A_RR),  # records in a query
        _raw((1, 0x0100, 1, 0, 1, 1), Q + A_RR + OPT_RR),
        _raw((1, 0x0100, 1, 0, 0, 2), Q + A_RR + OPT_RR),
        _raw((1, 0x0100, 1, 0, 0, 1), Q + b"\xc0\x0c" + OPT_RR[1:]),  # OPT not owned by root
        _raw((1, 0x0100, 1, 1, 0, 0), Q + OPT_RR),  # OPT in the answer section
        _raw((1, 0x0100, 1, 0, 0, 1), Q + OPT_RR[:-2] + b"\x00\x01\x00"),  # bad OPT rdata
        _raw((1, 0x0100, 1, 0, 0, 0), b"\xc0\x02\x00\x01\x00\x01"),  # pointer into the header
        _raw((1, 0x0100, 1, 0, 0, 0), b"\x01a\xc0\x0c\x00\x01\x00\x01"),  # forward pointer
        _raw((1, 0x0100, 1, 0, 0, 0), b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01"),
        _raw((1, 0x0100, 1, 0, 0, 0), (b"\x3fa" + b"a" * 62) * 4 + b"\x00\x00\x01\x00\x01"),
        _raw((1, 0x0100, 1, 0, 0, 0), (b"\x3e" + b"a" * 62) * 4 + b"\x00\x00\x01\x00\x01"),
        _raw((1, 0x0100, 1, 0, 0, 1), Q + b"\x00" + struct.pack("!HHIH", 250, 255, 0, 0)),
        _raw((1, 0x2800, 1, 0, 0, 0), Q),  # UPDATE whose zone is not an SOA: FormError
        _raw((1, 0x2800, 1, 0, 0, 0), Q[:-4] + b"\x00\x06\x00\x01"),  # UPDATE: NOTIMP
    ],
)
@pytest.mark.parametrize("udp", [True, False])
def test_hand_made_queries_get_the_old_answer(wire: bytes, udp: bool) -> None:
    _assert_same(wire, udp)


def test_addresses_come_in_random_order_as_before() -> None:
    wire = _query("www.instagram.com")
    orders = set()
    for _ in range(200):
        out = dnsanswer.answer_wire(wire)
        assert out is not None
        orders.add(tuple(rr.address for rr in dns.message.from_wire(out).answer[0]))
    assert len(plan.SERVICE_ADDRS["instagram"]) == 2
    assert orders == {
        tuple(plan.SERVICE_ADDRS["instagram"]),
        tuple(plan.SERVICE_ADDRS["instagram"])[::-1],
    }


def test_answers_in_short() -> None:
    def ask(name: str, qtype: int = 1, **kw: object) -> dns.message.Message:
        out = dnsanswer.answer_wire(_query(name, qtype, **kw))  # type: ignore[arg-type]
        assert out is not None
        return dns.message.from_wire(out)

    a = ask("Web.WhatsApp.com", edns=(1232, 0, b""))
    assert sorted(rr.address for rr in a.answer[0]) == sorted(plan.SERVICE_ADDRS["whatsapp"])
    assert a.answer[0].ttl == 300 and a.question[0].name.labels[0] == b"Web"
    assert (a.edns, a.payload) == (0, dnsanswer.RESPONSE_PAYLOAD)
    assert a.flags & dns.flags.RA and a.flags & dns.flags.RD and not a.flags & dns.flags.AA
    nx = ask("not-in-the-lab.example")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].ttl == 86400
    assert nx.edns == -1
    assert ask("web.whatsapp.com", 28).answer == []
    assert ask("web.whatsapp.com", qclass=3).rcode() == dns.rcode.NOTIMP


@pytest.mark.parametrize(
    ("name", "qtype", "max_age"),
    [("signal.org", 1, 300), ("signal.org", 28, 0), ("nope.example", 1, 0)],
)
def test_doh_cache_lifetime(name: str, qtype: int, max_age: int) -> None:
    wire = _query(name, qtype, qid=0)
    b64 = base64.urlsafe_b64encode(wire).rstrip(b"=").decode()
    req = routes.Request(
        "GET", f"/dns-query?dns={b64}", "dns.google", [], b"", "198.51.100.8", "https", "2"
    )
    resp = routes.handle(req)
    assert resp.status == 200 and ("cache-control", f"max-age={max_age}") in resp.headers
    assert resp.body == _reference(wire, False)
