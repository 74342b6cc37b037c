"""Iran's injected packets, byte for byte (reference §2.1-§2.3, §4): the forged DNS answer,
the 403 iframe blockpage and its FIN, and the SNI RST.

Every function takes the triggering packet (as the censor saw it) and returns complete
IPv4 packets ready for a raw socket; sequence numbers follow P6 (exact, never merely
in-window), so the client's kernel accepts them.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

from didban.lab.censor import wire
from didban.lab.censor.dissect import DNSQuery

DNS_FLAGS_ANSWER: Final = 0x81A0  # QR, RD, RA, AD; rcode 0 (UPB pcap 2025)
DNS_FLAGS_NXDOMAIN: Final = 0x8183  # QR, RD, RA; rcode 3
AAAA_BOGON: Final = "d0::11"  # ooni.ir_ipv6_1

BLOCKPAGE_2025_BODY: Final = (
    b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    # The capture's lengths (Content-Length 337, 443-byte payload) imply CRLF here.
    b"<title>NTE1</title>\r\n</head><body>"
    b'<iframe src="http://10.10.34.36/?type=Invalid Keyword&policy=MainPolicy " '
    b'style="width: 100%; height: 100%" scrolling="no" marginwidth="0" marginheight="0" '
    b'frameborder="0" vspace="0" hspace="0"></iframe></body></html>'
)
BLOCKPAGE_2025: Final = (
    b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Length: " + str(len(BLOCKPAGE_2025_BODY)).encode() + b"\r\n\r\n" + BLOCKPAGE_2025_BODY
)
# The older form (getlantern/detour fixtures; ~2013-2021): HTTP/1.0, no length, title M5-8.
BLOCKPAGE_LEGACY: Final = (
    b"HTTP/1.0 403 Forbidden\r\nConnection: close\r\n\r\n"
    b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    b"<title>M5-8</title></head><body>"
    b'<iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy " '
    b'style="width: 100%; height: 100%" scrolling="no" marginwidth="0" marginheight="0" '
    b'frameborder="0" vspace="0" hspace="0"></iframe></body></html>'
)
PAGES: Final = {"iran-2025": BLOCKPAGE_2025, "iran-legacy": BLOCKPAGE_LEGACY}
RST_PADDING: Final = b"\x00" * 6  # IP total length 46, as captured


def dns_message(query: DNSQuery, answer: str | None, dns_ttl: int) -> bytes:
    """The forged DNS message: id copied, question echoed, flags 0x81a0 and one answer
    (``c00c`` pointer, class IN, TTL ``dns_ttl``): A ``answer`` for A queries, AAAA d0::11
    for AAAA queries; ``answer=None`` gives NXDOMAIN (flags 0x8183, no answer)."""
    if answer is None:
        return struct.pack("!HHHHHH", query.ident, DNS_FLAGS_NXDOMAIN, 1, 0, 0, 0) + query.question
    if query.qtype == 28:
        rtype, rdata = 28, ipaddress.IPv6Address(AAAA_BOGON).packed
    else:
        rtype, rdata = 1, ipaddress.IPv4Address(answer).packed
    head = struct.pack("!HHHHHH", query.ident, DNS_FLAGS_ANSWER, 1, 1, 0, 0)
    rr = struct.pack("!HHHIH", 0xC00C, rtype, 1, dns_ttl, len(rdata)) + rdata
    return head + query.question + rr


def dns_reply(
    trigger: wire.IPPacket, query: DNSQuery, answer: str | None, dns_ttl: int, ip_ttl: int
) -> bytes:
    """The forged UDP reply "from the queried resolver" to the client (IP TTL ``ip_ttl``)."""
    msg = dns_message(query, answer, dns_ttl)
    return wire.udp(trigger.dst, trigger.dport, trigger.src, trigger.sport, msg, ip_ttl)


def blockpage(trigger: wire.IPPacket, page: bytes, ip_ttl: int) -> list[bytes]:
    """PSH+ACK carrying ``page`` "from the server" then FIN+ACK (window 0), both toward the
    client: seq = the trigger's ack (the server's next seq), ack = trigger seq + its length."""
    seq, ack = trigger.ack, trigger.seq + len(trigger.payload)
    data = wire.tcp(
        trigger.dst, trigger.dport, trigger.src, trigger.sport,
        seq=seq, ack=ack, flags=wire.PSH | wire.ACK, window=65535, payload=page, ttl=ip_ttl,
    )  # fmt: skip
    fin = wire.tcp(
        trigger.dst, trigger.dport, trigger.src, trigger.sport,
        seq=seq + len(page), ack=ack, flags=wire.FIN | wire.ACK, window=0, ttl=ip_ttl,
    )  # fmt: skip
    return [data, fin]


def tcp_data(trigger: wire.IPPacket, payload: bytes, ip_ttl: int) -> bytes:
    """A PSH+ACK carrying ``payload`` "from the server" in reply to ``trigger`` (seq = its
    ack, ack = its seq + length; window 65535), e.g. a DNS-over-TCP answer."""
    return wire.tcp(
        trigger.dst, trigger.dport, trigger.src, trigger.sport,
        seq=trigger.ack, ack=trigger.seq + len(trigger.payload), flags=wire.PSH | wire.ACK,
        window=65535, payload=payload, ttl=ip_ttl,
    )  # fmt: skip


def rst_to_client(trigger: wire.IPPacket, ip_ttl: int) -> bytes:
    """One RST+ACK "from the server": seq = trigger's ack, ack = trigger seq + length,
    window 0, 6 zero bytes of payload (the 2025 SNI-RST fingerprint)."""
    return wire.tcp(
        trigger.dst, trigger.dport, trigger.src, trigger.sport,
        seq=trigger.ack, ack=trigger.seq + len(trigger.payload), flags=wire.RST | wire.ACK,
        window=0, payload=RST_PADDING, ttl=ip_ttl,
    )  # fmt: skip


def fin_to_client(trigger: wire.IPPacket, ip_ttl: int) -> bytes:
    """One FIN+ACK "from the server" in reply to ``trigger`` (seq = its ack, ack = its seq +
    length, window 0): the server closes during the handshake, the client reads EOF."""
    return wire.tcp(
        trigger.dst, trigger.dport, trigger.src, trigger.sport,
        seq=trigger.ack, ack=trigger.seq + len(trigger.payload), flags=wire.FIN | wire.ACK,
        window=0, ttl=ip_ttl,
    )  # fmt: skip


def rst_to_server(trigger: wire.IPPacket) -> bytes:
    """A RST "from the client" with seq = the trigger's seq (the server's rcv_nxt when the
    trigger was dropped): clears the server's half-open connection (pitfall P9). Not part of
    Iran's fingerprint; the client never sees it."""
    return wire.tcp(
        trigger.src, trigger.sport, trigger.dst, trigger.dport,
        seq=trigger.seq, ack=0, flags=wire.RST, window=0, ttl=64,
    )  # fmt: skip
