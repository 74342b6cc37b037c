"""The fake web servers' routes: one request -> one response, independent of HTTP version.

Routes (every host): ``/bytes/<n>`` streams n bytes (throughput tests); ``/dns-query`` on a
public resolver's addresses or names is DoH (RFC 8484, GET ``?dns=`` and POST
``application/dns-message``); on Iran's blockpage hosts every path is the landing page, and
on the ISP's portal (a sinkhole) its notice page, whatever the ``Host``;
``redirect.cases.didban.test/to/<host>`` redirects (302) to ``https://<host>/``; anything
else is the page of the site named by ``Host`` (or of the local address).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qs, urlsplit

from didban.lab import plan, zone
from didban.lab.services import dnsanswer, pages

MAX_BYTES: Final = 1 << 30
CHUNK: Final = 64 * 1024
_BYTES_RE: Final = re.compile(r"^/bytes/([0-9]+)$")
_RESOLVER_ADDRS: Final = frozenset(zone.resolver_addrs())


@dataclass
class Request:
    method: str
    target: str  # path + query, as sent
    host: str | None  # Host / :authority without port, lower case
    headers: list[tuple[str, str]]
    body: bytes
    local_addr: str
    scheme: str  # "http" or "https"
    http_version: str  # "1.1", "2", "3"

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream_len: int = 0  # > 0: after `body`, stream this many zero bytes
    extra: list[tuple[str, str]] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.body) + self.stream_len

    def chunks(self) -> Iterator[bytes]:
        if self.body:
            yield self.body
        left = self.stream_len
        block = bytes(CHUNK)
        while left > 0:
            n = min(left, CHUNK)
            yield block if n == CHUNK else bytes(n)
            left -= n


def host_of(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _text(status: int, message: str, server: str = "didban-lab") -> Response:
    return Response(
        status,
        [("content-type", "text/plain; charset=utf-8"), ("server", server)],
        (message + "\n").encode(),
    )


def _doh(req: Request) -> Response:
    if req.method == "GET":
        values = parse_qs(urlsplit(req.target).query).get("dns")
        if not values:
            return _text(400, "missing dns parameter")
        raw = values[0]
        try:
            wire = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            return _text(400, "dns parameter is not base64url")
    elif req.method == "POST":
        if (req.header("content-type") or "").split(";")[0].strip() != "application/dns-message":
            return _text(415, "content-type must be application/dns-message")
        wire = req.body
    else:
        return _text(405, "use GET or POST")
    out = dnsanswer.answer_wire(wire)
    if out is None:
        return _text(400, "malformed DNS query")
    ttl = dnsanswer.ANSWER_TTL if out[6:8] != b"\x00\x00" else 0  # every answer RR has it
    return Response(
        200,
        [
            ("content-type", "application/dns-message"),
            ("cache-control", f"max-age={ttl}"),
            ("server", "didban-doh"),
        ],
        out,
    )


_REDIRECTOR: Final = zone.case_host("redirect")
_HOST_RE: Final = re.compile(r"^[a-z0-9.-]{1,253}$")


def _redirect(host: str) -> Response:
    """A 302 to ``https://<host>/`` (the redirector of the accuracy cases)."""
    if not _HOST_RE.match(host):
        return _text(400, "not a host name")
    resp = _text(302, f"moved to https://{host}/")
    resp.headers.append(("location", f"https://{host}/"))
    return resp


def is_resolver(req: Request) -> bool:
    if req.local_addr in _RESOLVER_ADDRS:
        return True
    site = zone.site_for_host(req.host) if req.host else None
    return bool(site and site.key.startswith("resolver:"))


def handle(req: Request) -> Response:
    """The response to ``req``."""
    if pages.is_blockpage_addr(req.local_addr):
        body = pages.blockpage_landing()
        resp = Response(200, [("content-type", "text/html"), ("server", "Microsoft-IIS/7.5")])
        resp.body = body
        return _finish(req, resp)
    if req.local_addr == plan.SINKHOLE_PORTAL:
        body, headers = pages.render(plan.PORTAL_NAME, "isp:portal")
        return _finish(req, Response(200, list(headers), body))
    path = urlsplit(req.target).path or "/"
    if req.host == _REDIRECTOR and path.startswith("/to/"):
        return _finish(req, _redirect(path[4:]))
    if path == "/dns-query" and is_resolver(req):
        return _finish(req, _doh(req))
    m = _BYTES_RE.match(path)
    if m:
        n = int(m.group(1))
        if n > MAX_BYTES:
            return _finish(req, _text(400, f"at most {MAX_BYTES} bytes"))
        resp = Response(200, [("content-type", "application/octet-stream")], stream_len=n)
        resp.headers.append(("server", "didban-lab"))
        return _finish(req, resp)
    if req.method not in ("GET", "HEAD", "POST"):
        return _finish(req, _text(405, "method not allowed"))
    site = zone.site_for_host(req.host) if req.host else None
    key = site.key if site else None
    if site is None and req.host and zone.bench_index(req.host) is not None:
        key = "bench"
    if key is None:
        addr_site = zone.site_for_addr(req.local_addr)
        key = (
            addr_site.key
            if addr_site
            else ("bench" if req.local_addr in plan.BENCH_ADDRS else None)
        )
    if key is None:
        return _finish(req, _text(404, "no such site in the lab"))
    body, headers = pages.render(req.host if req.host and (site or key == "bench") else None, key)
    resp = Response(200, list(headers), body)
    if req.scheme == "https" and site is not None and site.http3:
        resp.headers.append(("alt-svc", 'h3=":443"; ma=86400'))
    return _finish(req, resp)


def _finish(req: Request, resp: Response) -> Response:
    if req.method == "HEAD":
        resp.headers.append(("content-length", str(resp.length)))
        resp.body, resp.stream_len = b"", 0
    return resp
