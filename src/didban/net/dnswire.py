"""DNS messages on the wire (RFC 1035 §4, RFC 6891 OPT): the reading every lookup needs.

Every didban lookup parses one or more replies, and the lab's resolvers parse a query
for each answer they give. dnspython's ``from_wire`` costs about 0.13 ms a message (it
builds rdata, name and rrset objects for every section); this parser reads the header,
the question and the records in ~10-20 µs and decodes only what is read afterwards: A,
AAAA and CNAME data, and the OPT record's extended rcode. It is strict where a
misparse would change the evidence (name pointers must point backwards, a name is at most
255 octets, rdata must fit its length, A is 4 octets, AAAA 16) and raises ``WireError``
for a message that breaks that. Bytes after the last record are ignored, as
``ignore_trailing=True`` does in dnspython.

Records are kept as they came, in wire order, each with its own TTL (as OONI's probe
records them): no merging into RRsets, no removal of repeated records, which are
evidence in an injected reply. The data of types it does not read (MX, SOA, TXT, ...) is
kept as a byte range and not validated, so a reply dnspython would refuse for a malformed
MX record is read here for its A/AAAA/CNAME answers. The work per message is bounded
(``MAX_POINTERS`` per name, ``MAX_LABELS`` per message): a reply built to stall the
parser is refused instead.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Final

QR: Final = 0x8000
RD: Final = 0x0100
RA: Final = 0x0080
TYPE_A: Final = 1
TYPE_CNAME: Final = 5
TYPE_AAAA: Final = 28
TYPE_OPT: Final = 41
TYPE_ANY: Final = 255
CLASS_IN: Final = 1
MAX_NAME: Final = 255
# Bounds on the work one message may cost, so a hostile reply (an injector's, a resolver's)
# cannot stall the event loop: compression pointers followed in one name (dnspython also
# stops at 16), and labels read in the whole message. A legitimate reply stays far below:
# 100 records of 10-label names are 1,000 labels; 65,535 bytes of chained pointers to a
# 127-label name would be ~700,000.
MAX_POINTERS: Final = 16
MAX_LABELS: Final = 8192
TYPE_TEXT: Final = {TYPE_A: "A", TYPE_CNAME: "CNAME", TYPE_AAAA: "AAAA"}

# characters dnspython (and BIND's presentation format) escape inside a label
_SPECIAL: Final = frozenset(b'"().;\\@$')
_PLAIN: Final = b"-_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class WireError(ValueError):
    """The bytes are not a well-formed DNS message."""


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record: owner (lower-cased presentation form), type, class, TTL and
    where its data lies in the message (so names inside it can follow pointers)."""

    name: str
    rtype: int
    rclass: int
    ttl: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    flags: int
    rcode: int  # with the OPT record's extended bits
    question: tuple[bytes, ...]  # each: lower-cased wire name + type + class
    qnames: tuple[str, ...]  # each question's name as written (presentation form)
    qtypes: tuple[int, ...]
    answer: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]
    edns_payload: int | None  # the OPT record's UDP payload size; None without OPT
    wire: bytes

    def text(self, r: Record) -> str | None:
        """Presentation form of an A, AAAA or CNAME record's data (None for other types)."""
        data = self.wire[r.start : r.end]
        if r.rtype == TYPE_A:
            return socket.inet_ntop(socket.AF_INET, data)
        if r.rtype == TYPE_AAAA:
            return socket.inet_ntop(socket.AF_INET6, data)
        if r.rtype == TYPE_CNAME:
            labels, _ = read_name(self.wire, r.start)
            return to_text(labels)
        return None


