"""What the Web Connectivity rules read, extracted once per measurement: ``WebFacts``.

DNS answers per resolver kind (system, public, DoH), the first censor fingerprint per kind,
OONI's DNS consistency with the control (with the TLS rescue of LTE), the final fetch, the
layer at which it failed (``Stage``), its HTTP-diff against the control, and the JSON
pointers (``Q``, ``TCP``, ...) evidence points at. Lazily computed facts (the final body,
headers, stage, diff) are computed on first use and kept.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Final

from didban.analysis import httpdiff, netaddr, urls
from didban.analysis.fingerprints import Fingerprint, Fingerprints, Headers, header_map
from didban.analysis.records import (
    Control,
    CtrlHTTP,
    Query,
    TCPConnect,
    TLSHandshake,
    WebKeys,
    raw_headers,
)
from didban.model import failures

SYSTEM_ENGINES: Final = frozenset(
    {"system", "getaddrinfo", "golang_net_resolver", "go", "unknown", ""}
)
DOH_ENGINES: Final = frozenset({"doh"})
NXDOMAIN: Final = frozenset({failures.DNS_NXDOMAIN, failures.ANDROID_DNS_CACHE_NO_DATA})
DNS_TIMEOUT: Final = frozenset({failures.GENERIC_TIMEOUT})
RESET: Final = frozenset(
    {failures.CONNECTION_RESET, failures.CONNECTION_REFUSED, failures.CONNECTION_ABORTED}
)
UNREACHABLE: Final = frozenset(
    {failures.HOST_UNREACHABLE, failures.NETWORK_UNREACHABLE, failures.NETWORK_DOWN}
)
CERT: Final = frozenset(
    {
        failures.SSL_INVALID_HOSTNAME,
        failures.SSL_UNKNOWN_AUTHORITY,
        failures.SSL_INVALID_CERTIFICATE,
    }
)

# JSON pointers into the measurement, for evidence
Q = "/test_keys/queries/"
DUP = "/test_keys/x_dns_duplicate_responses/"
TCP = "/test_keys/tcp_connect/"
TLS = "/test_keys/tls_handshakes/"
REQ = "/test_keys/requests/"


def depth_of(tags: list[str] | None) -> int:
    if tags:
        for t in tags:
            if t.startswith("depth="):
                d = t[6:]
                return int(d) if d.isascii() and d.isdigit() else 0
    return 0


def answer_ips(q: Query) -> list[str]:
    out: list[str] = []
    for a in q.answers or ():
        v = a.ipv4 or a.ipv6
        if v:
            out.append(v)
    return out


def norm_host(host: str | None) -> str:
    return (host or "").rstrip(".").lower()


def _engine_kind(engine: str | None) -> str:
    """``doh``, ``system`` or ``public``: which kind of resolver an OONI ``engine`` names."""
    e = (engine or "").lower()
    return "doh" if e in DOH_ENGINES else "system" if e in SYSTEM_ENGINES else "public"


def _ctrl_usable(keys: WebKeys) -> Control | None:
    c = keys.control
    if c is None or keys.control_failure:
        return None
    if c.dns is None and c.http_request is None and not c.tcp_connect:
        return None
    return c


def ctrl_http_ok(h: CtrlHTTP | None) -> bool:
    return h is not None and h.failure is None and (h.status_code or 0) > 0


def is_https(url: str) -> bool:
    """The URL's scheme is https, in any case."""
    return url[:8].lower() == "https://"


@dataclass(slots=True)
class Stage:
    """Where the final fetch failed: layer, failure string, pointer, endpoint address, and
    whether the layer was inferred from the request's failure (no handshake recorded)."""

    layer: str
    failure: str
    pointer: str
    address: str
    inferred: bool


