"""HTTP/1.1 (h11) and HTTP/2 (h2) requests over didban's own TCP/TLS streams.

:func:`fetch` GETs a URL at a chosen address with a chosen SNI and Host, follows redirects
(up to 10, each hop resolved through a caller-supplied resolver so the probe decides DNS)
and returns OONI ``httpt`` transactions newest first. Bodies are capped (512 KiB, OONI's
``maxbody``), titles extracted with OONI's regexp, and the body read rate is reported for
throttling analysis. :func:`request_on_stream` is the single-request primitive (any
method) DoH and the control client use.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import h2.config
import h2.connection
import h2.events
import h11

from didban.model import failures as F
from didban.model.ooni import (
    BinaryData,
    HTTPRequest,
    HTTPResponse,
    HTTPTransaction,
    TCPConnect,
    TLSHandshake,
)
from didban.net import errors
from didban.net import tcp as tcpmod
from didban.net import tls as tlsmod
from didban.net import trace as tr
from didban.net.stream import Stream, format_address, split_address

DEFAULT_TIMEOUT = 10.0
DEFAULT_BODY_CAP = 1 << 19  # 512 KiB (OONI maxbody)
MAX_REDIRECTS = 10
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (
    ("User-Agent", USER_AGENT),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.9"),
)

_TITLE = re.compile(r"(?i)<title>([^<]{1,512})</title>")
_READ_SIZE = 65536

# host name → its addresses (IP literals), or an OONI failure string when resolution failed.
Resolver = Callable[[str], Awaitable[list[str] | str]]


@dataclass
class RawResponse:
    """What one request on one stream returned."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    body_length: int
    truncated: bool
    http_version: str
    throughput: float | None  # body bytes per second, headers → last body byte


@dataclass
class FetchResult:
    """Everything one :func:`fetch` did; ``requests`` is newest first (OONI order)."""

    requests: list[HTTPTransaction] = field(default_factory=list)
    tcp_connect: list[TCPConnect] = field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = field(default_factory=list)
    failure: str | None = None  # the final hop's failure (http_experiment_failure)
    final_url: str = ""
    final_body: bytes = b""
    throughput: float | None = None  # body bytes/s of the final response


def extract_title(body: bytes | str) -> str:
    """OONI's ``(?i)<title>([^<]{1,512})</title>``; "" if none."""
    text = body if isinstance(body, str) else body.decode("utf-8", errors="replace")
    m = _TITLE.search(text)
    return m.group(1) if m else ""


def body_value(body: bytes) -> str | BinaryData:
    """OONI MaybeBinaryData: the body as text if valid UTF-8, else base64."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return BinaryData(base64.b64encode(body).decode())


class _BodySink:
    """Collects a body up to the cap and times it for the throughput figure."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.length = 0
        self.truncated = False
        self.t_start = asyncio.get_running_loop().time()
        self.t_end = self.t_start

    def start(self) -> None:
        self.t_start = self.t_end = asyncio.get_running_loop().time()

    def add(self, data: bytes) -> bool:
        """Append; False once the cap is exceeded (stop reading)."""
        self.t_end = asyncio.get_running_loop().time()
        room = self.cap - self.length
        self.length += len(data)
        if len(data) > room:
            self.chunks.append(data[: max(room, 0)])
            self.truncated = True
            return False
        self.chunks.append(data)
        return True

    def response(self, status: int, headers: list[tuple[str, str]], version: str) -> RawResponse:
        elapsed = self.t_end - self.t_start
        return RawResponse(
            status=status,
            headers=headers,
            body=b"".join(self.chunks),
            body_length=self.length,
            truncated=self.truncated,
            http_version=version,
            throughput=self.length / elapsed if elapsed > 0 and self.length else None,
        )


def _target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, request target) of an absolute http(s) URL; ValueError if not."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    return scheme, parts.hostname, port, path + (f"?{parts.query}" if parts.query else "")


