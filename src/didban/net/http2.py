"""The client side of one HTTP/2 connection (h2) over an open TLS stream.

Each request is a stream of the connection. Two ways to wait for the answer:

* **read inline** (``fetch``'s one request per connection): the request's own coroutine
  reads the connection until its response has ended, writing what h2 owes the peer
  (SETTINGS ACK, WINDOW_UPDATE) between reads;
* **a reader task** (:meth:`Connection.start_reader`, the DoH session's shared connection):
  one task reads for every request in flight, so many lookups are multiplexed on one
  connection and its death is noticed while it is idle (:attr:`Connection.dead`).

Either way a response is read into a capped body sink. When the connection ends (EOF or
GOAWAY) a response whose headers arrived ends with the body read so far; a request with
no response yet fails with ``eof_error``; a stream reset fails its request only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from didban.model import failures
from didban.net import errors
from didban.net.httpwire import READ_SIZE, BodySink, RawResponse
from didban.net.stream import Stream

# request headers HTTP/2 carries as pseudo-headers or forbids (RFC 9113 §8.2.2)
_NOT_SENT = frozenset({"host", "connection"})


class _Reply:
    """One request's response as it arrives."""

    __slots__ = ("done", "headers", "sink", "status")

    def __init__(self, sink: BodySink) -> None:
        self.sink = sink
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def end(self, why: str) -> None:
        """The connection ended: keep a response that began, else fail with eof_error."""
        if self.status is not None:
            self.finish()
        else:
            self.fail(errors.NetFailure(failures.EOF_ERROR, why))

    def response(self) -> RawResponse:
        self.done.result()  # raises the failure, if any
        if self.status is None:
            raise errors.NetFailure(failures.EOF_ERROR, "no response")
        return self.sink.response(self.status, self.headers, "HTTP/2")


class Connection:
    """One client HTTP/2 connection over ``stream`` (which negotiated ``h2``)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.address = stream.address
        self.h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.h2.initiate_connection()  # the preface goes out with the first request
        self.replies: dict[int, _Reply] = {}
        self.dead: BaseException | None = None
        self.lock = asyncio.Lock()
        self.reader: asyncio.Task[None] | None = None

    def start_reader(self) -> None:
        """Read the connection in a task of its own from now on (shared connections)."""
        self.reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def request(
        self,
        method: str,
        scheme: str,
        authority: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        sink: BodySink,
    ) -> RawResponse:
        """Send one request and wait for its response; raises the network or protocol
        exception (classify with ``net.errors``)."""
        if self.dead is not None:
            raise errors.NetFailure(failures.EOF_ERROR, "HTTP/2 connection closed")
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", scheme), (":authority", authority)]
        hdrs += [(":path", path)] + [
            (k.lower(), v) for k, v in headers if k.lower() not in _NOT_SENT
        ]
        reply = _Reply(sink)
        self.replies[sid] = reply
        try:
            self.h2.send_headers(sid, hdrs, end_stream=not body)
            if body:
                self.h2.send_data(sid, body, end_stream=True)
            await self._send()
            if self.reader is None:
                await self._read_until(reply)
            else:
                await reply.done
        except BaseException:
            self.replies.pop(sid, None)
            if self.dead is None:
                with contextlib.suppress(Exception):
                    self.h2.reset_stream(sid)
            raise
        return reply.response()

    async def _send(self) -> None:
        if self.reader is None:  # one request, read inline: nobody else writes
            data = self.h2.data_to_send()
            if data:
                await self.stream.write(data)
            return
        # take the bytes under the lock: HPACK header blocks must reach the peer in the
        # order they were encoded, whichever request's coroutine writes them
        async with self.lock:
            data = self.h2.data_to_send()
            if data:
                await self.stream.write(data)

    async def _read_until(self, reply: _Reply) -> None:
        while not reply.done.done():
            data = await self.stream.read(READ_SIZE)
            if not data:
                self._end("connection closed before a response")
                return
            self._receive(data)
            if not reply.done.done():
                await self._send()

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.stream.read(READ_SIZE)
                if not data:
                    raise errors.NetFailure(failures.EOF_ERROR, "HTTP/2 connection closed")
                self._receive(data)
                await self._send()
        except BaseException as exc:
            self._fail(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _receive(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            sid = getattr(event, "stream_id", None)
            reply = self.replies.get(sid) if sid is not None else None
            if isinstance(event, h2.events.ResponseReceived) and reply is not None:
                raw = [
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in event.headers or []
                ]
                reply.status = int(dict(raw).get(":status", "0"))
                reply.headers = [(k, v) for k, v in raw if not k.startswith(":")]
                reply.sink.start()
            elif isinstance(event, h2.events.DataReceived) and sid is not None:
                with contextlib.suppress(h2.exceptions.StreamClosedError):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
                if reply is not None and not reply.sink.add(event.data or b""):
                    self.replies.pop(sid, None)  # over the cap: the response ends here
                    reply.finish()
                    with contextlib.suppress(Exception):
                        self.h2.reset_stream(sid)
            elif isinstance(event, h2.events.StreamEnded) and reply is not None:
                self.replies.pop(event.stream_id, None)
                reply.finish()
            elif isinstance(event, h2.events.StreamReset) and reply is not None:
                self.replies.pop(event.stream_id, None)
                reply.fail(
                    errors.NetFailure(
                        failures.unknown(f"h2 stream reset, error code {event.error_code}")
                    )
                )
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._end("h2 GOAWAY before a response")

    def _end(self, why: str) -> None:
        """The peer ended the connection (EOF or GOAWAY)."""
        if self.dead is None:
            self.dead = errors.NetFailure(failures.EOF_ERROR, why)
        for reply in self.replies.values():
            reply.end(why)
        self.replies.clear()

    def _fail(self, exc: BaseException) -> None:
        """Reading failed (reset, timeout, cancellation): every waiting request fails."""
        if self.dead is None:
            self.dead = exc
        if isinstance(exc, asyncio.CancelledError):
            exc = errors.NetFailure(failures.EOF_ERROR, "HTTP/2 connection closed")
        for reply in self.replies.values():
            reply.fail(exc)
        self.replies.clear()

    def close(self) -> None:
        """Fail what still waits and close the stream (after the reader, if any, stopped)."""
        self._fail(errors.NetFailure(failures.EOF_ERROR, "HTTP/2 connection closed"))
        reader, self.reader = self.reader, None
        if reader is not None and not reader.done():
            # close the socket only once the reader has left the selector: closing it
            # while sock_recv is registered lets a new socket reuse the fd under epoll
            reader.add_done_callback(lambda _: self.stream.close())
            reader.cancel()
        else:
            self.stream.close()
