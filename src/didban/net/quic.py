"""QUIC handshake and HTTP/3 GET (aioquic), always under a deadline.

A :class:`aioquic.asyncio.QuicConnectionProtocol` subclass keeps the
``ConnectionTerminated`` error code and reason (0x100 + TLS alert for crypto errors), which
aioquic's ``connect()`` would reduce to a bare ``ConnectionError``. The handshake record is
an OONI ``tlshandshake`` with ``network: "udp"`` (OONI's ``quic_handshakes``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent
from cryptography.hazmat.primitives.serialization import Encoding

from didban.model import failures
from didban.model.ooni import HTTPTransaction, TLSHandshake
from didban.net import errors, guard, tls, trace, verify
from didban.net.httprecord import TransactionBuilder
from didban.net.httpwire import DEFAULT_HEADERS, RawResponse, authority, target
from didban.net.stream import format_address, split_address
from didban.net.trace import NO_TRACE, Tracer

DEFAULT_TIMEOUT = 10.0
DEFAULT_BODY_CAP = 1 << 19


@dataclass
class QUICResult:
    """The handshake record and, when asked and the handshake succeeded, the HTTP/3 GET."""

    handshake: TLSHandshake
    request: HTTPTransaction | None = None
    throughput: float | None = None

    @property
    def failure(self) -> str | None:
        if self.handshake.failure is not None:
            return self.handshake.failure
        return self.request.failure if self.request is not None else None


class _RecordingTransport:
    """Wraps the datagram transport so every datagram sent becomes a ``write_to`` event."""

    def __init__(self, inner: asyncio.DatagramTransport, on_send: Any) -> None:
        self._inner = inner
        self._on_send = on_send

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self._inner.sendto(data)  # the socket is connected to the peer
        self._on_send(len(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class _H3Response:
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    length: int = 0
    truncated: bool = False
    t_first: float | None = None
    t_last: float | None = None


class _Protocol(QuicConnectionProtocol):
    """Keeps ConnectionTerminated (code, reason) and drives one HTTP/3 request."""

    def __init__(
        self, quic: QuicConnection, *, tracer: Tracer, address: str, body_cap: int
    ) -> None:
        super().__init__(quic)
        self.tracer, self.address = tracer, address
        self.body_cap = body_cap
        self.h3 = H3Connection(quic)
        self.handshake = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.terminated: ConnectionTerminated | None = None
        self.stream_id: int | None = None
        self.response = _H3Response()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        inner = cast(asyncio.DatagramTransport, transport)
        super().connection_made(_RecordingTransport(inner, self._sent))  # type: ignore[arg-type]

    def _sent(self, n: int) -> None:
        self.tracer.event(trace.WRITE_TO, address=self.address, num_bytes=n, proto="udp")

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self.tracer.event(trace.READ_FROM, address=self.address, num_bytes=len(data), proto="udp")
        super().datagram_received(data, addr)

    def _fail(self, exc: BaseException) -> None:
        for fut in (self.handshake, self.done):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: the caller may never await it

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted) and not self.handshake.done():
            self.handshake.set_result(event)
        elif isinstance(event, ConnectionTerminated):
            self.terminated = event
            self._fail(
                errors.QUICTerminated(event.error_code, event.reason_phrase, event.frame_type)
            )
        for h3_event in self.h3.handle_event(event):
            if getattr(h3_event, "stream_id", None) != self.stream_id:
                continue
            now = self.tracer.now()
            if isinstance(h3_event, HeadersReceived):
                self.response.headers += [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in h3_event.headers
                ]
                self.response.t_first = now
            elif isinstance(h3_event, DataReceived):
                self._data(h3_event.data, now)
            if getattr(h3_event, "stream_ended", False) and not self.done.done():
                self.done.set_result(None)

    def _data(self, data: bytes, now: float) -> None:
        r = self.response
        r.t_last = now
        room = self.body_cap - r.length
        r.length += len(data)
        if len(data) > room:
            r.chunks.append(data[: max(room, 0)])
            r.truncated = True
            if not self.done.done():
                self.done.set_result(None)
        else:
            r.chunks.append(data)

    def get(self, authority: str, path: str, headers: Sequence[tuple[str, str]]) -> None:
        self.stream_id = self._quic.get_next_available_stream_id()
        h = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ]
        h += [(k.lower().encode(), v.encode()) for k, v in headers if k.lower() != "host"]
        self.h3.send_headers(self.stream_id, h, end_stream=True)
        self.transmit()


def _tls_fields(quic: QuicConnection) -> tuple[str, str, list[bytes]]:
    ctx = quic.tls
    suite = getattr(getattr(ctx, "key_schedule", None), "cipher_suite", None)
    name = f"TLS_{suite.name}" if suite is not None else ""
    chain = []
    leaf = getattr(ctx, "_peer_certificate", None)
    if leaf is not None:
        chain = [leaf.public_bytes(Encoding.DER)]
        chain += [c.public_bytes(Encoding.DER) for c in getattr(ctx, "_peer_certificate_chain", [])]
    return name, ctx.alpn_negotiated or "", chain


async def http3_get(
    url: str,
    *,
    address: str,
    tracer: Tracer = NO_TRACE,
    server_name: str | None = None,
    ca_file: str | None = None,
    verify_peer: bool = True,
    fetch: bool = True,
    headers: Sequence[tuple[str, str]] | None = None,
    body_cap: int = DEFAULT_BODY_CAP,
    timeout: float = DEFAULT_TIMEOUT,
) -> QUICResult:
    """QUIC handshake to ``address`` (``"ip"``/``"ip:port"``, default 443) with SNI
    ``server_name`` (default: the URL host) and ALPN ``h3``, then (``fetch=True``) GET
    ``url`` over HTTP/3. The whole exchange is bounded by ``timeout``. Never raises for
    network failures. The handshake and the GET are one flow of ``tracer``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    ip, port = split_address(address, parts.port or 443)
    sni = host if server_name is None else server_name
    addr = format_address(ip, port)
    guard.check(ip)
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=list(H3_ALPN),
        server_name=sni or None,
        verify_mode=ssl.CERT_NONE,
    )
    quic = QuicConnection(configuration=config)
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    t0 = tracer.now()
    tracer.event(trace.QUIC_HANDSHAKE_START, t=t0, address=addr)
    failure: str | None = None
    chain: list[bytes] = []
    code: int | None = None
    message: str | None = None
    handshook = False
    protocol: _Protocol | None = None
    transport: asyncio.BaseTransport | None = None
    request: HTTPTransaction | None = None
    throughput: float | None = None
    deadline = loop.time() + timeout
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Protocol(quic, tracer=tracer, address=addr, body_cap=body_cap),
                remote_addr=(ip, port),
                family=family,
            )
            protocol.connect((ip, port))
            await protocol.handshake
            handshook = True
    except Exception as exc:
        failure = errors.classify(exc)
    suite, alpn, chain = _tls_fields(quic)
    if handshook:
        code, message, refused = verify.judge(chain, sni, ca_file=ca_file, verify_peer=verify_peer)
        failure = refused or failure
    t = tracer.now()
    tracer.event(trace.QUIC_HANDSHAKE_DONE, t0=t0, t=t, address=addr, failure=failure)
    record = tls.handshake_record(
        tracer,
        network="udp",
        address=addr,
        server_name=sni,
        failure=failure,
        t0=t0,
        t=t,
        cipher_suite=suite if handshook else "",
        negotiated_protocol=alpn if handshook else "",
        tls_version="TLSv1.3" if handshook else "",
        verify_peer=verify_peer,
        chain=chain,
        verify_code=code,
        verify_message=message,
    )
    if failure is None and fetch and protocol is not None:
        request, throughput = await _get(
            protocol, url, headers, tracer, addr, max(deadline - loop.time(), 0.001)
        )
    if protocol is not None:
        protocol.close()
    if transport is not None:
        transport.close()
    return QUICResult(record, request, throughput)