def _authority(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return shown if port == default else f"{shown}:{port}"


async def _h11_request(
    stream: Stream,
    method: str,
    target: str,
    host: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    sink: _BodySink,
) -> RawResponse:
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
            data = await stream.read(_READ_SIZE)
            if not data and response is None:
                raise errors.NetFailure(F.EOF_ERROR, "connection closed before a response")
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
        raise errors.NetFailure(F.EOF_ERROR, "connection closed before a response")
    decoded = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw_items()]
    return sink.response(response.status_code, decoded, "HTTP/1.1")


async def _h2_request(
    stream: Stream,
    method: str,
    scheme: str,
    target: str,
    host: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    sink: _BodySink,
) -> RawResponse:
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    hdrs = [(":method", method), (":scheme", scheme), (":authority", host), (":path", target)]
    hdrs += [(k.lower(), v) for k, v in headers if k.lower() not in ("host", "connection")]
    conn.send_headers(sid, hdrs, end_stream=not body)
    if body:
        conn.send_data(sid, body, end_stream=True)
    await stream.write(conn.data_to_send())
    status: int | None = None
    resp_headers: list[tuple[str, str]] = []
    done = False
    while not done:
        data = await stream.read(_READ_SIZE)
        if not data:
            if status is None:
                raise errors.NetFailure(F.EOF_ERROR, "connection closed before a response")
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == sid:
                raw = [
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in event.headers or []
                ]
                status = int(dict(raw).get(":status", "0"))
                resp_headers = [(k, v) for k, v in raw if not k.startswith(":")]
                sink.start()
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                conn.acknowledge_received_data(event.flow_controlled_length, sid)
                if not sink.add(event.data or b""):
                    done = True
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
                done = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == sid:
                raise errors.NetFailure(
                    F.unknown(f"h2 stream reset, error code {event.error_code}")
                )
            elif isinstance(event, h2.events.ConnectionTerminated) and not done:
                if status is None:
                    raise errors.NetFailure(F.EOF_ERROR, "h2 GOAWAY before a response")
                done = True
        pending = conn.data_to_send()
        if pending and not done:
            await stream.write(pending)
    if status is None:
        raise errors.NetFailure(F.EOF_ERROR, "no response")
    return sink.response(status, resp_headers, "HTTP/2")


async def request_on_stream(
    stream: Stream,
    url: str,
    *,
    trace: tr.Trace,
    method: str = "GET",
    host_header: str | None = None,
    headers: Sequence[tuple[str, str]] = DEFAULT_HEADERS,
    body: bytes = b"",
    body_cap: int = DEFAULT_BODY_CAP,
    timeout: float = DEFAULT_TIMEOUT,
) -> RawResponse:
    """One request on an open stream: h2 if the stream negotiated ``h2``, else HTTP/1.1.

    Raises the network/protocol exception on failure (classify with ``net.errors``).
    """
    scheme, host, port, target = _target(url)
    authority = host_header or _authority(host, port, scheme)
    sink = _BodySink(body_cap)
    async with asyncio.timeout(timeout):
        if stream.alpn == "h2":
            return await _h2_request(stream, method, scheme, target, authority, headers, body, sink)
        return await _h11_request(stream, method, target, authority, headers, body, sink)


def _first_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


