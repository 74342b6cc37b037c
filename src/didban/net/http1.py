"""One HTTP/1.1 request on an open stream (h11): the bytes written, the response read into
a capped body sink. A connection carries one request (fetch opens one per hop) or, kept
alive, one request after another (the control client's sessions)."""

from __future__ import annotations

from collections.abc import Sequence

import h11

from didban.model import failures
from didban.net import errors
from didban.net.httpwire import READ_SIZE, BodySink, RawResponse
from didban.net.stream import Stream


async def request(
    stream: Stream,
    method: str,
    target: str,
    host: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    sink: BodySink,
) -> RawResponse:
    """Send ``method target`` with ``Host: host`` and ``headers``; read the response.

    Raises the network or protocol exception (classify with ``net.errors``); EOF before a
    response is ``eof_error``."""
    conn = h11.Connection(h11.CLIENT)
    hdrs = [("Host", host), *headers]
    if body or method in ("POST", "PUT"):
        hdrs.append(("Content-Length", str(len(body))))
    out = conn.send(h11.Request(method=method, target=target, headers=hdrs)) or b""
    if body:
        out += conn.send(h11.Data(data=body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.write(out)
    response: h11.Response | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.read(READ_SIZE)
            if not data and response is None:
                raise errors.NetFailure(failures.EOF_ERROR, "connection closed before a response")
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Response):
            response = event
            sink.start()
        elif isinstance(event, h11.Data):
            if not sink.add(bytes(event.data)):
                break
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    if response is None:
        raise errors.NetFailure(failures.EOF_ERROR, "connection closed before a response")
    decoded = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw_items()]
    return sink.response(response.status_code, decoded, "HTTP/1.1")