async def _get(
    protocol: _Protocol,
    url: str,
    headers: Sequence[tuple[str, str]] | None,
    tracer: Tracer,
    addr: str,
    timeout: float,
) -> tuple[HTTPTransaction, float | None]:
    hdrs = list(headers if headers is not None else DEFAULT_HEADERS)
    scheme, host, port, path = target(url)
    host_value = authority(host, port, scheme)
    builder = TransactionBuilder(
        tracer, url, "GET", [("Host", host_value), *hdrs], network="udp", x_transport="quic"
    )
    builder.start(addr)
    failure: str | None = None
    try:
        async with asyncio.timeout(timeout):
            protocol.get(host_value, path, hdrs)
            await protocol.done
    except Exception as exc:
        failure = errors.classify(exc)
    r = protocol.response
    status = next((int(v) for k, v in r.headers if k == ":status"), 0)
    if failure is None and status == 0:
        failure = failures.HTTP_REQUEST_FAILED
    throughput = None
    if r.t_first is not None and r.t_last is not None and r.t_last > r.t_first and r.length:
        throughput = r.length / (r.t_last - r.t_first)
    raw = None
    if status:
        raw = RawResponse(
            status=status,
            headers=[(k, v) for k, v in r.headers if not k.startswith(":")],
            body=b"".join(r.chunks),
            body_length=r.length,
            truncated=r.truncated,
            http_version="HTTP/3",
            throughput=throughput,
        )
    return builder.done(raw, failure, "h3"), throughput
