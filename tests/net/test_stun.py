"""The STUN Binding primitive (RFC 5389): responses parsed from bytes, a transaction with a
real STUN server (coturn on loopback), a silent server and a closed port."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from didban.net import guard, stun
from didban.net.trace import EventLog
from stun_peer import coturn, free_udp_port

TX = bytes(range(12))


def _success(mapped_ip: str, mapped_port: int, tx: bytes = TX) -> bytes:
    """A Binding success with one XOR-MAPPED-ADDRESS, built by hand (RFC 5389 §15.2)."""
    xport = mapped_port ^ (stun.MAGIC_COOKIE >> 16)
    xaddr = bytes(
        b ^ m
        for b, m in zip(
            socket.inet_aton(mapped_ip), struct.pack("!I", stun.MAGIC_COOKIE), strict=True
        )
    )
    attr = struct.pack("!HHBBH", stun.ATTR_XOR_MAPPED_ADDRESS, 8, 0, 1, xport) + xaddr
    return struct.pack("!HHI", stun.BINDING_SUCCESS, len(attr), stun.MAGIC_COOKIE) + tx + attr


def test_request_is_the_rfc_header() -> None:
    req = stun.binding_request(TX)
    assert req[:8] == bytes.fromhex("000100002112a442")
    assert req[8:] == TX and len(req) == 20


def test_success_response_gives_the_mapped_address() -> None:
    r = stun.parse_response(_success("192.0.2.2", 35047), TX)
    assert (r.kind, r.mapped) == ("binding_success", ("192.0.2.2", 35047))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_success("192.0.2.2", 1, tx=bytes(12)), "another transaction"),
        (_success("192.0.2.2", 1)[:19], "shorter than a STUN header"),
        (b"\x01\x01\x00\x00\x00\x00\x00\x00" + TX, "magic cookie"),
        (_success("192.0.2.2", 1)[:-4], "does not match"),
    ],
)
def test_what_is_not_our_response_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(stun.StunError, match=why):
        stun.parse_response(data, TX)


@pytest.fixture
def stun_server(tmp_path: Path) -> Iterator[int]:
    with coturn(tmp_path) as port:
        yield port


async def test_binding_with_coturn(stun_server: int) -> None:
    log = EventLog()
    r = await stun.binding("127.0.0.1", stun_server, tracer=log.flow(["t"]), timeout=3)
    assert r.failure is None
    assert r.response is not None and r.response.kind == "binding_success"
    assert r.response.mapped is not None and r.response.mapped[0] == "127.0.0.1"
    ops = [e.operation for e in log.events]
    assert ops[:3] == ["connect", "write_to", "read_from"]
    # the reply names the client's address: events carry sizes and times only
    assert all(e.address == f"127.0.0.1:{stun_server}" for e in log.events)


async def test_silent_server_times_out_after_retransmitting() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        log = EventLog()
        r = await stun.binding("127.0.0.1", silent.getsockname()[1], tracer=log.flow(), timeout=1.2)
    assert (r.failure, r.response) == ("generic_timeout_error", None)
    # sent at 0 s and resent at 0.5 s; the next resend (1.5 s) falls after the deadline
    assert [e.operation for e in log.events].count("write_to") == 2


async def test_closed_port_is_refused() -> None:
    r = await stun.binding("127.0.0.1", free_udp_port(), timeout=2)
    assert r.failure == "connection_refused"


async def test_guard_refuses_a_public_address() -> None:
    with pytest.raises(guard.NetworkGuardError):
        await stun.binding("74.125.250.129", 19302, timeout=1)