async def _system_resolver(trace: tr.Trace) -> Resolver:
    from didban.net import dns as dnsmod  # dns imports http for DoH

    async def resolve(host: str) -> list[str] | str:
        result = await dnsmod.resolve_system(host, trace=trace)
        return result.failure or result.addrs

    return resolve


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def fetch(
    url: str,
    *,
    trace: tr.Trace,
    address: str | None = None,
    resolver: Resolver | None = None,
    server_name: str | None = None,
    host_header: str | None = None,
    headers: Sequence[tuple[str, str]] = DEFAULT_HEADERS,
    method: str = "GET",
    body: bytes = b"",
    alpn: Sequence[str] = tlsmod.DEFAULT_ALPN,
    ca_file: str | None = None,
    verify_peer: bool = True,
    max_redirects: int = MAX_REDIRECTS,
    body_cap: int = DEFAULT_BODY_CAP,
    tcp_timeout: float = tcpmod.DEFAULT_TIMEOUT,
    tls_timeout: float = tlsmod.DEFAULT_TIMEOUT,
    timeout: float = DEFAULT_TIMEOUT,
    tags: list[str] | None = None,
    stream: Stream | None = None,
) -> FetchResult:
    """Fetch ``url`` following redirects; never raises for network failures.

    The first hop connects to ``address`` (``"ip"`` or ``"ip:port"``; port defaults to the
    URL's) if given, else to what ``resolver`` returns for the URL host; every later hop
    asks ``resolver`` (default: the system resolver). ``server_name``/``host_header``
    override SNI and Host on the first hop only. Addresses are tried in order until one
    connects. ``timeout`` bounds each request (after connect/handshake). ``stream`` is
    an already open (and, for https, verified) connection to use for the first hop
    instead of connecting (its connect/handshake records are the caller's); it is closed
    when the fetch is done with it.
    """
    result = FetchResult(final_url=url)
    transactions: list[HTTPTransaction] = []
    cookies: dict[str, dict[str, str]] = {}
    current, hop = url, 0
    while True:
        result.final_url = current
        req_headers = list(headers)
        try:
            scheme, host, port, _ = _target(current)
        except ValueError:
            result.failure = (
                F.HTTP_UNEXPECTED_REDIRECT_URL if hop else F.unknown(f"unsupported URL {current!r}")
            )
            transactions.append(
                transaction(
                    current,
                    method,
                    req_headers,
                    None,
                    result.failure,
                    "",
                    "",
                    trace.now(),
                    trace.now(),
                    tags,
                    0,
                )
            )
            break
        authority = host_header if hop == 0 and host_header else _authority(host, port, scheme)
        req_headers.insert(0, ("Host", authority))
        if cookies.get(host):
            req_headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in cookies[host].items())))
        t0 = trace.now()
        # -- where to connect
        candidates: list[tuple[str, int]]
        if hop == 0 and address:
            candidates = [split_address(address, port)]
        elif _is_ip(host):
            candidates = [(host, port)]
        else:
            resolve = resolver or await _system_resolver(trace)
            resolved = await resolve(host)
            if isinstance(resolved, str) or not resolved:
                result.failure = resolved if isinstance(resolved, str) else F.DNS_NO_ANSWER
                transactions.append(
                    transaction(
                        current,
                        method,
                        req_headers,
                        None,
                        result.failure,
                        "",
                        "",
                        t0,
                        trace.now(),
                        tags,
                        0,
                    )
                )
                break
            candidates = [(ip, port) for ip in resolved]
        sni = server_name if (hop == 0 and server_name is not None) else host
        if _is_ip(sni) and not (hop == 0 and server_name):
            sni = ""  # no SNI for IP literals (RFC 6066 §3)
        # -- connect (and handshake) to the first address that works
        conn: Stream | None = None
        failure: str | None = None
        tid = 0
        used = format_address(*candidates[0])
        if hop == 0 and stream is not None:
            conn, used, candidates = stream, stream.address, []
        for ip, p in candidates:
            used = format_address(ip, p)
            if scheme == "https":
                tcp_r, tls_r = await tlsmod.connect_tls(
                    ip,
                    p,
                    server_name=sni,
                    trace=trace,
                    alpn=alpn,
                    ca_file=ca_file,
                    verify_peer=verify_peer,
                    tcp_timeout=tcp_timeout,
                    tls_timeout=tls_timeout,
                    tags=tags,
                )
                result.tcp_connect.append(tcp_r.record)
                tid = tcp_r.record.transaction_id
                if tls_r is not None:
                    result.tls_handshakes.append(tls_r.record)
                    if tls_r.stream is not None:
                        conn = tls_r.stream
                        break
                    failure = tls_r.failure
                else:
                    failure = tcp_r.failure
            else:
                tcp_r = await tcpmod.connect(ip, p, trace=trace, timeout=tcp_timeout, tags=tags)
                result.tcp_connect.append(tcp_r.record)
                tid = tcp_r.record.transaction_id
                if tcp_r.stream is not None:
                    conn = tcp_r.stream
                    break
                failure = tcp_r.failure
        if conn is None:
            result.failure = failure
            transactions.append(
                transaction(
                    current,
                    method,
                    req_headers,
                    None,
                    failure,
                    used,
                    "",
                    t0,
                    trace.now(),
                    tags,
                    tid,
                )
            )
            break
        # -- the request itself
        trace.event(tr.HTTP_TRANSACTION_START, address=used, tags=tags, transaction_id=tid)
        raw: RawResponse | None = None
        try:
            raw = await request_on_stream(
                conn,
                current,
                trace=trace,
                method=method,
                host_header=authority,
                headers=req_headers[1:],
                body=body,
                body_cap=body_cap,
                timeout=timeout,
            )
        except Exception as exc:
            failure = errors.classify(exc)
        finally:
            conn.close()
        trace.event(
            tr.HTTP_TRANSACTION_DONE,
            t0=t0,
            address=used,
            failure=failure,
            tags=tags,
            transaction_id=tid,
        )
        transactions.append(
            transaction(
                current,
                method,
                req_headers,
                raw,
                failure,
                used,
                conn.alpn,
                t0,
                trace.now(),
                tags,
                tid,
            )
        )
        result.failure = failure
        if raw is None:
            break
        result.final_body = raw.body
        result.throughput = raw.throughput
        for k, v in raw.headers:
            if k.lower() == "set-cookie" and "=" in v:
                name, _, value = v.split(";", 1)[0].partition("=")
                cookies.setdefault(host, {})[name.strip()] = value.strip()
        location = next((v for k, v in raw.headers if k.lower() == "location"), None)
        if raw.status not in REDIRECT_CODES or location is None:
            break
        if hop >= max_redirects:
            result.failure = F.unknown(f"stopped after {max_redirects} redirects")
            break
        nxt = urljoin(current, location.strip())
        if not urlsplit(nxt).hostname:
            result.failure = F.HTTP_INVALID_REDIRECT_LOCATION_HOST
            break
        if raw.status == 303 or (raw.status in (301, 302) and method == "POST"):
            method, body = "GET", b""
        current, hop = nxt, hop + 1
    result.requests = list(reversed(transactions))
    return result


