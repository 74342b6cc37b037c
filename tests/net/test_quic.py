"""QUIC handshake and HTTP/3 GET against a local aioquic server; QUIC timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from peers import start_h3

from didban.net import quic
from didban.net.trace import EventLog


@pytest.fixture
async def h3_server(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[int]:
    server, port = await start_h3(ca, tmp_path)
    yield port
    server.close()


async def test_http3_get(h3_server: int, ca_file: str) -> None:
    log = EventLog()
    r = await quic.http3_get(
        "https://site.test/",
        tracer=log.flow(),
        address=f"127.0.0.1:{h3_server}",
        ca_file=ca_file,
        timeout=5,
    )
    assert r.failure is None, r
    assert r.handshake.network == "udp"
    assert r.handshake.negotiated_protocol == "h3"
    assert r.handshake.tls_version == "TLSv1.3"
    assert r.handshake.peer_certificates
    assert r.request is not None and r.request.response is not None
    assert r.request.response.code == 200
    assert r.request.response.x_didban_title == "Hello didban"
    assert r.request.alpn == "h3"
    ops = {e.operation for e in log.events}
    assert {"write_to", "read_from", "quic_handshake_done"} <= ops


async def test_quic_wrong_hostname_keeps_chain(h3_server: int, ca_file: str) -> None:
    r = await quic.http3_get(
        "https://www.instagram.com/",
        address=f"127.0.0.1:{h3_server}",
        ca_file=ca_file,
        timeout=5,
    )
    assert r.failure == "ssl_invalid_hostname"
    assert r.handshake.peer_certificates
    assert r.request is None


async def test_quic_silent_port_times_out() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        r = await quic.http3_get("https://site.test/", address=f"127.0.0.1:{port}", timeout=0.5)
    finally:
        transport.close()
    assert r.failure == "generic_timeout_error"
    assert r.handshake.peer_certificates is None
