"""The test helper's measurement: OONI oohelperd's algorithm (ooni-methodology.md §3.5).

Given a ``THRequest``: resolve the URL host through the helper's own resolver, TCP-connect
to every requested endpoint and to the helper's own addresses, TLS-handshake the 443
endpoints with SNI = host, GET the URL following redirects, and describe every address in
``ip_info``. Failures are reported with the legacy strings OONI's helper uses
(``dns_name_error``, ``connection_refused_error``, ...), mapped here in one place.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from didban.data import ipasn
from didban.model import failures
from didban.model.addresses import is_bogon
from didban.model.ooni import (
    IPINFO_BOGON,
    IPINFO_RESOLVED_BY_PROBE,
    IPINFO_RESOLVED_BY_TH,
    IPINFO_VALID_FOR_DOMAIN,
    THDNSResult,
    THHTTPRequestResult,
    THIPInfo,
    THRequest,
    THResponse,
    THTCPConnectResult,
    THTLSHandshakeResult,
)
from didban.model.ooniapps import STUNControlRequest, STUNControlResponse
from didban.net import dns, http, quic, stun, tcp, tls
from didban.net.httpwire import USER_AGENT
from didban.net.stream import Stream, format_address, split_address

MAX_BODY: Final = 1 << 24  # oohelperd maxAcceptableBodySize (16 MiB)
DNS_TIMEOUT: Final = 4.0
TCP_TIMEOUT: Final = 10.0
TLS_TIMEOUT: Final = 10.0
HTTP_TIMEOUT: Final = 15.0
STUN_TIMEOUT: Final = 5.0
FORWARDED_HEADERS: Final = ("User-Agent", "Accept", "Accept-Language")

# Bogons (RFC 6890; TEST-NET excluded, see didban.model.addresses): never connected to.
_ALT_SVC_H3 = re.compile(r'(?:^|[,\s])h3="([^"]*)"')


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AsnRow:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    asn: int


def load_asn_map(path: str) -> list[AsnRow]:
    """``[[cidr, asn, cc, org], ...]`` JSON → rows; ValueError with one sentence if bad."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read the ASN map {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"the ASN map {path} is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, list):
        raise ValueError(f"the ASN map {path} must be a JSON list of [cidr, asn, cc, org]")
    rows: list[AsnRow] = []
    for i, row in enumerate(data):
        try:
            if not isinstance(row, list) or len(row) != 4 or not isinstance(row[1], int):
                raise ValueError
            rows.append(AsnRow(ipaddress.ip_network(row[0], strict=False), row[1]))
        except (ValueError, TypeError):
            raise ValueError(
                f"the ASN map {path}: row {i} must be [cidr, asn, cc, org], not {row!r}"
            ) from None
    return rows


