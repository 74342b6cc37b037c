"""One HTTP exchange as an OONI ``httpt`` transaction (df-001), built as it happens.

A :class:`TransactionBuilder` is made when the exchange starts (its ``t0``); ``start``
marks the request going out (``http_transaction_start``), ``done`` the end of the
response (``http_transaction_done``) and returns the record; ``record`` builds a record
without events (a hop that failed before any request was sent). The record's tags and
transaction id are the tracer's. Bodies are text when valid UTF-8, else base64
(MaybeBinaryData); the title is OONI's ``(?i)<title>([^<]{1,512})</title>``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from didban.model.ooni import (
    BinaryData,
    HTTPRequest,
    HTTPResponse,
    HTTPTransaction,
    page_title,
)
from didban.net import trace
from didban.net.httpwire import RawResponse
from didban.net.trace import Tracer


def extract_title(body: bytes | str) -> str:
    """OONI's title of a body (``model.ooni.page_title``); "" if none."""
    return page_title(body if isinstance(body, str) else body.decode("utf-8", errors="replace"))


def body_value(body: bytes) -> str | BinaryData:
    """OONI MaybeBinaryData: the body as text if valid UTF-8, else base64."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return BinaryData(base64.b64encode(body).decode())


def first_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """OONI's ``headers`` map: the first value of each header name."""
    out: dict[str, str] = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


class TransactionBuilder:
    """The record of one exchange: ``url``, ``method`` and the request headers as sent
    (Host first). ``network``/``x_transport`` are ``tcp`` (``udp``/``quic`` for HTTP/3);
    ``binary_body`` (DoH's DNS messages) stores the body as base64 and no title."""

    def __init__(
        self,
        tracer: Tracer,
        url: str,
        method: str,
        headers: Sequence[tuple[str, str]],
        *,
        t0: float | None = None,
        network: str = "tcp",
        x_transport: str = "tcp",
        binary_body: bool = False,
    ) -> None:
        self.tracer = tracer
        self.url = url
        self.method = method
        self.headers = list(headers)
        self.t0 = tracer.now() if t0 is None else t0
        self.network = network
        self.x_transport = x_transport
        self.binary_body = binary_body
        self.address = ""

    def start(self, address: str) -> None:
        """The request is about to be written to ``address``."""
        self.address = address
        self.tracer.event(trace.HTTP_TRANSACTION_START, address=address)

    def done(self, raw: RawResponse | None, failure: str | None, alpn: str) -> HTTPTransaction:
        """The exchange ended (``raw`` is what came back, if anything)."""
        t = self.tracer.now()
        self.tracer.event(
            trace.HTTP_TRANSACTION_DONE, t0=self.t0, t=t, address=self.address, failure=failure
        )
        return self.record(raw, failure, self.address, alpn, t)

    def record(
        self,
        raw: RawResponse | None,
        failure: str | None,
        address: str = "",
        alpn: str = "",
        t: float | None = None,
    ) -> HTTPTransaction:
        """The transaction as it stands (``t`` defaults to now); no event."""
        response = HTTPResponse()
        if raw is not None:
            response = HTTPResponse(
                code=raw.status,
                headers=first_values(raw.headers),
                headers_list=list(raw.headers),
                body=(
                    BinaryData(base64.b64encode(raw.body).decode())
                    if self.binary_body
                    else body_value(raw.body)
                ),
                body_is_truncated=raw.truncated,
                x_didban_body_length=raw.body_length,
                x_didban_title=None if self.binary_body else extract_title(raw.body),
            )
        return HTTPTransaction(
            request=HTTPRequest(
                url=self.url,
                method=self.method,
                headers=first_values(self.headers),
                headers_list=list(self.headers),
                x_transport=self.x_transport,
            ),
            response=response,
            failure=failure,
            network=self.network,
            address=address,
            alpn=alpn,
            t0=round(self.t0, 6),
            t=round(self.tracer.now() if t is None else t, 6),
            tags=self.tracer.record_tags(),
            transaction_id=self.tracer.transaction_id,
        )
