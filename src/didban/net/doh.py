"""A shared DNS-over-HTTPS connection: one TLS + HTTP/2 connection per DoH server and run.

Opening a TLS connection per lookup costs a handshake on both sides (~14 ms of CPU per
lookup with h2 set-up, measured in bench/probe_throughput.py). A :class:`DoHSession` keeps
one connection to a DoH server open and multiplexes every lookup of a run over it as its
own HTTP/2 stream (RFC 8484 §5 recommends exactly this). Evidence is kept per lookup:

* the lookup that opens a connection records its ``tcp_connect`` and ``tls_handshakes``
  (with the certificate chain and the verification outcome), as a lookup did before;
* every lookup records its own HTTP exchange (``requests``: POST, status, headers, the
  DNS answer as base64 body, address, ALPN, timings) and says whether the connection was
  reused (``reused``);
* a lookup never waits for another one's connection: when none is open (first lookups,
  after a failure or a GOAWAY) it opens its own, so a blocked DoH server shows its
  failure in every measurement; a request that fails on a *reused* connection before any
  answer is retried once on a fresh connection (both attempts are recorded).

If the server does not negotiate ``h2`` the exchange runs over HTTP/1.1 on a connection
of its own, closed afterwards (no multiplexing possible).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from didban.model import failures as F
from didban.model.ooni import TCPConnect, TLSHandshake
from didban.net import errors
from didban.net import http as httpmod
from didban.net import tcp as tcpmod
from didban.net import tls as tlsmod
from didban.net import trace as tr
from didban.net.stream import format_address, split_address

DNS_MESSAGE = "application/dns-message"


@dataclass
class Exchange:
    """What one DoH request did: connection records (if it opened one) and the reply."""

    tcp_connect: list[TCPConnect] = field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = field(default_factory=list)
    attempts: list[tuple[httpmod.RawResponse | None, str | None, str, str, float, float]] = field(
        default_factory=list
    )  # (raw reply, failure, address, alpn, t0, t) per attempt, oldest first
    reused: bool = False

    @property
    def last(self) -> tuple[httpmod.RawResponse | None, str | None]:
        if not self.attempts:
            return None, F.unknown("no DoH request was made")
        raw, failure, *_ = self.attempts[-1]
        return raw, failure


class _Reply:
    __slots__ = ("body", "done", "headers", "status")

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class _H2Conn:
    """One multiplexed HTTP/2 connection over a TLS stream, with a reader task."""

    def __init__(self, stream: tlsmod.TLSStream) -> None:
        self.stream = stream
        self.address = stream.address
        # the connection outlives the lookup that opened it: its reads and writes are not
        # that lookup's events any more (each lookup records its own exchange instead)
        stream.raw.trace = tr.Trace(record_events=False)
        self.h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.h2.initiate_connection()
        self.replies: dict[int, _Reply] = {}
        self.dead: BaseException | None = None
        self.lock = asyncio.Lock()
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._send()
        self.reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def _send(self) -> None:
        # take the bytes under the lock: HPACK header blocks must reach the server in the
        # order they were encoded, whichever request's coroutine writes them
        async with self.lock:
            data = self.h2.data_to_send()
            if data:
                await self.stream.write(data)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.stream.read(65536)
                if not data:
                    raise errors.NetFailure(F.EOF_ERROR, "DoH connection closed")
                for event in self.h2.receive_data(data):
                    self._on_event(event)
                await self._send()
        except BaseException as exc:
            self._fail(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _on_event(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        reply = self.replies.get(sid) if sid is not None else None
        if isinstance(event, h2.events.ResponseReceived) and reply is not None:
            raw = [
                (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                for k, v in event.headers or []
            ]
            reply.status = int(dict(raw).get(":status", "0"))
            reply.headers = [(k, v) for k, v in raw if not k.startswith(":")]
        elif isinstance(event, h2.events.DataReceived):
            if sid is not None:
                with contextlib.suppress(h2.exceptions.StreamClosedError):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
            if reply is not None:
                reply.body += event.data or b""
        elif isinstance(event, h2.events.StreamEnded) and reply is not None:
            self.replies.pop(event.stream_id, None)
            if not reply.done.done():
                reply.done.set_result(None)
        elif isinstance(event, h2.events.StreamReset) and reply is not None:
            self.replies.pop(event.stream_id, None)
            if not reply.done.done():
                reply.done.set_exception(
                    errors.NetFailure(F.unknown(f"h2 stream reset, error code {event.error_code}"))
                )
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._fail(errors.NetFailure(F.EOF_ERROR, "h2 GOAWAY"))

    def _fail(self, exc: BaseException) -> None:
        if self.dead is None:
            self.dead = exc
        for reply in self.replies.values():
            if not reply.done.done():
                reply.done.set_exception(
                    exc
                    if not isinstance(exc, asyncio.CancelledError)
                    else errors.NetFailure(F.EOF_ERROR, "DoH connection closed")
                )
        self.replies.clear()

    async def request(
        self, path: str, authority: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> httpmod.RawResponse:
        if self.dead is not None:
            raise errors.NetFailure(F.EOF_ERROR, "DoH connection closed")
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(":method", "POST"), (":scheme", "https"), (":authority", authority)]
        hdrs += [(":path", path)] + [(k.lower(), v) for k, v in headers]
        reply = _Reply()
        self.replies[sid] = reply
        loop = asyncio.get_running_loop()
        try:
            self.h2.send_headers(sid, hdrs, end_stream=not body)
            if body:
                self.h2.send_data(sid, body, end_stream=True)
            t_sent = loop.time()
            await self._send()
            await reply.done
        except BaseException:
            self.replies.pop(sid, None)
            if self.dead is None:
                with contextlib.suppress(Exception):
                    self.h2.reset_stream(sid)
            raise
        if reply.status is None:
            raise errors.NetFailure(F.EOF_ERROR, "no response")
        elapsed = loop.time() - t_sent
        return httpmod.RawResponse(
            status=reply.status,
            headers=reply.headers,
            body=bytes(reply.body),
            body_length=len(reply.body),
            truncated=False,
            http_version="HTTP/2",
            throughput=len(reply.body) / elapsed if elapsed > 0 and reply.body else None,
        )

    def close(self) -> None:
        self._fail(errors.NetFailure(F.EOF_ERROR, "DoH connection closed"))
        with contextlib.suppress(Exception):
            self.h2.close_connection()
            data = self.h2.data_to_send()
            if data:
                self.stream.raw.sock.send(data)
        reader, self.reader = self.reader, None
        if reader is not None and not reader.done():
            # close the socket only once the reader has left the selector: closing it
            # while sock_recv is registered lets a new socket reuse the fd under epoll
            reader.add_done_callback(lambda _: self.stream.close())
            reader.cancel()
        else:
            self.stream.close()


class DoHSession:
    """Lookups to one DoH server over one shared HTTP/2 connection (per event loop).

    ``url`` is the DoH URL (its host is SNI and ``:authority``), ``bootstrap_address``
    (``ip`` or ``ip:port``) where to connect. Call :meth:`close` when the run ends.
    """

    def __init__(
        self,
        url: str,
        bootstrap_address: str,
        *,
        ca_file: str | None = None,
        verify_peer: bool = True,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"a DoH URL must be https://host/path, not {url!r}")
        self.url = url
        self.host = parts.hostname
        self.ip, self.port = split_address(bootstrap_address, parts.port or 443)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.authority = httpmod._authority(self.host, parts.port or 443, "https")
        self.ca_file = ca_file
        self.verify_peer = verify_peer
        self._conn: _H2Conn | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def matches(self, url: str, bootstrap_address: str) -> bool:
        parts = urlsplit(url)
        return url == self.url and split_address(bootstrap_address, parts.port or 443) == (
            self.ip,
            self.port,
        )

    def _live(self) -> _H2Conn | None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (e.g. a second asyncio.run)
            if self._conn is not None:  # its reader task died with the old loop
                self._conn.stream.raw.close()
            self._conn, self._loop = None, loop
        if self._conn is not None and self._conn.dead is not None:
            self._conn.close()
            self._conn = None
        return self._conn

    async def exchange(
        self,
        body: bytes,
        *,
        trace: tr.Trace,
        timeout: float,
        tags: list[str] | None = None,
        transaction_id: int | None = None,
        into: Exchange | None = None,
    ) -> Exchange:
        """POST ``body`` (a DNS query in wire format); raises only on cancellation/timeout.

        Each request is framed by ``http_transaction_start``/``_done`` events in ``trace``.
        Records go into ``into`` (if given) as they happen, so a caller's deadline that
        cancels the exchange still keeps what was measured (e.g. the TCP connect).
        """
        ex = into if into is not None else Exchange()
        conn = self._live()
        ex.reused = conn is not None
        headers = (("Content-Type", DNS_MESSAGE), ("Accept", DNS_MESSAGE))

        def begin(address: str) -> float:
            t0 = trace.now()
            trace.event(
                tr.HTTP_TRANSACTION_START,
                t=t0,
                address=address,
                tags=tags,
                transaction_id=transaction_id,
            )
            return t0

        def end(
            raw: httpmod.RawResponse | None, failure: str | None, address: str, alpn: str, t0: float
        ) -> None:
            t = trace.now()
            trace.event(
                tr.HTTP_TRANSACTION_DONE,
                t0=t0,
                t=t,
                address=address,
                failure=failure,
                tags=tags,
                transaction_id=transaction_id,
            )
            ex.attempts.append((raw, failure, address, alpn, t0, t))

        if conn is not None:
            t0 = begin(conn.address)
            try:
                raw = await conn.request(self.path, self.authority, headers, body)
            except Exception as exc:
                end(None, errors.classify(exc), conn.address, "h2", t0)
            else:
                end(raw, None, conn.address, "h2", t0)
                return ex
        # open a connection of our own (first lookups, or the shared one failed); the
        # connect and the handshake share the budget, so each records its own timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def left() -> float:
            return max(deadline - loop.time(), 0.001)

        tcp_r = await tcpmod.connect(
            self.ip,
            self.port,
            trace=trace,
            timeout=left(),
            tags=tags,
            transaction_id=transaction_id,  # the connection's records share the lookup's id
        )
        ex.tcp_connect.append(tcp_r.record)
        tls_r: tlsmod.TLSResult | None = None
        if tcp_r.stream is not None:
            tls_r = await tlsmod.handshake(
                tcp_r.stream,
                server_name=self.host,
                trace=trace,
                ca_file=self.ca_file,
                verify_peer=self.verify_peer,
                timeout=left(),
                tags=tags,
                transaction_id=tcp_r.record.transaction_id,
            )
            ex.tls_handshakes.append(tls_r.record)
        address = format_address(self.ip, self.port)
        if tls_r is None or tls_r.stream is None:
            t = trace.now()
            ex.attempts.append((None, (tls_r or tcp_r).failure, address, "", t, t))
            return ex
        stream = tls_r.stream
        t0 = begin(address)
        if stream.alpn != "h2":
            try:
                raw = await httpmod.request_on_stream(
                    stream,
                    self.url,
                    trace=trace,
                    method="POST",
                    headers=headers,
                    body=body,
                    body_cap=65535,
                    timeout=timeout,
                )
            except Exception as exc:
                end(None, errors.classify(exc), address, stream.alpn, t0)
            else:
                end(raw, None, address, stream.alpn, t0)
            finally:
                stream.close()
            return ex
        new = _H2Conn(stream)
        try:
            await new.start()
            raw = await new.request(self.path, self.authority, headers, body)
        except BaseException as exc:
            new.close()
            if not isinstance(exc, Exception):
                raise
            end(None, errors.classify(exc), address, "h2", t0)
            return ex
        end(raw, None, address, "h2", t0)
        if self._live() is None:
            self._conn = new  # share it with every later lookup
        else:
            new.close()  # another lookup's connection is already shared
        return ex

    def close(self) -> None:
        """Close the shared connection (if any); later lookups open a new one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
