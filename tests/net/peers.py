"""Loopback peers for the net and control tests: a small HTTP/1.1 + h2 site (plain and TLS),
misbehaving TLS servers, and DNS servers that answer from a table (optionally twice)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import h2.config
import h2.connection
import h2.events
import h11
import trustme
from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent

BIG_SIZE = 1 << 20
PAGE = b"<html><head><title>Hello didban</title></head><body>hello</body></html>"


def route(path: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The site's pages: /, /redirect/N (N hops to /), /big (1 MiB), /binary, /cookie."""
    if path == "/":
        return 200, [("Content-Type", "text/html; charset=utf-8")], PAGE
    if path.startswith("/redirect/"):
        n = int(path.rsplit("/", 1)[1])
        target = "/" if n <= 0 else f"/redirect/{n - 1}"
        return 302, [("Location", target)], b""
    if path == "/big":
        return 200, [("Content-Type", "text/plain")], b"x" * BIG_SIZE
    if path == "/binary":
        return 200, [("Content-Type", "application/octet-stream")], bytes(range(256)) * 4
    if path == "/elsewhere":
        return 301, [("Location", "http://other.test/")], b""
    return 404, [("Content-Type", "text/plain")], b"not found"


@dataclass
class Site:
    """HTTP/1.1 on a plain port; HTTP/1.1 and h2 (ALPN) on a TLS port, on 127.0.0.1."""

    ca: trustme.CA
    names: tuple[str, ...] = ("site.test", "www.site.test")
    http_port: int = 0
    https_port: int = 0
    paths: list[str] = field(default_factory=list)
    _servers: list[asyncio.Server] = field(default_factory=list)

    async def start(self) -> Site:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*self.names).configure_cert(ctx)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        plain = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        tls = await asyncio.start_server(self._conn, "127.0.0.1", 0, ssl=ctx)
        self._servers = [plain, tls]
        self.http_port = plain.sockets[0].getsockname()[1]
        self.https_port = tls.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for s in self._servers:
            s.close()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sslobj = writer.get_extra_info("ssl_object")
        try:
            if sslobj is not None and sslobj.selected_alpn_protocol() == "h2":
                await self._h2(reader, writer)
            else:
                await self._h11(reader, writer)
        except (ConnectionError, OSError, h11.ProtocolError, h2.exceptions.ProtocolError):
            pass
        finally:
            writer.close()

    async def _h11(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        assert request is not None
        path = request.target.decode()
        self.paths.append(path)
        status, headers, payload = self.respond(
            request.method.decode(),
            path,
            body,
            [(k.decode(), v.decode()) for k, v in request.headers],
        )
        headers = [*headers, ("Content-Length", str(len(payload)))]
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        writer.write(conn.send(h11.Data(data=payload)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()

    def respond(
        self, method: str, path: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        return route(path)

    async def _h2(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        pending: dict[int, bytes] = {}
        requests: dict[int, tuple[dict[str, str], bytes]] = {}
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    requests[event.stream_id] = (
                        {
                            (k.decode() if isinstance(k, bytes) else k): (
                                v.decode() if isinstance(v, bytes) else v
                            )
                            for k, v in event.headers or []
                        },
                        b"",
                    )
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    hdrs, body = requests[event.stream_id]
                    requests[event.stream_id] = (hdrs, body + (event.data or b""))
                elif isinstance(event, h2.events.StreamEnded):
                    hdrs, body = requests.pop(event.stream_id)
                    path = hdrs[":path"]
                    self.paths.append(path)
                    status, headers, payload = self.respond(
                        hdrs[":method"], path, body, list(hdrs.items())
                    )
                    conn.send_headers(
                        event.stream_id,
                        [
                            (":status", str(status)),
                            *((k.lower(), v) for k, v in headers),
                            ("content-length", str(len(payload))),
                        ],
                    )
                    pending[event.stream_id] = payload
            for sid in list(pending):
                payload = pending[sid]
                while payload:
                    window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                    if window <= 0:
                        break
                    conn.send_data(sid, payload[:window])
                    payload = payload[window:]
                pending[sid] = payload
                if not payload:
                    conn.end_stream(sid)
                    del pending[sid]
            writer.write(conn.data_to_send())
            await writer.drain()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def tcp_server(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def rst_after_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the ClientHello, then close with SO_LINGER 0: the kernel sends a RST."""
    await reader.read(4096)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


async def fin_after_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(4096)
    writer.close()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(4096)
    await asyncio.sleep(30)


def closed_port() -> int:
    """A loopback TCP port nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


@dataclass
class DNSServer(asyncio.DatagramProtocol):
    """UDP DNS on 127.0.0.1: answers A queries from ``table``; names missing → NXDOMAIN.

    ``forged`` (an IP) makes it send a forged answer first, then the genuine one after
    ``gap`` seconds — the shape of on-path injection.
    """

    table: dict[str, list[str]]
    forged: str | None = None
    gap: float = 0.05
    rcode: int | None = None
    forged_wrong_id: bool = False
    port: int = 0
    queries: list[str] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    async def start(self) -> DNSServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def reply(self, query: dns.message.Message, addrs: list[str] | None) -> bytes:
        resp = dns.message.make_response(query)
        name = query.question[0].name
        if self.rcode is not None:
            resp.set_rcode(self.rcode)
        elif addrs is None:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        elif addrs:
            resp.answer.append(dns.rrset.from_text_list(name, 60, "IN", "A", addrs))
        return resp.to_wire()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        query = dns.message.from_wire(data)
        host = query.question[0].name.to_text().rstrip(".")
        self.queries.append(host)
        genuine = self.reply(query, self.table.get(host))
        assert self.transport is not None
        if self.forged is not None:
            forged = self.reply(query, [self.forged])
            if self.forged_wrong_id:
                forged = bytes([forged[0] ^ 0xFF]) + forged[1:]
            self.transport.sendto(forged, addr)
            asyncio.get_running_loop().call_later(self.gap, self.transport.sendto, genuine, addr)
        else:
            self.transport.sendto(genuine, addr)


class H3Server(QuicConnectionProtocol):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._h3: H3Connection | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if self._h3 is None:
            self._h3 = H3Connection(self._quic)
        for ev in self._h3.handle_event(event):
            if isinstance(ev, HeadersReceived):
                self._h3.send_headers(
                    ev.stream_id, [(b":status", b"200"), (b"content-type", b"text/html")]
                )
                self._h3.send_data(ev.stream_id, PAGE, end_stream=True)
                self.transmit()


async def start_h3(ca: trustme.CA, tmp: Path, port: int = 0) -> tuple[QuicServer, int]:
    """An HTTP/3 server for site.test on 127.0.0.1 (UDP ``port``, 0: any) serving PAGE."""
    leaf = ca.issue_cert("site.test")
    cert, key = tmp / "h3-cert.pem", tmp / "h3-key.pem"
    cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    config = QuicConfiguration(is_client=False, alpn_protocols=list(H3_ALPN))
    config.load_cert_chain(str(cert), str(key))
    server = await serve("127.0.0.1", port, configuration=config, create_protocol=H3Server)
    return server, int(server._transport.get_extra_info("sockname")[1])
