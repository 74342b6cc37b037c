"""The test helper's HTTP server: OONI oohelperd's wire protocol on asyncio + h11.

``GET /`` answers ``{"message": "Hello OONItarian!"}``; ``POST /`` takes a ``THRequest``
JSON body and answers the ``THResponse`` of :func:`didban.control.helper.measure`.
``GET /x-didban/whoami`` (didban's extension) answers ``{"address": "<the client's source
address as the helper sees it>"}``: the probe looks its network up offline from that, with
no third party (OONI's probe asks STUN servers and its backend). ``POST /x-didban/stun``
(``{"endpoint": "host:port"}``) repeats the probe's STUN Binding transaction from here. A bad
request (not JSON, wrong schema, not an http(s) URL, body over 1 MiB) gets HTTP 400 with
``{"error": "<one sentence>"}``. Connections are served concurrently and kept alive.
A plain asyncio server (no web framework) keeps start-up well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Final

import h11
import msgspec

from didban import __version__
from didban.control.helper import BadRequest, HelperConfig, check_request, measure, stun_binding
from didban.model.ooni import THRequest
from didban.model.ooniapps import STUNControlRequest

MAX_REQUEST_BODY: Final = 1 << 20
HELLO: Final = b'{"message":"Hello OONItarian!"}'
IDLE_TIMEOUT: Final = 60.0
_decoder = msgspec.json.Decoder(THRequest)
_encoder = msgspec.json.Encoder()


def _error(message: str) -> bytes:
    return _encoder.encode({"error": message})


WHOAMI: Final = "/x-didban/whoami"
STUN: Final = "/x-didban/stun"
_stun_decoder = msgspec.json.Decoder(STUNControlRequest)


async def handle_body(
    method: str, target: str, body: bytes | None, cfg: HelperConfig, peer: str = ""
) -> tuple[int, bytes]:
    """Status and JSON body for one request (``body`` None: it was over the limit;
    ``peer``: the client's source address)."""
    path = target.split("?", 1)[0]
    if path == WHOAMI:
        if method not in ("GET", "HEAD"):
            return 405, _error(f"method {method} is not allowed on {WHOAMI}; use GET")
        return 200, _encoder.encode({"address": peer})
    if path == STUN:
        return await _stun(method, body, cfg)
    if path != "/":
        return 404, _error(f"no such resource {path!r}; the helper answers at /")
    if method in ("GET", "HEAD"):
        return 200, HELLO
    if method != "POST":
        return 405, _error(f"method {method} is not allowed; use GET or POST")
    if body is None:
        return 400, _error(f"the request body is larger than {MAX_REQUEST_BODY} bytes")
    try:
        req = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        return 400, _error(f"the request does not follow the THRequest schema: {exc}")
    except msgspec.DecodeError:
        return 400, _error("the request body is not valid JSON")
    try:
        check_request(req)
    except BadRequest as exc:
        return 400, _error(str(exc))
    return 200, _encoder.encode(await measure(req, cfg))


async def _stun(method: str, body: bytes | None, cfg: HelperConfig) -> tuple[int, bytes]:
    if method != "POST":
        return 405, _error(f"method {method} is not allowed on {STUN}; use POST")
    if body is None:
        return 400, _error(f"the request body is larger than {MAX_REQUEST_BODY} bytes")
    try:
        req = _stun_decoder.decode(body)
    except msgspec.ValidationError as exc:
        return 400, _error(f"the request does not follow the STUN request schema: {exc}")
    except msgspec.DecodeError:
        return 400, _error("the request body is not valid JSON")
    try:
        return 200, _encoder.encode(await stun_binding(req, cfg))
    except BadRequest as exc:
        return 400, _error(str(exc))


class _Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cfg: HelperConfig
    ) -> None:
        self.reader, self.writer, self.cfg = reader, writer, cfg
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""

    async def _next(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    data = await self.reader.read(65536)
                self.conn.receive_data(data)
                continue
            return event

    async def _send(self, status: int, body: bytes, keep_alive: bool) -> None:
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Server", f"didban-control/{__version__}"),
        ]
        if not keep_alive:
            headers.append(("Connection", "close"))
        out = self.conn.send(h11.Response(status_code=status, headers=headers)) or b""
        out += self.conn.send(h11.Data(data=body)) or b""
        out += self.conn.send(h11.EndOfMessage()) or b""
        self.writer.write(out)
        await self.writer.drain()

    async def serve(self) -> None:
        try:
            while True:
                event = await self._next()
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    return
                method = event.method.decode("ascii", "replace").upper()
                target = event.target.decode("ascii", "replace")
                body: bytearray | None = bytearray()
                while True:
                    part = await self._next()
                    if isinstance(part, h11.Data):
                        if body is not None:
                            body += part.data
                            if len(body) > MAX_REQUEST_BODY:
                                body = None
                    elif isinstance(part, h11.EndOfMessage):
                        break
                    else:
                        return
                status, payload = await handle_body(
                    method, target, None if body is None else bytes(body), self.cfg, self.peer
                )
                await self._send(status, b"" if method == "HEAD" else payload, keep_alive=True)
                if self.conn.our_state is h11.MUST_CLOSE:
                    return
                self.conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            with contextlib.suppress(Exception):
                if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(
                        exc.error_status_hint, _error(f"bad HTTP request: {exc}"), keep_alive=False
                    )
        except (ConnectionError, TimeoutError, OSError, h11.LocalProtocolError):
            pass
        finally:
            self.writer.close()


async def start(host: str, port: int, cfg: HelperConfig) -> asyncio.Server:
    """Listen on ``host:port`` (port 0: any) and serve the helper until the server closes."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Connection(reader, writer, cfg).serve()

    return await asyncio.start_server(on_connect, host, port, limit=1 << 16, backlog=512)


async def serve_forever(host: str, port: int, cfg: HelperConfig) -> None:
    """Run until SIGINT/SIGTERM; announce the bound address on stderr."""
    server = await start(host, port, cfg)
    addr = server.sockets[0].getsockname()
    shown = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    sys.stderr.write(f"didban control: listening on http://{shown}:{addr[1]}/\n")
    sys.stderr.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
