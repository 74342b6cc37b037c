"""Stand-ins for the two Snowflake parts Debian does not package: the broker and the
server (the WebSocket relay in front of the bridge). Debian's ``snowflake-client`` (the
probe's) and ``snowflake-proxy`` (the lab's) talk to them unchanged.

* **Broker** (rendezvous; the message formats of Snowflake ``common/messages``, client
  protocol 1.0, proxy protocol 1.3): ``POST /client`` (body ``1.0\\n{offer, nat,
  fingerprint}``) waits up to 10 s for a proxy, hands it the offer and waits for its
  answer: ``{"answer"}``, or ``{"error"}``; ``POST /proxy`` (``{Sid, Version, Type, NAT,
  Clients, AcceptedRelayPattern}``) waits up to 10 s for a client offer: ``{"Status":
  "client match", "Offer", "NAT", "RelayURL"}`` or ``{"Status": "no match"}``; ``POST
  /answer`` (``{Version, Sid, Answer}``): ``{"Status": "success"}`` or ``"client gone"``.
  One matching queue, no NAT matching, no metrics. It answers over HTTPS (the lab CA; a
  leaf for the broker's name and its front domain, so a domain-fronted client works and a
  censor can match the front's SNI) and plain HTTP (for the proxy).
* **Server** (relay): accepts the proxy's WebSocket (RFC 6455, binary messages), reads the
  turbo tunnel token and client id, then encapsulated KCP packets; one KCP conversation and
  one smux session per client id (kept when the client comes back through another proxy);
  every smux stream becomes a TCP connection to the bridge's plain ORPort. See
  :mod:`didban.lab.circumvention.turbotunnel` for what is simplified.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any, Final

import h11

from didban.lab.circumvention import turbotunnel as tt

WAIT: Final = 10.0
WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# --- broker ------------------------------------------------------------------------------------


@dataclass
class Broker:
    relay_url: str
    offers: asyncio.Queue[tuple[str, asyncio.Future[str]]] = field(
        default_factory=lambda: asyncio.Queue()
    )
    answers: dict[str, asyncio.Future[str]] = field(default_factory=dict)

    async def client(self, body: bytes) -> dict[str, Any]:
        version, _, rest = body.partition(b"\n")
        if version != b"1.0":
            return {"error": "unsupported message version"}
        offer = json.loads(rest or b"{}").get("offer")
        if not offer:
            return {"error": "no supplied offer"}
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        await self.offers.put((offer, answer))
        try:
            return {"answer": await asyncio.wait_for(answer, WAIT * 2)}
        except TimeoutError:
            return {"error": "timed out waiting for answer!"}

    async def proxy(self, body: bytes) -> dict[str, Any]:
        message = json.loads(body or b"{}")
        sid = message.get("Sid")
        if not sid or not str(message.get("Version", "")).startswith("1."):
            return {"Status": "no match"}
        try:
            offer, answer = await asyncio.wait_for(self.offers.get(), WAIT)
        except TimeoutError:
            return {"Status": "no match"}
        self.answers[sid] = answer
        return {
            "Status": "client match",
            "Offer": offer,
            "NAT": "unknown",
            "RelayURL": self.relay_url,
        }

    async def answer(self, body: bytes) -> dict[str, Any]:
        message = json.loads(body or b"{}")
        future = self.answers.pop(str(message.get("Sid")), None)
        if future is None or future.done() or not message.get("Answer"):
            return {"Status": "client gone"}
        future.set_result(str(message["Answer"]))
        return {"Status": "success"}

    async def route(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        handlers = {"/client": self.client, "/proxy": self.proxy, "/answer": self.answer}
        handler = handlers.get(path.split("?", 1)[0])
        if handler is None:
            return 404, {"error": "not found"}
        try:
            return 200, await handler(body)
        except (ValueError, AttributeError):
            return 400, {"error": "malformed request"}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await h11_request(conn, reader)
                if request is None:
                    return
                status, doc = await self.route(request.target.decode(), body)
                data = json.dumps(doc).encode()
                headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
                writer.write(conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (OSError, h11.ProtocolError, TimeoutError):
            return
        finally:
            writer.close()


async def h11_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(65536), 60)
            conn.receive_data(data)
            if not data and request is None:
                return None, b""
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


# --- server (relay) ----------------------------------------------------------------------------


class Session:
    """One Snowflake client (by client id): its KCP conversation, its smux session, its
    streams to the bridge, and the WebSocket its packets currently go out on."""

    def __init__(self, conv: int, bridge: tuple[str, int]) -> None:
        self.kcp = tt.KCP(conv)
        self.bridge = bridge
        self.mux = tt.Mux(self._open, self._data, self._close)
        self.streams: dict[int, asyncio.StreamWriter] = {}
        self.pending: dict[int, list[bytes]] = {}
        self.out: asyncio.StreamWriter | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def input(self, packet: bytes) -> None:
        stream = self.kcp.input(packet)
        if stream:
            for reply in self.mux.feed(stream):
                self.kcp.send(reply)
        self.flush()

    def flush(self) -> None:
        if self.out is None or self.out.is_closing():
            return
        for packet in self.kcp.packets():
            self.out.write(_ws_frame(tt.encapsulate(packet)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _open(self, sid: int) -> None:
        self.pending[sid] = []
        self._spawn(self._pipe(sid))

    def _data(self, sid: int, data: bytes) -> None:
        writer = self.streams.get(sid)
        if writer is not None:
            writer.write(data)
        elif sid in self.pending:
            self.pending[sid].append(data)

    def _close(self, sid: int) -> None:
        writer = self.streams.pop(sid, None)
        if writer is not None and writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()

    async def _pipe(self, sid: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(*self.bridge)
        except OSError:
            self.kcp.send(tt.Mux.frame(tt.FIN, sid))
            self.flush()
            return
        self.streams[sid] = writer
        for data in self.pending.pop(sid, []):
            writer.write(data)
        try:
            while data := await reader.read(65536):
                self.kcp.send(tt.Mux.data_frames(sid, data))
                self.flush()
        except OSError:
            pass
        self.kcp.send(tt.Mux.frame(tt.FIN, sid))
        self.flush()
        writer.close()


@dataclass
class Relay:
    bridge: tuple[str, int]
    sessions: dict[bytes, Session] = field(default_factory=dict)

    async def resend(self) -> None:
        """Resend what the clients have not acknowledged (KCP's timer)."""
        while True:
            await asyncio.sleep(0.1)
            for session in self.sessions.values():
                session.flush()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not await _ws_accept(reader, writer):
                return
            stream = _WSReader(reader, writer)
            head = await stream.exactly(len(tt.TOKEN) + tt.CLIENT_ID_SIZE)
            if head[: len(tt.TOKEN)] != tt.TOKEN:
                return
            client_id = head[len(tt.TOKEN) :]
            chunks = tt.Decapsulator()
            while data := await stream.read():
                for packet in chunks.feed(data):
                    session = self.sessions.get(client_id)
                    if session is None:
                        conv = tt.conv_of(packet)
                        if conv is None:
                            continue
                        session = self.sessions[client_id] = Session(conv, self.bridge)
                    session.out = writer
                    session.input(packet)
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
            return
        finally:
            writer.close()


async def _ws_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """The WebSocket opening handshake (RFC 6455 §4.2)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    key = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    if key is None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        return False
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    await writer.drain()
    return True


def _ws_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """A final, unmasked server frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class _WSReader:
    """The payload bytes of a client's data frames, as one stream (control frames handled)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()

    async def read(self) -> bytes:
        """The next payload bytes (b"" once the client closed)."""
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            return data
        return await self._frame()

    async def _frame(self) -> bytes:
        while True:
            b0, b1 = await self.reader.readexactly(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            mask = await self.reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
            raw = await self.reader.readexactly(n)
            key = (mask * (n // 4 + 1))[:n]
            payload = (int.from_bytes(raw, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
            if opcode == 0x8:  # close
                return b""
            if opcode == 0x9:  # ping
                self.writer.write(_ws_frame(payload, 0xA))
                continue
            if opcode in (0x0, 0x1, 0x2) and payload:
                return payload

    async def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = await self._frame()
            if not data:
                raise asyncio.IncompleteReadError(bytes(self.buf), n)
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out
