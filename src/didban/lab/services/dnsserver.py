"""DNS transports of the lab's resolvers: UDP and TCP on 53, DoT (TLS) on 853.

The transports only frame messages; what to answer is a callback, so the public resolvers
(the lab zone) and the ISP resolver (hijack policy + forwarding) share them. A callback that
returns None sends nothing (a dropped query). TCP/DoT connections are concurrent and close
after an idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, cast

IDLE_TIMEOUT: Final = 10.0
HANDSHAKE_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class Query:
    wire: bytes
    src: tuple[str, int]
    dst: tuple[str, int]
    transport: str  # "udp", "tcp", "dot", "doh"


Answerer = Callable[[Query], Awaitable[bytes | None]]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, answerer: Answerer, local: tuple[str, int]) -> None:
        self._answerer = answerer
        self._local = local
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._reply(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        out = await self._answerer(Query(data, (addr[0], addr[1]), self._local, "udp"))
        if out is not None and self._transport is not None:
            self._transport.sendto(out, addr)


async def serve_udp(answerer: Answerer, addr: str, port: int = 53) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Udp(answerer, (addr, port)), local_addr=(addr, port), reuse_port=False
    )
    return transport


def _stream_handler(
    answerer: Answerer, kind: str
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), IDLE_TIMEOUT)
                (length,) = struct.unpack("!H", head)
                wire = await asyncio.wait_for(reader.readexactly(length), IDLE_TIMEOUT)
                out = await answerer(Query(wire, (peer[0], peer[1]), (local[0], local[1]), kind))
                if out is None:
                    continue
                writer.write(struct.pack("!H", len(out)) + out)
                await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    return handle


async def serve_tcp(
    answerer: Answerer, addr: str, port: int = 53, ssl_ctx: ssl.SSLContext | None = None
) -> asyncio.Server:
    """TCP DNS (RFC 7766 framing) on ``addr:port``; DoT when ``ssl_ctx`` is given."""
    return await asyncio.start_server(
        _stream_handler(answerer, "dot" if ssl_ctx else "tcp"),
        host=addr,
        port=port,
        ssl=ssl_ctx,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT if ssl_ctx else None,
        backlog=256,
        reuse_address=True,
    )
