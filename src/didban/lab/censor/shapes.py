"""What the censor's protocol DPI recognises in a flow's first bytes (pure functions).

* **Tor's TLS**: tor's ClientHello names a random host, ``www.`` + 4-25 base32 characters
  + ``.com`` (tor's ``crypto_random_hostname``), and offers no ALPN; a browser's names a
  real host and offers ``h2``/``http/1.1`` (a capture of tor 0.4.9's ClientHello:
  research notes of issue 18). The 2011 Iranian filter keyed on Tor's certificate lifetime,
  which TLS 1.3 now encrypts (Tor blog 2011-09-14), so the lab matches the ClientHello.
* **OpenVPN's first packet** (Xue et al., "OpenVPN is Open to VPN Fingerprinting", USENIX
  Security 2022, opcode-based fingerprinting): the client's P_CONTROL_HARD_RESET_CLIENT
  (opcode 7, or 10 for V3, key id 0), an 8-byte session id, an empty ack array and packet
  id 0; over TCP behind a 2-byte length equal to the rest of the segment.
* **WireGuard's handshake initiation** (the WireGuard protocol, §5.4.2): message type 1,
  three reserved zero bytes, 148 bytes in all.
* **Fully encrypted traffic** (Wu et al., "How the Great Firewall of China Detects and
  Blocks Fully Encrypted Traffic", USENIX Security 2023): a first payload is let through
  if any exemption holds — Ex1 the average set bits per byte is at most 3.4 or at least
  4.6; Ex2 the first six bytes are printable ASCII; Ex3 more than half of the bytes are
  printable; Ex4 more than 20 consecutive printable bytes; Ex5 it starts like TLS or
  HTTP. A payload no exemption covers looks random (obfs4, Shadowsocks) and is blocked.
"""

from __future__ import annotations

import re
import struct
from typing import Final

from didban.lab.censor.dissect import HTTP_METHODS, tls_record_length

TOR_SNI: Final = re.compile(r"^www\.[a-z2-7]{4,25}\.com$")
EXT_ALPN: Final = 16
OPENVPN_HARD_RESETS: Final = (7, 10)  # P_CONTROL_HARD_RESET_CLIENT_V2, _V3
WG_INITIATION_SIZE: Final = 148
_POPCOUNT: Final = bytes(bin(i).count("1") for i in range(256))


def client_hello_extensions(hello: bytes) -> list[int] | None:
    """The extension types of the complete ClientHello record ``hello``; None if it is
    not one."""
    total = tls_record_length(hello)
    if total is None or len(hello) < total:
        return None
    body = hello[5:total]
    if len(body) < 4 or body[0] != 0x01:
        return None
    msg = body[4 : 4 + int.from_bytes(body[1:4], "big")]
    try:
        i = 2 + 32
        i += 1 + msg[i]
        i += 2 + struct.unpack_from("!H", msg, i)[0]
        i += 1 + msg[i]
        if i + 2 > len(msg):
            return []
        end = i + 2 + struct.unpack_from("!H", msg, i)[0]
        i += 2
        found: list[int] = []
        while i + 4 <= end:
            etype, elen = struct.unpack_from("!HH", msg, i)
            found.append(etype)
            i += 4 + elen
        return found
    except (IndexError, struct.error):
        return None


def is_tor_client_hello(sni: str, hello: bytes) -> bool:
    """Tor's ClientHello: a random ``www.<base32>.com`` name and no ALPN."""
    if not TOR_SNI.match(sni):
        return False
    extensions = client_hello_extensions(hello)
    return extensions is not None and EXT_ALPN not in extensions


def _openvpn_reset(packet: bytes) -> bool:
    return (
        len(packet) >= 14
        and packet[0] >> 3 in OPENVPN_HARD_RESETS
        and packet[0] & 0x07 == 0
        and packet[9] == 0  # no acks
        and packet[10:14] == b"\0\0\0\0"  # packet id 0
    )


def is_openvpn_reset(payload: bytes, tcp: bool) -> bool:
    """An OpenVPN client's first packet (over TCP: with its 2-byte length prefix)."""
    if not tcp:
        return _openvpn_reset(payload)
    if len(payload) < 16 or struct.unpack_from("!H", payload)[0] != len(payload) - 2:
        return False
    return _openvpn_reset(payload[2:])


def is_wireguard_initiation(payload: bytes) -> bool:
    return len(payload) == WG_INITIATION_SIZE and payload[:4] == b"\x01\x00\x00\x00"


def _printable(b: int) -> bool:
    return 0x20 <= b <= 0x7E


def fet_exemption(payload: bytes) -> str | None:
    """The exemption (``Ex1`` ... ``Ex5``) that lets a first payload through, or None when
    it looks fully encrypted."""
    if not payload:
        return "empty"
    bits = sum(_POPCOUNT[b] for b in payload) / len(payload)
    if bits <= 3.4 or bits >= 4.6:
        return "Ex1"
    if len(payload) >= 6 and all(_printable(b) for b in payload[:6]):
        return "Ex2"
    printable = sum(1 for b in payload if _printable(b))
    if printable * 2 > len(payload):
        return "Ex3"
    run = longest = 0
    for b in payload:
        run = run + 1 if _printable(b) else 0
        longest = max(longest, run)
    if longest > 20:
        return "Ex4"
    if payload.startswith(HTTP_METHODS) or (
        len(payload) >= 3 and payload[0] == 0x16 and payload[1] == 0x03 and payload[2] <= 0x03
    ):
        return "Ex5"
    return None
