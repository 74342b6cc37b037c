"""The TLS driver: ``ssl.SSLObject`` over ``MemoryBIO`` on a traced TCP stream.

Why our own driver (python-stack.md §5.1-5.2): asyncio's ``start_tls`` reports a FIN during
the handshake as a reset; driving the SSLObject by hand over ``loop.sock_recv`` tells RST
(``connection_reset``) from FIN (``eof_error``) from silence (``generic_timeout_error``)
from a TLS alert (``ssl_failed_handshake``) at every step.

The handshake always runs with ``CERT_NONE``; the peer chain is kept and verified
separately (``didban.net.verify``), so a MITM or blockpage certificate is recorded with
its chain and the OpenSSL-style verify code even when verification fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from didban.model.ooni import BinaryData, TLSHandshake
from didban.net import errors, tcp, trace, verify
from didban.net.trace import NO_TRACE, Tracer

DEFAULT_TIMEOUT = 10.0
DEFAULT_ALPN: tuple[str, ...] = ("h2", "http/1.1")

_VERSIONS = {
    "TLSv1": "TLSv1.0",
    "TLSv1.1": "TLSv1.1",
    "TLSv1.2": "TLSv1.2",
    "TLSv1.3": "TLSv1.3",
}


class TLSStream:
    """An established TLS connection over a :class:`~didban.net.tcp.TCPStream`."""

    def __init__(
        self,
        obj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        raw: tcp.TCPStream,
    ) -> None:
        self._obj = obj
        self._in = incoming
        self._out = outgoing
        self.raw = raw
        self._eof = False

    @property
    def address(self) -> str:
        return self.raw.address

    @property
    def alpn(self) -> str:
        return self._obj.selected_alpn_protocol() or ""

    async def _flush(self) -> None:
        data = self._out.read()
        if data:
            await self.raw.write(data)

    async def read(self, max_bytes: int = 65536) -> bytes:
        while True:
            try:
                return self._obj.read(max_bytes)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            await self._flush()
            if self._eof:
                return b""
            data = await self.raw.read(65536)
            if data:
                self._in.write(data)
            else:
                self._eof = True
                self._in.write_eof()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._obj.write(view)
            view = view[n:]
            await self._flush()

    def close(self) -> None:
        with contextlib.suppress(ssl.SSLError):
            self._obj.unwrap()
        leftover = self._out.read()
        if leftover:
            with contextlib.suppress(OSError):
                self.raw.sock.send(leftover)
        self.raw.close()


@dataclass
class TLSResult:
    """The OONI record, the peer chain (DER, leaf first) and the stream when usable.

    ``stream`` is set when the handshake succeeded and either verification passed or the
    caller asked for ``verify=False``; otherwise the connection is closed.
    """

    record: TLSHandshake
    stream: TLSStream | None
    chain: list[bytes] = field(default_factory=list)

    @property
    def failure(self) -> str | None:
        return self.record.failure


@lru_cache(maxsize=32)
def _cached_context(alpn: tuple[str, ...]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def _context(alpn: Sequence[str]) -> ssl.SSLContext:
    """The client context for ``alpn``, built once per ALPN list and shared.

    Building an ``SSLContext`` costs ~0.6 ms; the handshake context is always
    ``CERT_NONE`` (verification is separate), so the ALPN list is its only parameter.
    Sharing it is safe: sessions are never resumed (no session is passed to ``wrap_bio``).
    """
    return _cached_context(tuple(alpn))


def _peer_chain(obj: ssl.SSLObject) -> list[bytes]:
    """The chain as the server sent it (3.11: the private ``get_unverified_chain``)."""
    inner = getattr(obj, "_sslobj", None)
    getter = getattr(obj, "get_unverified_chain", None) or getattr(
        inner, "get_unverified_chain", None
    )
    certs = getter() if getter is not None else None
    if certs:
        out: list[bytes] = []
        for c in certs:
            der = c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
            out.append(der if isinstance(der, bytes) else ssl.PEM_cert_to_DER_cert(der))
        return out
    leaf = obj.getpeercert(binary_form=True)
    return [leaf] if leaf else []


async def _drive(
    obj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, raw: tcp.TCPStream
) -> None:
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                await raw.write(pending)
            data = await raw.read(65536)
            if data:
                incoming.write(data)
            else:
                incoming.write_eof()
    pending = outgoing.read()
    if pending:
        await raw.write(pending)


def handshake_record(
    tracer: Tracer,
    *,
    network: str,
    address: str,
    server_name: str,
    failure: str | None,
    t0: float,
    t: float,
    cipher_suite: str,
    negotiated_protocol: str,
    tls_version: str,
    verify_peer: bool,
    chain: list[bytes],
    verify_code: int | None,
    verify_message: str | None,
) -> TLSHandshake:
    """The OONI ``tlshandshake`` record (df-006) of a TLS (``tcp``) or QUIC (``udp``)
    handshake: the chain as presented, the verification outcome in didban's keys."""
    return TLSHandshake(
        network=network,
        address=address,
        server_name=server_name,
        failure=failure,
        cipher_suite=cipher_suite,
        negotiated_protocol=negotiated_protocol,
        tls_version=tls_version,
        no_tls_verify=not verify_peer,
        peer_certificates=[BinaryData(base64.b64encode(c).decode()) for c in chain] or None,
        t0=round(t0, 6),
        t=round(t, 6),
        tags=tracer.record_tags(),
        transaction_id=tracer.transaction_id,
        x_didban_verify_code=verify_code,
        x_didban_verify_message=verify_message,
    )


