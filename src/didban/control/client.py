"""Client of the test helper: POST a ``THRequest`` to an oohelperd-compatible helper, and
ask didban's helper which address it sees (``whoami``).

``query`` opens a connection per request; ``HelperSession`` keeps connections to one helper
alive and reuses them (HTTP/1.1 keep-alive), as OONI's probe does with its test helper: a
run of 1,000 URLs then pays for a handful of TCP (and, for an https helper, TLS)
handshakes instead of 1,000.

Works with didban's helper and OONI's (``https://N.th.ooni.org``); http and https URLs.
The request goes over didban's own TCP/TLS/HTTP code (no proxy settings, no system
trust surprises); failures come back as OONI failure strings for ``control_failure``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import msgspec

from didban import __version__
from didban.model import failures
from didban.model.ooni import THRequest, THResponse
from didban.model.ooniapps import STUNControlRequest, STUNControlResponse
from didban.net import dns, errors, http, tcp, tls
from didban.net.httpwire import RawResponse
from didban.net.stream import Stream, split_address

DEFAULT_TIMEOUT = 30.0
_MAP_FIELDS = ("tcp_connect", "tls_handshake", "quic_handshake", "ip_info")
WHOAMI_PATH = "/x-didban/whoami"  # didban's helper only (control.server.WHOAMI)
STUN_PATH = "/x-didban/stun"  # didban's helper only (control.server.STUN)
_HEADERS = (
    ("User-Agent", f"didban/{__version__}"),
    ("Accept", "application/json"),
    ("Content-Type", "application/json"),
)


def decode_response(body: bytes) -> THResponse:
    """A helper's JSON answer, tolerating OONI's nulls for empty maps; raises on bad JSON."""
    data: Any = msgspec.json.decode(body)
    if not isinstance(data, dict):
        raise msgspec.ValidationError("the helper's answer is not a JSON object")
    for key in _MAP_FIELDS:
        if data.get(key) is None:
            data.pop(key, None)
    if data.get("dns") is None:
        data.pop("dns", None)
    elif isinstance(data["dns"], dict) and data["dns"].get("addrs") is None:
        data["dns"]["addrs"] = []
    for key in ("http_request", "http3_request"):
        if isinstance(data.get(key), dict) and data[key].get("headers") is None:
            data[key]["headers"] = {}
    return msgspec.convert(data, THResponse)


def _helper_url(helper_url: str) -> tuple[SplitResult, str, str | None] | None:
    """The parts of an http(s) helper URL, its host, and the host again when it is an IP
    literal (no lookup needed); None when it is not an http(s) URL with a host."""
    parts = urlsplit(helper_url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return None
    try:
        return parts, host, str(ipaddress.ip_address(host))
    except ValueError:
        return parts, host, None


def _options(
    headers: tuple[tuple[str, str], ...], ca_file: str | None, body_cap: int, timeout: float
) -> http.FetchOptions:
    """One request to the helper, no redirect followed, every step within ``timeout``."""
    return http.FetchOptions(
        headers=headers,
        ca_file=ca_file,
        max_redirects=0,
        body_cap=body_cap,
        tcp_timeout=timeout,
        tls_timeout=timeout,
        timeout=timeout,
    )


def _answer(status: int, body: bytes) -> THResponse | str:
    """The helper's answer to a POST: its response, or the OONI failure string."""
    if status != 200:
        return failures.HTTP_UNEXPECTED_STATUS_CODE
    try:
        return decode_response(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return failures.JSON_PARSE_ERROR


async def query(
    helper_url: str,
    request: THRequest,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    ca_file: str | None = None,
    address: str | None = None,
) -> THResponse | str:
    """The helper's response, or an OONI failure string (``control_failure``).

    ``address`` (``"ip"``/``"ip:port"``) skips resolving the helper's host; an IP-literal
    helper URL needs none. ``ca_file`` is the CA bundle for https helpers.
    """
    answer, _ = await query_with_status(
        helper_url, request, timeout, ca_file=ca_file, address=address
    )
    return answer


async def query_with_status(
    helper_url: str,
    request: THRequest,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    ca_file: str | None = None,
    address: str | None = None,
) -> tuple[THResponse | str, int | None]:
    """``query``, and the HTTP status the helper answered with (None: it did not answer),
    so a person can be told what a helper that answered wrongly said."""
    url = _helper_url(helper_url)
    if url is None:
        return failures.unknown(f"bad helper URL {helper_url!r}"), None
    address = address or url[2]
    body = msgspec.json.encode(request)
    try:
        async with asyncio.timeout(timeout):
            res = await http.fetch(
                helper_url,
                resolver=dns.resolver(dns.System()),
                options=_options(_HEADERS, ca_file, 16 << 20, timeout),
                address=address,
                method="POST",
                body=body,
            )
    except TimeoutError:
        return failures.GENERIC_TIMEOUT, None
    if res.failure is not None:
        return res.failure, None
    final = res.requests[0].response if res.requests else None
    status = final.code if final is not None else None
    return _answer(status or 0, res.final_body), status


async def whoami(
    helper_url: str, timeout: float = 10.0, *, ca_file: str | None = None
) -> str | None:
    """The probe's address as didban's helper sees it (``GET /x-didban/whoami``); None when
    the helper does not say (OONI's helpers have no such resource), cannot be reached, or
    reports its own address (a helper behind a proxy on the same host sees the proxy)."""
    helper = _helper_url(helper_url)
    if helper is None:
        return None
    parts, _, address = helper
    url = urlunsplit((parts.scheme, parts.netloc, WHOAMI_PATH, "", ""))
    headers = (("User-Agent", f"didban/{__version__}"), ("Accept", "application/json"))
    try:
        async with asyncio.timeout(timeout):
            res = await http.fetch(
                url,
                resolver=dns.resolver(dns.System()),
                options=_options(headers, ca_file, 4096, timeout),
                address=address,
            )
    except TimeoutError:
        return None
    final = res.requests[0].response if res.requests else None
    if res.failure is not None or final is None or final.code != 200:
        return None
    try:
        data = msgspec.json.decode(res.final_body)
        found = data.get("address") if isinstance(data, dict) else None
        seen = str(ipaddress.ip_address(found)) if isinstance(found, str) else None
    except (msgspec.DecodeError, ValueError):
        return None
    helper_ip = split_address(res.requests[0].address or "", 0)[0]
    return None if seen is None or seen == helper_ip else seen


async def stun(
    helper_url: str, endpoint: str, timeout: float = 15.0, *, ca_file: str | None = None
) -> STUNControlResponse | str:
    """The helper's STUN Binding transaction with ``endpoint`` (``POST /x-didban/stun``,
    didban's extension), or an OONI failure string (OONI's helpers have no such resource:
    ``http_unexpected_status_code``)."""
    helper = _helper_url(helper_url)
    if helper is None:
        return failures.unknown(f"bad helper URL {helper_url!r}")
    parts, _, address = helper
    url = urlunsplit((parts.scheme, parts.netloc, STUN_PATH, "", ""))
    body = msgspec.json.encode(STUNControlRequest(endpoint=endpoint))
    try:
        async with asyncio.timeout(timeout):
            res = await http.fetch(
                url,
                resolver=dns.resolver(dns.System()),
                options=_options(_HEADERS, ca_file, 1 << 16, timeout),
                address=address,
                method="POST",
                body=body,
            )
    except TimeoutError:
        return failures.GENERIC_TIMEOUT
    final = res.requests[0].response if res.requests else None
    if res.failure is not None:
        return res.failure
    if final is None or final.code != 200:
        return failures.HTTP_UNEXPECTED_STATUS_CODE
    try:
        return msgspec.json.decode(res.final_body, type=STUNControlResponse)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return failures.JSON_PARSE_ERROR


class HelperSession:
    """Kept-alive HTTP/1.1 connections to one helper (at most ``max_idle`` idle ones),
    shared by the concurrent queries of a run. ``close`` releases them."""

    def __init__(self, helper_url: str, *, ca_file: str | None = None, max_idle: int = 16) -> None:
        helper = _helper_url(helper_url)
        if helper is None:
            raise ValueError(f"bad helper URL {helper_url!r}")
        parts, host, literal = helper
        self.url = helper_url
        self._host = host
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = parts.scheme == "https"
        self._ca_file = ca_file
        self._max_idle = max_idle
        self._idle: list[Stream] = []
        self._addrs: list[str] | None = [literal] if literal is not None else None
        self.connections = 0  # opened so far (for tests and benchmarks)

    async def _open(self, timeout: float) -> Stream | str:
        if self._addrs is None:
            r = await dns.System(timeout).resolve(self._host)
            if r.failure or not r.addrs:
                return r.failure or failures.DNS_NO_ANSWER
            self._addrs = r.addrs
        failure: str = failures.unknown("the helper has no address")
        for ip in self._addrs:
            connected = await tcp.connect(ip, self._port, timeout=timeout)
            if connected.stream is None:
                failure = connected.failure or failure
                continue
            self.connections += 1
            if not self._tls:
                return connected.stream
            hs = await tls.handshake(
                connected.stream,
                server_name=self._host,
                alpn=("http/1.1",),
                ca_file=self._ca_file,
                timeout=timeout,
            )
            if hs.stream is not None:
                return hs.stream
            failure = hs.failure or failure
        return failure

    async def _exchange(self, stream: Stream, body: bytes, timeout: float) -> RawResponse:
        return await http.request_on_stream(
            stream,
            self.url,
            method="POST",
            headers=_HEADERS,
            body=body,
            body_cap=16 << 20,
            timeout=timeout,
        )

    async def query(self, request: THRequest, timeout: float = DEFAULT_TIMEOUT) -> THResponse | str:
        """Like :func:`query`, over a kept-alive connection (a new one when none is idle;
        a request that fails on a reused connection — the helper closed it while idle —
        is sent once more on a fresh one)."""
        body = msgspec.json.encode(request)
        try:
            async with asyncio.timeout(timeout):
                raw: RawResponse | None = None
                while raw is None:
                    reused = bool(self._idle)
                    stream = self._idle.pop() if reused else await self._open(timeout)
                    if isinstance(stream, str):
                        return stream
                    try:
                        raw = await self._exchange(stream, body, timeout)
                    except Exception as exc:
                        stream.close()
                        if not reused:
                            return errors.classify(exc)
                        continue
                    except BaseException:
                        stream.close()
                        raise
                    keep = all(
                        not (k.lower() == "connection" and v.lower() == "close")
                        for k, v in raw.headers
                    )
                    if keep and not raw.truncated and len(self._idle) < self._max_idle:
                        self._idle.append(stream)
                    else:
                        stream.close()
        except TimeoutError:
            return failures.GENERIC_TIMEOUT
        return _answer(raw.status, raw.body)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
