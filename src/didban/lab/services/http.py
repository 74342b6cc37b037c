"""HTTP/1.1 (h11) and HTTP/2 (h2, chosen by ALPN) over asyncio streams, plain or TLS.

Every connection is its own task (a concurrent server), with a TLS handshake timeout and an
idle timeout on every read and write: a half-open flow left behind by a censor's injected
RST (pitfall P9) is dropped after the timeout and never delays another connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h11

from didban.lab.services.routes import Request, Response, host_of

HANDSHAKE_TIMEOUT: Final = 10.0
IDLE_TIMEOUT: Final = 30.0
MAX_BODY: Final = 1 << 20

App = Callable[[Request], Response]


async def _read(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT)


async def _drain(writer: asyncio.StreamWriter) -> None:
    await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)


def _with_length(resp: Response) -> list[tuple[str, str]]:
    headers = [(k.lower(), v) for k, v in resp.headers]
    if not any(k == "content-length" for k, _ in headers):
        headers.append(("content-length", str(resp.length)))
    return headers


async def _serve_h11(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App, local: str, scheme: str
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    while True:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    msg = b"malformed HTTP request\n"
                    writer.write(
                        conn.send(
                            h11.Response(
                                status_code=400,
                                headers=[
                                    ("content-length", str(len(msg))),
                                    ("connection", "close"),
                                ],
                            )
                        )
                        + conn.send(h11.Data(data=msg))
                        + conn.send(h11.EndOfMessage())
                    )
                    await _drain(writer)
                return
            if event is h11.NEED_DATA:
                data = await _read(reader)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    return
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
        assert request is not None
        headers = [(k.decode().lower(), v.decode("latin-1")) for k, v in request.headers]
        req = Request(
            method=request.method.decode(),
            target=request.target.decode("latin-1"),
            host=host_of(next((v for k, v in headers if k == "host"), None)),
            headers=headers,
            body=bytes(body),
            local_addr=local,
            scheme=scheme,
            http_version="1.1" if request.http_version == b"1.1" else "1.0",
        )
        resp = app(req)
        writer.write(conn.send(h11.Response(status_code=resp.status, headers=_with_length(resp))))
        for chunk in resp.chunks():
            writer.write(conn.send(h11.Data(data=chunk)))
            await _drain(writer)
        writer.write(conn.send(h11.EndOfMessage()))
        await _drain(writer)
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return


class _H2Session:
    """One HTTP/2 connection: a reader loop and one task per request stream."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App, local: str
    ) -> None:
        self.reader, self.writer, self.app, self.local = reader, writer, app, local
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        self.window = asyncio.Event()
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def run(self) -> None:
        self.conn.initiate_connection()
        self.flush()
        try:
            while not self.closed:
                data = await _read(self.reader)
                if not data:
                    break
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.flush()
                    break
                for ev in events:
                    self._event(ev)
                self.flush()
                await _drain(self.writer)
        finally:
            self.closed = True
            self.window.set()
            for t in list(self.tasks):
                t.cancel()

    def _event(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.RequestReceived) and ev.stream_id is not None:
            hdrs = [(str(k), str(v)) for k, v in (ev.headers or [])]
            self.streams[ev.stream_id] = (hdrs, bytearray())
            if ev.stream_ended is not None:
                self._dispatch(ev.stream_id)
        elif isinstance(ev, h2.events.DataReceived) and ev.stream_id is not None:
            entry = self.streams.get(ev.stream_id)
            if entry is not None and ev.data is not None:
                entry[1].extend(ev.data)
            self.conn.acknowledge_received_data(ev.flow_controlled_length or 0, ev.stream_id)
            if ev.stream_ended is not None:
                self._dispatch(ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id is not None:
            if ev.stream_id in self.streams:
                self._dispatch(ev.stream_id)
        elif isinstance(ev, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window.set()
        elif isinstance(ev, h2.events.StreamReset) and ev.stream_id is not None:
            self.streams.pop(ev.stream_id, None)
            self.window.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closed = True

    def _dispatch(self, stream_id: int) -> None:
        entry = self.streams.pop(stream_id, None)
        if entry is None:
            return
        task = asyncio.get_running_loop().create_task(self._respond(stream_id, *entry))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _respond(self, sid: int, headers: list[tuple[str, str]], body: bytearray) -> None:
        pseudo = {k: v for k, v in headers if k.startswith(":")}
        req = Request(
            method=pseudo.get(":method", "GET"),
            target=pseudo.get(":path", "/"),
            host=host_of(
                pseudo.get(":authority") or next((v for k, v in headers if k == "host"), None)
            ),
            headers=[(k.lower(), v) for k, v in headers if not k.startswith(":")],
            body=bytes(body),
            local_addr=self.local,
            scheme="https",
            http_version="2",
        )
        resp = self.app(req)
        hdrs = [(":status", str(resp.status))] + [
            (k, v) for k, v in _with_length(resp) if k not in ("connection", "transfer-encoding")
        ]
        try:
            self.conn.send_headers(sid, hdrs, end_stream=resp.length == 0)
            self.flush()
            if resp.length:
                for chunk in resp.chunks():
                    await self._send(sid, chunk)
                self.conn.end_stream(sid)
                self.flush()
            await _drain(self.writer)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, ConnectionError):
            return

    async def _send(self, sid: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.closed:
                raise ConnectionError("connection closed")
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                self.window.clear()
                await asyncio.wait_for(self.window.wait(), IDLE_TIMEOUT)
                continue
            self.conn.send_data(sid, bytes(view[:room]))
            view = view[room:]
            self.flush()
            await _drain(self.writer)


def connection_handler(
    app: App, *, tls: bool
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], asyncio.Future[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        local = str(writer.get_extra_info("sockname")[0])
        try:
            sslobj = writer.get_extra_info("ssl_object")
            alpn = sslobj.selected_alpn_protocol() if sslobj is not None else None
            if alpn == "h2":
                await _H2Session(reader, writer, app, local).run()
            else:
                await _serve_h11(reader, writer, app, local, "https" if tls else "http")
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    return handle  # type: ignore[return-value]


async def serve(
    app: App, addr: str, port: int, ssl_ctx: ssl.SSLContext | None = None
) -> asyncio.Server:
    """Listen on ``addr:port`` (TLS when ``ssl_ctx``); each connection runs concurrently."""
    return await asyncio.start_server(
        connection_handler(app, tls=ssl_ctx is not None),
        host=addr,
        port=port,
        ssl=ssl_ctx,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT if ssl_ctx is not None else None,
        backlog=1024,
        reuse_address=True,
    )