class WebFacts:
    """Everything the web rules read, extracted once from the typed test keys. (One is made
    per measurement: ``__slots__`` keeps its attributes out of a per-instance dict, 2 % of
    classification, docs/methodology.md §7.)"""

    __slots__ = (
        "_diff",
        "_diff_done",
        "_headers",
        "answer_asn",
        "consistent",
        "ctrl",
        "ctrl_dns_failure",
        "ctrl_dns_ok",
        "ctrl_ips",
        "dns_ips",
        "dups",
        "final",
        "final_ok",
        "final_url",
        "fp_hits",
        "fps",
        "host",
        "host_is_ip",
        "https",
        "info",
        "keys",
        "port",
        "pub_ips",
        "queries",
        "requests",
        "rescued",
        "scheme",
        "sys_failure",
        "sys_ips",
        "tcp",
        "tls",
        "url",
    )

    def __init__(self, keys: WebKeys | None, url: str, fps: Fingerprints) -> None:
        self.keys = keys = keys or WebKeys()
        self.fps = fps
        self.url = url
        self.info = info = urls.info(url)
        self.scheme = info.scheme
        self.host = info.host
        self.port = info.port
        self.host_is_ip = info.host_is_ip
        self.https = self.scheme == "https"
        self.ctrl = _ctrl_usable(keys)
        self.queries = keys.queries or []
        self.dups = keys.x_dns_duplicate_responses or []
        self.tcp = keys.tcp_connect or []
        self.tls = keys.tls_handshakes or []
        self.requests = keys.requests or []
        # decoded header maps by response, and the final response's HTTP-diff against the
        # control: computed on first use, as several rules read them
        self._headers: dict[int, Headers | None] = {}
        self._diff: httpdiff.HTTPDiff | None = None
        self._diff_done = False
        self._dns()
        self._fetch()
        self._ctrl_dns()
        self._consistency()

    # ------------------------------------------------------------------------- DNS
    def _dns(self) -> None:
        self.sys_ips: dict[str, int] = {}
        self.pub_ips: dict[str, int] = {}
        self.answer_asn: dict[str, int] = {}
        self.sys_failure: tuple[str, str] | None = None  # (failure, pointer)
        # first fingerprinted answer per resolver kind: kind -> (query index, value, fp)
        self.fp_hits: dict[str, tuple[int, str, Fingerprint]] = {}
        if not self.queries:
            if self.keys.dns_experiment_failure:
                self.sys_failure = (
                    self.keys.dns_experiment_failure,
                    "/test_keys/dns_experiment_failure",
                )
            return
        sys_failures: list[tuple[str, str]] = []
        sys_seen = False
        table = self.fps.blocking
        host = self.host
        fp_hits = self.fp_hits
        answer_asn = self.answer_asn
        for i, q in enumerate(self.queries):
            kind = _engine_kind(q.engine)
            if kind == "doh":
                continue
            ips: list[str] = []
            seek = kind not in fp_hits
            qhost = q.hostname
            tags = q.tags
            # this host's own first-level query: its answers count (the others are only
            # searched for censor addresses)
            relevant = norm_host(qhost) == host and (not tags or depth_of(tags) == 0)
            for a in q.answers or ():
                v = a.ipv4 or a.ipv6
                if v:
                    ips.append(v)
                    if relevant:
                        asn = a.asn
                        if asn:
                            answer_asn[v] = asn
                    if seek:
                        fp = table.match_dns(v)
                        if fp is not None:
                            fp_hits[kind] = (i, v, fp)
                            seek = False
                elif seek and a.hostname:
                    fp = table.match_dns(a.hostname)
                    if fp is not None:
                        fp_hits[kind] = (i, a.hostname, fp)
                        seek = False
            if not relevant:
                continue
            if kind == "system":
                sys_seen = True
                target = self.sys_ips
                if q.failure and not ips:
                    sys_failures.append((q.failure, f"{Q}{i}"))
            else:
                target = self.pub_ips
            for ip in ips:
                if ip not in target:
                    target[ip] = i
        if not self.sys_ips:
            if sys_failures:
                # prefer the A/ANY query's failure over AAAA's dns_no_answer
                preferred = [f for f in sys_failures if f[0] != failures.DNS_NO_ANSWER]
                self.sys_failure = (preferred or sys_failures)[0]
            elif not sys_seen and self.keys.dns_experiment_failure and not self.pub_ips:
                self.sys_failure = (
                    self.keys.dns_experiment_failure,
                    "/test_keys/dns_experiment_failure",
                )

    def _ctrl_dns(self) -> None:
        c = self.ctrl
        self.ctrl_dns_failure: str | None = None
        self.ctrl_ips: set[str] = set()
        self.ctrl_dns_ok = False
        if c is not None:
            dns = c.dns
            if dns is not None:
                self.ctrl_dns_failure = dns.failure
                addrs = dns.addrs
                if addrs:
                    self.ctrl_ips = {a for a in addrs if netaddr.is_ip(a)}
                self.ctrl_dns_ok = self.ctrl_dns_failure is None and bool(self.ctrl_ips)

    def _ctrl_asns(self) -> set[int]:
        """The ASNs the control found for the name (``ip_info`` flag 2)."""
        out: set[int] = set()
        ip_info = self.ctrl.ip_info if self.ctrl is not None else None
        for info in (ip_info or {}).values():
            flags = info.flags
            if flags and flags & 2 and info.asn:
                out.add(info.asn)
        return out

    def _tls_valid(self) -> set[str]:
        """Addresses a TLS handshake proved genuine for the host: the control's (``ip_info``
        flag 8) and the probe's own handshakes that verified the name."""
        out: set[str] = set()
        ip_info = self.ctrl.ip_info if self.ctrl is not None else None
        for ip, info in (ip_info or {}).items():
            flags = info.flags
            if flags and flags & 8:
                out.add(ip)
        host = self.host
        for h in self.tls:
            if h.failure is None and not h.no_tls_verify:
                sni = h.server_name
                if sni == host or norm_host(sni) in (host, ""):
                    ip, _ = netaddr.split_endpoint(h.address)
                    if ip:
                        out.add(ip)
        return out

    def _consistency(self) -> None:
        """OONI's DNS consistency, plus the TLS rescue of ooni-methodology.md §3.6 (LTE x_).
        The ASN and TLS facts are read only when no address is shared with the control."""
        dns_ips = self.dns_ips = self.sys_ips or self.pub_ips
        self.rescued: AbstractSet[str] = frozenset()
        self.consistent: bool | None
        if self.host_is_ip:
            self.consistent = True
        elif not dns_ips or not self.ctrl_dns_ok:
            self.consistent = None
        elif not self.ctrl_ips.isdisjoint(dns_ips):
            self.consistent = True
        else:
            asns = self._ctrl_asns()
            if asns and not asns.isdisjoint([self.answer_asn.get(ip) for ip in dns_ips]):
                self.consistent = True
            else:
                self.rescued = dns_ips.keys() & self._tls_valid()
                self.consistent = bool(self.rescued)

    # --------------------------------------------------------------------- fetch
    def final_body(self) -> str:
        """The final response's body text (decoded from the measurement at each call)."""
        r = self.requests[0] if self.requests else None
        return httpdiff.body_text(r.response.body if r and r.response else None)

    def final_length_title(self) -> tuple[int, str]:
        """The final body's byte length and title (decodes the body)."""
        return httpdiff.text_length_title(self.final_body())

    def headers(self, i: int) -> Headers | None:
        """Response ``i``'s headers (None: absent or not a map), decoded once."""
        if i not in self._headers:
            r = self.requests[i].response
            self._headers[i] = header_map(raw_headers(r.headers)) if r is not None else None
        return self._headers[i]

    def header_names(self, i: int) -> frozenset[str] | None:
        """Response ``i``'s lower-cased header names."""
        h = self.headers(i)
        return None if h is None else frozenset(h)

    def _fetch(self) -> None:
        # the final request: OONI lists the last of a redirect chain first
        r = self.final = self.requests[0] if self.requests else None
        self.final_ok = (
            r is not None
            and r.failure is None
            and r.response is not None
            and (r.response.code or 0) > 0
        )
        self.final_url = (r.request.url if r is not None and r.request else None) or self.url

    def final_diff(self) -> httpdiff.HTTPDiff | None:
        """OONI's HTTP-diff of the final response against the control (computed once)."""
        if self._diff_done:
            return self._diff
        self._diff_done = True
        ctrl = self.ctrl
        if self.final_ok and ctrl is not None and ctrl_http_ok(ctrl.http_request):
            r = self.requests[0]
            assert r.response is not None and ctrl.http_request is not None
            self._diff = httpdiff.compare(
                r.response, self.final_length_title, self.header_names(0), ctrl.http_request
            )
        return self._diff

    def stage(self) -> Stage | None:
        """The layer at which the final fetch failed, or None when it did not fail."""
        req = self.final
        if req is not None and self.final_ok:
            return None
        address = (req.address or "") if req else ""
        url = self.final_url
        https = is_https(url) if req else self.https
        depth = depth_of(req.tags) if req else 0

        conns = self._relevant_tcp(address, depth)
        if conns and not any(c.status and c.status.success for _, c in conns):
            i, c = conns[0]
            fail = (c.status.failure if c.status else None) or "unknown_failure"
            return Stage("tcp", fail, f"{TCP}{i}", netaddr.endpoint(c.ip or "", c.port or 0), False)
        if https:
            hs = self._relevant_tls(address, depth)
            if hs and not any(h.failure is None for _, h in hs):
                i, h = hs[0]
                return Stage(
                    "tls", h.failure or "unknown_failure", f"{TLS}{i}", h.address or "", False
                )
            if (
                not hs
                and req is not None
                and req.failure
                and (
                    req.failure in RESET
                    or req.failure in (failures.GENERIC_TIMEOUT, failures.EOF_ERROR)
                    or req.failure in CERT
                    or req.failure.startswith("ssl_")
                )
            ):
                return Stage("tls", req.failure, f"{REQ}0/failure", address, True)
        if req is not None and req.failure:
            return Stage("http", req.failure, f"{REQ}0/failure", address, False)
        if req is None:
            hf = self.keys.http_experiment_failure
            if hf:
                return Stage("http", hf, "/test_keys/http_experiment_failure", "", False)
            return None
        return Stage("http", "unknown_failure: no response", f"{REQ}0", address, False)

    def _relevant_tcp(self, address: str, depth: int) -> list[tuple[int, TCPConnect]]:
        out: list[tuple[int, TCPConnect]] = []
        for i, c in enumerate(self.tcp):
            ip = c.ip
            if not ip:
                continue
            if address:
                if netaddr.endpoint(ip, c.port or 0) != address:
                    continue
            elif c.port != self.port or depth_of(c.tags) != depth:
                continue
            out.append((i, c))
        # broken IPv6 on the probe's network is noise (ooni/probe#2284)
        v4 = [x for x in out if not netaddr.is_ipv6(x[1].ip or "")]
        if v4 and len(v4) != len(out):
            out = [
                x
                for x in out
                if not (
                    netaddr.is_ipv6(x[1].ip or "")
                    and x[1].status
                    and x[1].status.failure in UNREACHABLE
                )
            ]
        return out

    def _relevant_tls(self, address: str, depth: int) -> list[tuple[int, TLSHandshake]]:
        out: list[tuple[int, TLSHandshake]] = []
        for i, h in enumerate(self.tls):
            if address:
                if h.address != address:
                    continue
            elif depth_of(h.tags) != depth:
                continue
            else:
                _, port = netaddr.split_endpoint(h.address)
                if port is not None and port != self.port:
                    continue
            out.append((i, h))
        return out
