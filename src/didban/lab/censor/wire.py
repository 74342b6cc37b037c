"""IPv4, TCP and UDP on the wire: parsing queued packets and building injected ones.

Hand-written (struct) rather than scapy so that the per-packet path stays cheap; the unit
tests check every built packet with scapy as an independent parser.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Final

PROTO_TCP: Final = 6
PROTO_UDP: Final = 17

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10


@dataclass(frozen=True)
class IPPacket:
    """The fields of a queued IPv4 packet the censor looks at (TCP or UDP only)."""

    src: str
    dst: str
    proto: int
    ttl: int
    sport: int
    dport: int
    payload: bytes
    seq: int = 0  # TCP only
    ack: int = 0
    flags: int = 0

    @property
    def flow(self) -> tuple[str, int, str, int, int]:
        """(src, sport, dst, dport, proto): the direction-sensitive 5-tuple."""
        return (self.src, self.sport, self.dst, self.dport, self.proto)

    @property
    def syn_only(self) -> bool:
        return self.proto == PROTO_TCP and self.flags & (SYN | ACK) == SYN


def parse(raw: bytes) -> IPPacket | None:
    """Parse an IPv4 TCP/UDP packet; None for anything else (or a non-first fragment)."""
    if len(raw) < 20 or raw[0] >> 4 != 4:
        return None
    ihl = (raw[0] & 0x0F) * 4
    total = struct.unpack_from("!H", raw, 2)[0]
    frag = struct.unpack_from("!H", raw, 6)[0] & 0x1FFF
    ttl, proto = raw[8], raw[9]
    if frag or ihl < 20 or len(raw) < ihl:
        return None
    end = min(total, len(raw)) if total else len(raw)
    src = socket.inet_ntoa(raw[12:16])
    dst = socket.inet_ntoa(raw[16:20])
    l4 = raw[ihl:end]
    if proto == PROTO_UDP and len(l4) >= 8:
        sport, dport = struct.unpack_from("!HH", l4, 0)
        return IPPacket(src, dst, proto, ttl, sport, dport, bytes(l4[8:]))
    if proto == PROTO_TCP and len(l4) >= 20:
        sport, dport, seq, ack = struct.unpack_from("!HHII", l4, 0)
        off = (l4[12] >> 4) * 4
        flags = l4[13]
        return IPPacket(src, dst, proto, ttl, sport, dport, bytes(l4[off:]), seq, ack, flags)
    return None


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, length)


def ipv4(src: str, dst: str, proto: int, l4: bytes, ttl: int, ident: int | None = None) -> bytes:
    """An IPv4 header (DF clear, random IP-ID unless given) followed by ``l4``."""
    if ident is None:
        ident = struct.unpack("!H", os.urandom(2))[0]
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(l4),
        ident,
        0,  # flags/fragment offset: DF=0, as in Iran's injections
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + l4


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes, ttl: int) -> bytes:
    """A complete IPv4/UDP packet with correct checksums."""
    length = 8 + len(payload)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + payload
    csum = checksum(_pseudo(src, dst, PROTO_UDP, length) + seg) or 0xFFFF
    seg = seg[:6] + struct.pack("!H", csum) + seg[8:]
    return ipv4(src, dst, PROTO_UDP, seg, ttl)


def tcp(
    src: str,
    sport: int,
    dst: str,
    dport: int,
    *,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    payload: bytes = b"",
    ttl: int,
) -> bytes:
    """A complete IPv4/TCP packet (no options) with correct checksums."""
    seg = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        5 << 4,
        flags,
        window,
        0,
        0,
    )
    seg += payload
    csum = checksum(_pseudo(src, dst, PROTO_TCP, len(seg)) + seg)
    seg = seg[:16] + struct.pack("!H", csum) + seg[18:]
    return ipv4(src, dst, PROTO_TCP, seg, ttl)