class _Budget:
    """Labels a message may still make the parser read (``MAX_LABELS``)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_LABELS


def read_name(wire: bytes, pos: int, budget: _Budget | None = None) -> tuple[list[bytes], int]:
    """The labels of the name at ``pos`` and the offset just after it (after the first
    pointer, if the name is compressed)."""
    labels: list[bytes] = []
    total = 1
    end = -1
    hops = 0
    floor = pos  # a pointer must point before every place already read
    n = len(wire)
    budget = budget or _Budget()
    while True:
        if pos >= n:
            raise WireError("name runs past the end of the message")
        length = wire[pos]
        if length == 0:
            if end < 0:
                end = pos + 1
            return labels, end
        if length & 0xC0 == 0xC0:
            if pos + 1 >= n:
                raise WireError("truncated name pointer")
            target = ((length & 0x3F) << 8) | wire[pos + 1]
            if target >= floor:
                raise WireError("name pointer does not point backwards")
            hops += 1
            if hops > MAX_POINTERS:
                raise WireError(f"more than {MAX_POINTERS} compression pointers in one name")
            if end < 0:
                end = pos + 2
            pos = floor = target
            continue
        if length & 0xC0:
            raise WireError("unknown label type")
        label = wire[pos + 1 : pos + 1 + length]
        if len(label) != length:
            raise WireError("label runs past the end of the message")
        total += length + 1
        if total > MAX_NAME:
            raise WireError("name longer than 255 octets")
        budget.left -= 1
        if budget.left < 0:
            raise WireError(f"more than {MAX_LABELS} labels in one message")
        labels.append(label)
        pos += length + 1


def to_text(labels: list[bytes]) -> str:
    """Absolute presentation form (``"www.example.org."``, root ``"."``), escaped as
    dnspython escapes: ``\\.`` style for specials, ``\\DDD`` for other non-printables."""
    if not labels:
        return "."
    out: list[str] = []
    for label in labels:
        if not label.translate(None, _PLAIN):  # letters, digits, '-', '_' only
            out.append(label.decode("ascii"))
            continue
        parts: list[str] = []
        for c in label:
            if c in _SPECIAL:
                parts.append("\\" + chr(c))
            elif 0x20 < c < 0x7F:
                parts.append(chr(c))
            else:
                parts.append(f"\\{c:03d}")
        out.append("".join(parts))
    return ".".join(out) + "."


def _records(wire: bytes, pos: int, count: int, out: list[Record], budget: _Budget) -> int:
    n = len(wire)
    for _ in range(count):
        labels, pos = read_name(wire, pos, budget)
        if pos + 10 > n:
            raise WireError("record header runs past the end of the message")
        rtype = (wire[pos] << 8) | wire[pos + 1]
        rclass = (wire[pos + 2] << 8) | wire[pos + 3]
        ttl = int.from_bytes(wire[pos + 4 : pos + 8], "big")
        rdlen = (wire[pos + 8] << 8) | wire[pos + 9]
        start = pos + 10
        end = start + rdlen
        if end > n:
            raise WireError("record data runs past the end of the message")
        if rclass == CLASS_IN:  # other classes' A (Chaosnet's, say) is not an address
            if rtype == TYPE_A and rdlen != 4:
                raise WireError("A record data is not 4 octets")
            if rtype == TYPE_AAAA and rdlen != 16:
                raise WireError("AAAA record data is not 16 octets")
            if rtype == TYPE_CNAME:
                _, after = read_name(wire, start, budget)
                if after != end:
                    raise WireError("CNAME data is not one name")
        name = to_text(labels).lower() if labels else "."
        out.append(Record(name, rtype, rclass, ttl, start, end))
        pos = end
    return pos


def parse(wire: bytes) -> Message:
    """The message in ``wire``; raises ``WireError`` if it is malformed."""
    if len(wire) < 12:
        raise WireError("shorter than a DNS header")
    mid = (wire[0] << 8) | wire[1]
    flags = (wire[2] << 8) | wire[3]
    qd = (wire[4] << 8) | wire[5]
    an = (wire[6] << 8) | wire[7]
    ns = (wire[8] << 8) | wire[9]
    ar = (wire[10] << 8) | wire[11]
    pos = 12
    budget = _Budget()
    question: list[bytes] = []
    qnames: list[str] = []
    qtypes: list[int] = []
    for _ in range(qd):
        start = pos
        labels, pos = read_name(wire, pos, budget)
        if pos + 4 > len(wire):
            raise WireError("question runs past the end of the message")
        plain = pos - start == sum(len(x) + 1 for x in labels) + 1  # not compressed
        key = (wire[start:pos] if plain else _wire_name(labels)).lower() + wire[pos : pos + 4]
        question.append(key)
        qnames.append(to_text(labels))
        qtypes.append((wire[pos] << 8) | wire[pos + 1])
        pos += 4
    answer: list[Record] = []
    authority: list[Record] = []
    additional: list[Record] = []
    pos = _records(wire, pos, an, answer, budget)
    pos = _records(wire, pos, ns, authority, budget)
    _records(wire, pos, ar, additional, budget)
    rcode = flags & 0xF
    payload: int | None = None
    for r in additional:
        if r.rtype == TYPE_OPT:
            rcode |= (r.ttl >> 24) << 4
            payload = r.rclass
            break
    return Message(
        mid,
        flags,
        rcode,
        tuple(question),
        tuple(qnames),
        tuple(qtypes),
        tuple(answer),
        tuple(authority),
        tuple(additional),
        payload,
        wire,
    )


def _wire_name(labels: list[bytes]) -> bytes:
    return b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"
