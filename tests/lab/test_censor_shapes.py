"""The censor's recognisers of circumvention traffic (``lab/censor/shapes.py``), without
root, on bytes real clients produce (Python's TLS stack for ClientHellos) or laid out
as the protocols define them: Tor's ClientHello, OpenVPN's hard reset, WireGuard's
initiation, and the fully-encrypted-traffic exemptions."""

from __future__ import annotations

import random
import ssl
import struct

import pytest

from didban.lab.censor import shapes


def _client_hello(sni: str, alpn: list[str] | None) -> bytes:
    """The first flight of Python's TLS client (a real ClientHello record)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def test_a_tor_like_client_hello_is_recognised_and_a_browser_like_one_is_not() -> None:
    tor_like = _client_hello("www.zjmtcpagff3jly.com", None)
    assert shapes.is_tor_client_hello("www.zjmtcpagff3jly.com", tor_like)
    browser = _client_hello("www.zjmtcpagff3jly.com", ["h2", "http/1.1"])
    assert not shapes.is_tor_client_hello("www.zjmtcpagff3jly.com", browser)  # ALPN
    plain = _client_hello("www.example.org", None)
    assert not shapes.is_tor_client_hello("www.example.org", plain)  # not www.<base32>.com
    # The name alone cannot tell: www.instagram.com has tor's shape, so only the missing
    # ALPN (every browser and the probe offer one) separates tor from a browser.
    assert shapes.is_tor_client_hello("www.instagram.com", _client_hello("www.instagram.com", None))
    assert not shapes.is_tor_client_hello("www.zjmtcpagff3jly.com", tor_like[:40])  # cut


def _openvpn_reset(opcode: int = 7, packet_id: int = 0) -> bytes:
    session = bytes(range(1, 9))
    return bytes([opcode << 3]) + session + b"\x00" + struct.pack("!I", packet_id)


def test_openvpn_hard_reset_over_udp_and_tcp() -> None:
    assert shapes.is_openvpn_reset(_openvpn_reset(), tcp=False)
    assert shapes.is_openvpn_reset(_openvpn_reset(opcode=10), tcp=False)  # V3
    assert not shapes.is_openvpn_reset(_openvpn_reset(opcode=4), tcp=False)  # P_CONTROL_V1
    assert not shapes.is_openvpn_reset(_openvpn_reset(packet_id=1), tcp=False)
    framed = struct.pack("!H", 14) + _openvpn_reset()
    assert shapes.is_openvpn_reset(framed, tcp=True)
    assert not shapes.is_openvpn_reset(struct.pack("!H", 99) + _openvpn_reset(), tcp=True)
    assert not shapes.is_openvpn_reset(_openvpn_reset(), tcp=True)  # no length prefix


def test_wireguard_initiation_by_type_and_size() -> None:
    body = random.Random(18).randbytes(144)
    assert shapes.is_wireguard_initiation(b"\x01\x00\x00\x00" + body)
    assert not shapes.is_wireguard_initiation(b"\x02\x00\x00\x00" + body[:88])  # response
    assert not shapes.is_wireguard_initiation(b"\x01\x00\x00\x00" + body[:100])


def test_fully_encrypted_first_payloads_and_the_exemptions() -> None:
    assert shapes.fet_exemption(random.Random(18).randbytes(1448)) is None  # obfs4-like
    assert shapes.fet_exemption(_client_hello("www.instagram.com", ["h2"])) is not None
    assert shapes.fet_exemption(b"\x16\x03\x01" + random.Random(18).randbytes(600)) == "Ex5"
    assert shapes.fet_exemption(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") is not None
    assert shapes.fet_exemption(b"~~~~~~" + random.Random(18).randbytes(600)) == "Ex2"
    assert shapes.fet_exemption(b"\x05\x01\x00") == "Ex1"  # a SOCKS5 greeting
    assert shapes.fet_exemption(b"\x00" * 64) == "Ex1"
    assert shapes.fet_exemption(struct.pack("!H", 14) + _openvpn_reset()) == "Ex1"