def transaction(
    url: str,
    method: str,
    req_headers: Sequence[tuple[str, str]],
    raw: RawResponse | None,
    failure: str | None,
    address: str,
    alpn: str,
    t0: float,
    t: float,
    tags: list[str] | None,
    tid: int,
    *,
    binary_body: bool = False,
) -> HTTPTransaction:
    """One exchange as an OONI ``httpt`` transaction. ``binary_body`` (DoH's DNS messages)
    always stores the body as base64 and extracts no title."""
    request = HTTPRequest(
        url=url,
        method=method,
        headers=_first_values(req_headers),
        headers_list=list(req_headers),
        x_transport="tcp",
    )
    response = HTTPResponse()
    if raw is not None:
        response = HTTPResponse(
            code=raw.status,
            headers=_first_values(raw.headers),
            headers_list=list(raw.headers),
            body=(
                BinaryData(base64.b64encode(raw.body).decode())
                if binary_body
                else body_value(raw.body)
            ),
            body_is_truncated=raw.truncated,
            x_didban_body_length=raw.body_length,
            x_didban_title=None if binary_body else extract_title(raw.body),
        )
    return HTTPTransaction(
        request=request,
        response=response,
        failure=failure,
        network="tcp",
        address=address,
        alpn=alpn,
        t0=round(t0, 6),
        t=round(t, 6),
        tags=list(tags) if tags else None,
        transaction_id=tid,
    )
