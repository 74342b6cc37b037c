"""Application-layer dissectors the censor matches on: DNS queries, the TLS ClientHello's
SNI, the HTTP request's Host, and the protocol whitelister's DNS/HTTP/TLS fingerprints."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

HTTP_METHODS: Final = (b"GET ", b"POST ", b"HEAD ", b"CONNECT ", b"OPTIONS ", b"DELETE ", b"PUT ")


@dataclass(frozen=True)
class DNSQuery:
    ident: int
    flags: int
    qname: str  # lowercase, no trailing dot
    qtype: int
    question: bytes  # the raw question section (name + type + class), echoed in replies


def dns_query(msg: bytes, responses: bool = False) -> DNSQuery | None:
    """The first question of a DNS query message (QR=0, or any message if ``responses``);
    None if it is not one."""
    if len(msg) < 12:
        return None
    ident, flags, qd = struct.unpack_from("!HHH", msg, 0)
    if (flags & 0x8000 and not responses) or qd < 1:
        return None
    labels: list[str] = []
    i = 12
    while True:
        if i >= len(msg):
            return None
        n = msg[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0 or i + 1 + n > len(msg):
            return None  # compression in a query question: not something we forge for
        labels.append(msg[i + 1 : i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    if i + 4 > len(msg):
        return None
    qtype = struct.unpack_from("!H", msg, i)[0]
    return DNSQuery(ident, flags, ".".join(labels), qtype, bytes(msg[12 : i + 4]))


def name_matches(name: str, suffixes: list[str]) -> str | None:
    """The suffix ``name`` equals or is a subdomain of, or None."""
    name = name.lower().rstrip(".")
    for s in suffixes:
        if name == s or name.endswith("." + s):
            return s
    return None


def tls_record_length(data: bytes) -> int | None:
    """Total length (header included) of the TLS handshake record ``data`` starts, or None."""
    if len(data) < 5 or data[0] != 0x16 or data[1] != 0x03:
        return None
    return 5 + int(struct.unpack_from("!H", data, 3)[0])


def client_hello_sni(data: bytes) -> str | None:
    """The server_name of a ClientHello record at the start of ``data``; "" if it has none;
    None if ``data`` is not (or not yet completely) a ClientHello."""
    total = tls_record_length(data)
    if total is None or len(data) < total:
        return None
    body = data[5:total]
    if len(body) < 4 or body[0] != 0x01:
        return None
    hs_len = int.from_bytes(body[1:4], "big")
    hello = body[4 : 4 + hs_len]
    try:
        i = 2 + 32  # version, random
        i += 1 + hello[i]  # session id
        i += 2 + struct.unpack_from("!H", hello, i)[0]  # cipher suites
        i += 1 + hello[i]  # compression methods
        if i + 2 > len(hello):
            return ""
        ext_end = i + 2 + struct.unpack_from("!H", hello, i)[0]
        i += 2
        while i + 4 <= ext_end:
            etype, elen = struct.unpack_from("!HH", hello, i)
            i += 4
            if etype == 0:  # server_name
                j = i + 2
                while j + 3 <= i + elen:
                    ntype, nlen = hello[j], struct.unpack_from("!H", hello, j + 1)[0]
                    if ntype == 0:
                        return hello[j + 3 : j + 3 + nlen].decode("ascii", "replace").lower()
                    j += 3 + nlen
                return ""
            i += elen
    except (IndexError, struct.error):
        return None
    return ""


@dataclass(frozen=True)
class HTTPRequest:
    request_line: str
    host: str  # lowercase, without port


def http_request(data: bytes) -> HTTPRequest | None:
    """Request line and Host of an HTTP/1.x request starting ``data`` (first segment)."""
    if not data.startswith(HTTP_METHODS):
        return None
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    host = ""
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "host":
            host = value.strip().lower()
            break
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return HTTPRequest(lines[0], host)


def whitelist_verdict(payload: bytes, packets: int, max_packets: int) -> bool | None:
    """The FOCI 2020 whitelister's decision on a flow's first data packets (``payload`` is
    their concatenation, ``packets`` how many): True allowed, False not, None undecided yet.

    Fingerprints (Bock et al. 2020; TLS and DNS byte rules provisional, reference §10.1):
    HTTP: at least 8 bytes starting with an HTTP method; TLS: a handshake record header
    0x16 0x03 0x0X; DNS over TCP: a 2-byte length prefix and a 12-byte query header.
    """
    if payload.startswith(HTTP_METHODS) and len(payload) >= 8:
        return True
    if len(payload) >= 3 and payload[0] == 0x16 and payload[1] == 0x03 and payload[2] <= 0x04:
        return True
    if len(payload) >= 14:
        length = struct.unpack_from("!H", payload, 0)[0]
        flags = struct.unpack_from("!H", payload, 4)[0]
        qd = struct.unpack_from("!H", payload, 6)[0]
        if 12 <= length <= 65535 and not flags & 0x8000 and 1 <= qd <= 16:
            return True
    could_grow = any(m.startswith(payload) for m in HTTP_METHODS) or (
        len(payload) < 3 and payload[:1] in (b"", b"\x16")
    )
    if packets < max_packets and (could_grow or len(payload) < 14):
        return None
    return False