@dataclass
class HelperConfig:
    """How the helper measures: its resolver (``ip:port``, None → system), CA bundle,
    optional ASN table, and whether loopback endpoints may be measured (tests)."""

    resolver: str | None = None
    ca_file: str | None = None
    asn_map: list[AsnRow] = field(default_factory=list)
    allow_loopback: bool = False

    def asn(self, ip: str) -> int:
        """The AS of ``ip``: the ASN map (a lab's) first, then the shipped offline snapshot
        for public addresses (loaded on first use); 0 when unknown."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return 0
        best: AsnRow | None = None
        for row in self.asn_map:
            if (
                addr.version == row.network.version
                and addr in row.network
                and (best is None or row.network.prefixlen > best.network.prefixlen)
            ):
                best = row
        if best is not None:
            return best.asn
        if not addr.is_global:
            return 0
        info = ipasn.default_db().lookup(ip)
        return info.asn if info else 0

    def may_connect(self, ip: str) -> bool:
        return not is_bogon(ip) or (self.allow_loopback and _is_loopback(ip))


class BadRequest(ValueError):
    """The request cannot be measured; the message is one sentence for the 400 body."""


def check_request(
    req: THRequest, url_name: str = "http_request", endpoint_name: str = "tcp_connect entry"
) -> tuple[str, str, int | None]:
    """(scheme, host, explicit port) of a well-formed request, else :class:`BadRequest`.
    Its sentence names the request's JSON fields, or ``url_name`` and ``endpoint_name``
    (what a command line calls them)."""
    url = req.http_request
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadRequest(f"{url_name} {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"{url_name} {url!r} must be an absolute http:// or https:// URL")
    for ep in req.tcp_connect:
        try:
            ip, p = split_address(ep, 0)
            ipaddress.ip_address(ip)
            if not 0 < p < 65536:
                raise ValueError
        except ValueError:
            raise BadRequest(f"{endpoint_name} {ep!r} is not an IP:PORT endpoint") from None
    return parts.scheme, parts.hostname, port


# ------------------------------------------------------------- failure mappings


def th_dns_failure(failure: str | None) -> str | None:
    """oohelperd ``dns.go``: the legacy string for a DNS failure (no_answer → null)."""
    if failure is None or failure == failures.DNS_NO_ANSWER:
        return None
    if failure == failures.DNS_NXDOMAIN:
        return failures.TH_DNS_NAME_ERROR
    if failure in (
        failures.DNS_NON_RECOVERABLE,
        failures.DNS_REFUSED,
        failures.DNS_SERVFAIL,
        failures.DNS_TEMPORARY,
        failures.DNS_SERVER_MISBEHAVING,
    ):
        return failures.TH_DNS_SERVER_FAILURE
    return failures.TH_UNKNOWN_ERROR


def th_tcp_failure(failure: str | None) -> str | None:
    """oohelperd ``tcptls.go``: timeout kept, refused → connection_refused_error, else
    connect_error."""
    if failure is None or failure == failures.GENERIC_TIMEOUT:
        return failure
    if failure == failures.CONNECTION_REFUSED:
        return failures.TH_CONNECTION_REFUSED
    return failures.TH_CONNECT_ERROR


def th_http_failure(failure: str | None) -> str | None:
    """oohelperd ``http.go``: DNS errors → dns_lookup_error, timeout kept, refused →
    connection_refused_error, anything else → unknown_error."""
    if failure is None or failure == failures.GENERIC_TIMEOUT:
        return failure
    if failure.startswith("dns_"):
        return failures.TH_DNS_LOOKUP_ERROR
    if failure == failures.CONNECTION_REFUSED:
        return failures.TH_CONNECTION_REFUSED
    return failures.TH_UNKNOWN_ERROR


# ------------------------------------------------------------------ the steps


async def _resolve(host: str, cfg: HelperConfig) -> tuple[list[str], str | None]:
    """Addresses of ``host`` and the OONI (not yet legacy) failure."""
    try:
        ipaddress.ip_address(host)
        return [host], None
    except ValueError:
        pass
    if cfg.resolver is None:
        r = await dns.System(DNS_TIMEOUT).resolve(host)
        return r.addrs, r.failure
    udp = dns.UDP(cfg.resolver, timeout=DNS_TIMEOUT, wait_duplicates=0)
    a, aaaa = await asyncio.gather(udp.resolve(host, qtype="A"), udp.resolve(host, qtype="AAAA"))
    addrs = a.addrs + [ip for ip in aaaa.addrs if ip not in a.addrs]
    if addrs:
        return addrs, None
    return [], a.failure


async def _tcp_tls(
    ip: str,
    port: int,
    sni: str,
    use_tls: bool,
    cfg: HelperConfig,
    keep: asyncio.Future[Stream | None] | None = None,
) -> tuple[THTCPConnectResult, THTLSHandshakeResult | None]:
    """TCP (and TLS) to one endpoint. With ``keep``, a working connection is handed over
    (the HTTP fetch then reuses it instead of connecting again) rather than closed."""
    stream: Stream | None = None
    try:
        connected = await tcp.connect(ip, port, timeout=TCP_TIMEOUT)
        tcp_res = THTCPConnectResult(
            status=connected.failure is None, failure=th_tcp_failure(connected.failure)
        )
        if connected.stream is None or not use_tls:
            stream = connected.stream
            return tcp_res, None
        hs = await tls.handshake(
            connected.stream, server_name=sni, ca_file=cfg.ca_file, timeout=TLS_TIMEOUT
        )
        stream = hs.stream
    finally:
        if keep is not None and not keep.done():
            keep.set_result(stream)
        elif stream is not None:
            stream.close()
    return tcp_res, THTLSHandshakeResult(
        server_name=sni, status=hs.failure is None, failure=hs.failure
    )


async def _http(
    req: THRequest,
    cfg: HelperConfig,
    known: dict[str, tuple[list[str], str | None]] | None = None,
    first: tuple[str, asyncio.Future[Stream | None]] | None = None,
) -> THHTTPRequestResult:
    """The helper's GET. ``known``: DNS answers already obtained (host → addrs, failure);
    ``first``: (address, future connection) an endpoint measurement hands over for the
    first hop, so the page is fetched on an already verified connection."""
    headers: list[tuple[str, str]] = []
    for name in FORWARDED_HEADERS:
        for key, values in req.http_request_headers.items():
            if key.lower() == name.lower() and values:
                headers.append((name, values[0]))
                break
    if not any(k == "User-Agent" for k, _ in headers):
        headers.append(("User-Agent", USER_AGENT))

    async def resolver(host: str) -> list[str] | str:
        addrs, failure = (known or {}).get(host) or await _resolve(host, cfg)
        usable = [ip for ip in addrs if cfg.may_connect(ip)]
        if usable:
            return usable
        return (failure or failures.DNS_BOGON) if addrs else (failure or failures.DNS_NO_ANSWER)

    options = http.FetchOptions(
        headers=headers, ca_file=cfg.ca_file, body_cap=MAX_BODY, timeout=HTTP_TIMEOUT
    )
    stream: Stream | None = None
    try:
        async with asyncio.timeout(HTTP_TIMEOUT + 1):
            stream = await first[1] if first is not None else None
            res = await http.fetch(
                req.http_request,
                resolver=resolver,
                options=options,
                address=first[0] if first is not None and stream is not None else None,
                stream=stream,
            )
            stream = None  # fetch closed it
    except TimeoutError:
        return THHTTPRequestResult(failure=failures.GENERIC_TIMEOUT)
    finally:
        if stream is not None:
            stream.close()
    final = res.requests[0] if res.requests else None
    if res.failure is not None or final is None or final.response is None:
        return THHTTPRequestResult(
            failure=th_http_failure(res.failure or failures.HTTP_REQUEST_FAILED)
        )
    resp = final.response
    hdrs = resp.headers or {}
    h3 = ""
    for k, v in hdrs.items():
        if k.lower() == "alt-svc" and (m := _ALT_SVC_H3.search(v)):
            host = urlsplit(final.request.url).hostname or ""
            h3 = f"{host}{m.group(1)}" if m.group(1).startswith(":") else m.group(1)
    return THHTTPRequestResult(
        body_length=resp.x_didban_body_length or 0,
        discovered_h3_endpoint=h3,
        failure=None,
        title=resp.x_didban_title or "",
        headers=dict(hdrs),
        status_code=resp.code,
        x_didban_throughput=round(res.throughput, 1) if res.throughput is not None else None,
    )


async def _quic(
    req: THRequest, host: str, h3: str, ips: Sequence[str], cfg: HelperConfig
) -> tuple[dict[str, THTLSHandshakeResult], THHTTPRequestResult | None]:
    """QUIC handshakes to the helper's addresses on the advertised h3 port, and one
    HTTP/3 GET (oohelperd ``quic.go``, run when the probe sets ``x_quic_enabled``)."""
    port_text = h3.rpartition(":")[2]
    port = int(port_text) if port_text.isdigit() else 443
    results = await asyncio.gather(
        *(
            quic.http3_get(
                req.http_request,
                address=format_address(ip, port),
                server_name=host,
                ca_file=cfg.ca_file,
                timeout=TLS_TIMEOUT,
            )
            for ip in ips
        )
    )
    handshakes: dict[str, THTLSHandshakeResult] = {}
    http3: THHTTPRequestResult | None = None
    for ip, r in zip(ips, results, strict=True):
        hs = r.handshake
        handshakes[format_address(ip, port)] = THTLSHandshakeResult(
            server_name=host, status=hs.failure is None, failure=hs.failure
        )
        resp = r.request.response if r.request is not None else None
        if http3 is None and r.failure is None and resp is not None:
            http3 = THHTTPRequestResult(
                body_length=resp.x_didban_body_length or 0,
                title=resp.x_didban_title or "",
                headers=dict(resp.headers or {}),
                status_code=resp.code,
                x_didban_throughput=round(r.throughput, 1) if r.throughput else None,
            )
    if http3 is None and results:
        http3 = THHTTPRequestResult(failure=th_http_failure(results[0].failure))
    return handshakes, http3


async def stun_binding(req: STUNControlRequest, cfg: HelperConfig) -> STUNControlResponse:
    """The probe's STUN Binding transaction repeated from here (``POST /x-didban/stun``):
    the endpoint's host resolved with the helper's resolver, one request to its first
    usable address. Raises :class:`BadRequest` for an endpoint that is not ``host:port``."""
    try:
        host, port = split_address(req.endpoint, 0)
    except ValueError:
        raise BadRequest(f"endpoint {req.endpoint!r} is not host:port") from None
    if not host or not 0 < port < 65536:
        raise BadRequest(f"endpoint {req.endpoint!r} is not host:port")
    addrs, failure = await _resolve(host, cfg)
    usable = [ip for ip in addrs if cfg.may_connect(ip)]
    out = STUNControlResponse(endpoint=req.endpoint, addresses=addrs)
    if not usable:
        out.failure = failure or (failures.DNS_BOGON if addrs else failures.DNS_NO_ANSWER)
        return out
    result = await stun.binding(usable[0], port, timeout=STUN_TIMEOUT)
    out.failure = result.failure
    out.response_type = result.response.kind if result.response is not None else None
    return out


def _ports(scheme: str, explicit: int | None) -> Sequence[int]:
    if explicit is not None:
        return (explicit,)
    return (443,) if scheme == "https" else (80, 443)


async def measure(req: THRequest, cfg: HelperConfig) -> THResponse:
    """Run the helper's measurement for ``req`` (already checked by :func:`check_request`)."""
    scheme, host, explicit_port = check_request(req)
    th_addrs, dns_failure = await _resolve(host, cfg)
    probe_ips = [split_address(ep, 0)[0] for ep in req.tcp_connect]

    ip_info: dict[str, THIPInfo] = {}
    for ip in probe_ips + th_addrs:
        flags = ip_info[ip].flags if ip in ip_info else 0
        if ip in probe_ips:
            flags |= IPINFO_RESOLVED_BY_PROBE
        if ip in th_addrs:
            flags |= IPINFO_RESOLVED_BY_TH
        if is_bogon(ip):
            flags |= IPINFO_BOGON
        ip_info[ip] = THIPInfo(asn=cfg.asn(ip), flags=flags)

    endpoints: list[tuple[str, int]] = []
    for ep in req.tcp_connect:
        ip, port = split_address(ep, 0)
        if (ip, port) not in endpoints:
            endpoints.append((ip, port))
    for ip in ip_info:
        for port in _ports(scheme, explicit_port):
            if (ip, port) not in endpoints:
                endpoints.append((ip, port))
    endpoints = [(ip, p) for ip, p in endpoints if cfg.may_connect(ip)]
    tls_port = explicit_port if scheme == "https" and explicit_port else 443
    # The GET's first hop goes to the first usable address the helper resolved, on the
    # URL's port: that endpoint's measurement hands its connection over to the fetch.
    url_port = explicit_port or (443 if scheme == "https" else 80)
    usable = [ip for ip in th_addrs if cfg.may_connect(ip)]
    first: tuple[str, asyncio.Future[Stream | None]] | None = None
    if (
        usable
        and (usable[0], url_port) in endpoints
        and (url_port == tls_port) == (scheme == "https")
    ):
        first = (format_address(usable[0], url_port), asyncio.get_running_loop().create_future())
    http_task = asyncio.create_task(_http(req, cfg, {host: (th_addrs, dns_failure)}, first))
    results = await asyncio.gather(
        *(
            _tcp_tls(
                ip,
                port,
                host,
                port == tls_port,
                cfg,
                first[1] if first is not None and (ip, port) == (usable[0], url_port) else None,
            )
            for ip, port in endpoints
        )
    )
    http_result = await http_task
    response = THResponse(
        dns=THDNSResult(failure=th_dns_failure(dns_failure), addrs=th_addrs),
        http_request=http_result,
        ip_info=ip_info,
    )
    if req.x_quic_enabled and http_result.discovered_h3_endpoint:
        ips = [ip for ip in th_addrs if cfg.may_connect(ip)]
        response.quic_handshake, response.http3_request = await _quic(
            req, host, http_result.discovered_h3_endpoint, ips, cfg
        )
    for (ip, port), (tcp_res, tls_res) in zip(endpoints, results, strict=True):
        key = format_address(ip, port)
        response.tcp_connect[key] = tcp_res
        if tls_res is not None:
            response.tls_handshake[key] = tls_res
            if tls_res.status:
                info = response.ip_info[ip]
                response.ip_info[ip] = THIPInfo(
                    asn=info.asn, flags=info.flags | IPINFO_VALID_FOR_DOMAIN
                )
    return response