async def handshake(
    raw: tcp.TCPStream,
    *,
    server_name: str,
    alpn: Sequence[str] = DEFAULT_ALPN,
    ca_file: str | None = None,
    verify_peer: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> TLSResult:
    """TLS handshake over ``raw`` with SNI ``server_name`` ("" → no SNI) and ``alpn``.

    The handshake is a step of the TCP connection's flow: it is recorded with the
    stream's tracer (same transaction id and tags). Verification uses ``ca_file`` (PEM)
    or the system roots (``SSL_CERT_FILE`` honoured). ``verify_peer=False`` records the
    verification outcome in the ``x_didban_verify_*`` keys but not as ``failure`` (OONI
    ``no_tls_verify``). Never raises for network errors; on any failure ``raw`` is closed.
    """
    tracer = raw.tracer
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = _context(alpn).wrap_bio(
        incoming, outgoing, server_side=False, server_hostname=server_name or None
    )
    t0 = tracer.now()
    tracer.event(trace.TLS_HANDSHAKE_START, t=t0, address=raw.address)
    failure: str | None = None
    chain: list[bytes] = []
    code: int | None = None
    message: str | None = None
    try:
        async with asyncio.timeout(timeout):
            await _drive(obj, incoming, outgoing, raw)
    except Exception as exc:
        failure = errors.classify(exc)
    except BaseException:  # cancelled by a caller's deadline: the socket is ours to close
        raw.close()
        raise
    if failure is None:
        chain = _peer_chain(obj)
        code, message, failure = verify.judge(
            chain, server_name, ca_file=ca_file, verify_peer=verify_peer
        )
    t = tracer.now()
    tracer.event(trace.TLS_HANDSHAKE_DONE, t0=t0, t=t, address=raw.address, failure=failure)
    handshook = failure is None or code is not None
    version = obj.version() or ""
    record = handshake_record(
        tracer,
        network="tcp",
        address=raw.address,
        server_name=server_name,
        failure=failure,
        t0=t0,
        t=t,
        cipher_suite=(obj.cipher() or ("",))[0] if handshook else "",
        negotiated_protocol=(obj.selected_alpn_protocol() or "") if handshook else "",
        tls_version=_VERSIONS.get(version, version) if handshook else "",
        verify_peer=verify_peer,
        chain=chain,
        verify_code=code,
        verify_message=message,
    )
    if failure is not None:
        raw.close()
        return TLSResult(record, None, chain)
    return TLSResult(record, TLSStream(obj, incoming, outgoing, raw), chain)


async def connect_tls(
    ip: str,
    port: int,
    *,
    server_name: str,
    tracer: Tracer = NO_TRACE,
    alpn: Sequence[str] = DEFAULT_ALPN,
    ca_file: str | None = None,
    verify_peer: bool = True,
    tcp_timeout: float = tcp.DEFAULT_TIMEOUT,
    tls_timeout: float = DEFAULT_TIMEOUT,
) -> tuple[tcp.TCPResult, TLSResult | None]:
    """TCP connect then TLS handshake (one flow); TLS is None if TCP failed."""
    connected = await tcp.connect(ip, port, tracer=tracer, timeout=tcp_timeout)
    if connected.stream is None:
        return connected, None
    result = await handshake(
        connected.stream,
        server_name=server_name,
        alpn=alpn,
        ca_file=ca_file,
        verify_peer=verify_peer,
        timeout=tls_timeout,
    )
    return connected, result
