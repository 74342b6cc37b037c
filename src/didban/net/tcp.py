"""TCP connect to a chosen ``ip:port`` under a deadline, and the traced plain TCP stream.

The connect result is an OONI ``tcpconnect`` record (df-005) plus a ``connect`` network
event; on success it also carries a :class:`TCPStream` whose reads and writes are events of
the same flow.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from didban.model import failures
from didban.model.ooni import TCPConnect, TCPConnectStatus
from didban.net import errors, guard, trace
from didban.net.stream import format_address
from didban.net.trace import NO_TRACE, Tracer

DEFAULT_TIMEOUT = 10.0


class TCPStream:
    """A connected non-blocking socket; every read/write becomes a network event of
    ``tracer`` (a DoH connection shared by many lookups silences it with ``NO_TRACE``)."""

    def __init__(self, sock: socket.socket, address: str, tracer: Tracer) -> None:
        self.sock = sock
        self._address = address
        self.tracer = tracer
        self._loop = asyncio.get_running_loop()
        self._closed = False

    @property
    def address(self) -> str:
        return self._address

    @property
    def alpn(self) -> str:
        return ""

    async def read(self, max_bytes: int = 65536) -> bytes:
        t0 = self.tracer.now()
        try:
            data = await self._loop.sock_recv(self.sock, max_bytes)
        except BaseException as exc:
            self._event(trace.READ, t0, errors.classify(exc), None)
            raise
        self._event(
            trace.READ, t0, None if data else failures.EOF_ERROR, len(data) if data else None
        )
        return data

    async def write(self, data: bytes) -> None:
        t0 = self.tracer.now()
        try:
            await self._loop.sock_sendall(self.sock, data)
        except BaseException as exc:
            self._event(trace.WRITE, t0, errors.classify(exc), None)
            raise
        self._event(trace.WRITE, t0, None, len(data))

    def _event(self, op: str, t0: float, failure: str | None, num_bytes: int | None) -> None:
        self.tracer.event(
            op, t0=t0, address=self._address, failure=failure, num_bytes=num_bytes, proto="tcp"
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sock.close()


@dataclass
class TCPResult:
    """The OONI record and, when the connect succeeded, the open stream."""

    record: TCPConnect
    stream: TCPStream | None

    @property
    def failure(self) -> str | None:
        return self.record.status.failure


async def connect(
    ip: str, port: int, *, tracer: Tracer = NO_TRACE, timeout: float = DEFAULT_TIMEOUT
) -> TCPResult:
    """Connect to ``ip:port`` (an IP literal, never a name) within ``timeout`` seconds.

    Never raises for network failures (they become ``record.status.failure``); raises
    ``guard.NetworkGuardError`` when the guard forbids the destination.
    """
    address = format_address(ip, port)
    guard.check(ip)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    t0 = tracer.now()
    failure: str | None = None
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (ip, port))
    except Exception as exc:
        failure = errors.classify(exc)
        sock.close()
    except BaseException:
        sock.close()
        raise
    t = tracer.now()
    tracer.event(trace.CONNECT, t0=t0, t=t, address=address, failure=failure, proto="tcp")
    record = TCPConnect(
        ip=ip,
        port=port,
        status=TCPConnectStatus(success=failure is None, failure=failure),
        t0=round(t0, 6),
        t=round(t, 6),
        tags=tracer.record_tags(),
        transaction_id=tracer.transaction_id,
    )
    if failure is not None:
        return TCPResult(record, None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return TCPResult(record, TCPStream(sock, address, tracer))
