"""HTTP/3 over QUIC (aioquic) for the services whose real counterpart offers it.

One QUIC listener per service address on udp/443, presenting the leaf of that address's
site (aioquic has no SNI callback; each HTTP/3 service owns its addresses). Requests go to
the same request handler as HTTP/1.1 and HTTP/2.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Final

import trustme
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from didban.lab.services.http import App
from didban.lab.services.routes import Request, host_of

IDLE_TIMEOUT: Final = 30.0
MAX_H3_BODY: Final = 64 << 20


class _H3Server(QuicConnectionProtocol):
    def __init__(self, *args: Any, app: App, local: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = app
        self._local = local
        self._h3: H3Connection | None = None
        self._streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._h3 = H3Connection(self._quic)
        if self._h3 is not None:
            for ev in self._h3.handle_event(event):
                self._h3_event(ev)

    def _h3_event(self, ev: H3Event) -> None:
        if isinstance(ev, HeadersReceived):
            hdrs = [(k.decode(), v.decode("latin-1")) for k, v in ev.headers]
            self._streams[ev.stream_id] = (hdrs, bytearray())
            if ev.stream_ended:
                self._respond(ev.stream_id)
        elif isinstance(ev, DataReceived):
            entry = self._streams.get(ev.stream_id)
            if entry is not None:
                entry[1].extend(ev.data)
            if ev.stream_ended:
                self._respond(ev.stream_id)

    def _respond(self, sid: int) -> None:
        entry = self._streams.pop(sid, None)
        if entry is None or self._h3 is None:
            return
        headers, body = entry
        pseudo = {k: v for k, v in headers if k.startswith(":")}
        req = Request(
            method=pseudo.get(":method", "GET"),
            target=pseudo.get(":path", "/"),
            host=host_of(pseudo.get(":authority")),
            headers=[(k.lower(), v) for k, v in headers if not k.startswith(":")],
            body=bytes(body),
            local_addr=self._local,
            scheme="https",
            http_version="3",
        )
        resp = self._app(req)
        data = b"".join(resp.chunks()) if resp.length <= MAX_H3_BODY else b""
        hdrs = [(b":status", str(resp.status).encode())]
        hdrs += [(k.lower().encode(), v.encode()) for k, v in resp.headers]
        if not any(k == b"content-length" for k, _ in hdrs):
            hdrs.append((b"content-length", str(len(data)).encode()))
        self._h3.send_headers(sid, hdrs, end_stream=not data)
        if data:
            self._h3.send_data(sid, data, end_stream=True)
        self.transmit()


def configuration(leaf: trustme.LeafCert) -> QuicConfiguration:
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN, idle_timeout=IDLE_TIMEOUT)
    chain = leaf.cert_chain_pems
    config.certificate = x509.load_pem_x509_certificate(chain[0].bytes())
    config.certificate_chain = [x509.load_pem_x509_certificate(p.bytes()) for p in chain[1:]]
    config.private_key = load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    return config


async def serve_h3(app: App, addr: str, leaf: trustme.LeafCert, port: int = 443) -> QuicServer:
    """Listen for HTTP/3 on ``addr:port`` (udp) with the given leaf certificate."""
    server: QuicServer = await serve(
        addr,
        port,
        configuration=configuration(leaf),
        create_protocol=partial(_H3Server, app=app, local=addr),
    )
    return server
