"""The Web Connectivity rule cascade (OONI v0.0.x–v0.4.x, v0.5/LTE, and didban's probe).

``WebFacts`` reads the measurement once (DNS answers per resolver, duplicate replies,
control, TCP/TLS/HTTP outcomes, fingerprint matches); ``CASCADE`` is the ordered list of
rule checks, each returning a ``Hit`` under ids from ``rules.WEB`` or None. The first hit
wins. Evidence entries are JSON pointers into the measurement.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Final
from urllib.parse import urlsplit

from didban.analysis import certs, httpdiff, netaddr, urls
from didban.analysis.fingerprints import Fingerprint, Fingerprints, Headers, header_map, header_text
from didban.analysis.outcome import Hit
from didban.analysis.records import (
    Control,
    CtrlHTTP,
    HTTPTransaction,
    Query,
    TCPConnect,
    TLSHandshake,
    WebKeys,
    raw_certificates,
    raw_headers,
)
from didban.analysis.rules import ALL as RULES
from didban.analysis.rules import rule
from didban.analysis.urls import URLInfo
from didban.model import failures as F
from didban.model.verdict import Evidence

SYSTEM_ENGINES: Final = frozenset(
    {"system", "getaddrinfo", "golang_net_resolver", "go", "unknown", ""}
)
DOH_ENGINES: Final = frozenset({"doh"})
NXDOMAIN: Final = frozenset({F.DNS_NXDOMAIN, F.ANDROID_DNS_CACHE_NO_DATA})
DNS_TIMEOUT: Final = frozenset({F.GENERIC_TIMEOUT})
RESET: Final = frozenset({F.CONNECTION_RESET, F.CONNECTION_REFUSED, F.CONNECTION_ABORTED})
UNREACHABLE: Final = frozenset({F.HOST_UNREACHABLE, F.NETWORK_UNREACHABLE, F.NETWORK_DOWN})
CERT: Final = frozenset(
    {F.SSL_INVALID_HOSTNAME, F.SSL_UNKNOWN_AUTHORITY, F.SSL_INVALID_CERTIFICATE}
)
TH_DNS_NXDOMAIN: Final = "dns_name_error"

Q = "/test_keys/queries/"
DUP = "/test_keys/x_dns_duplicate_responses/"
TCP = "/test_keys/tcp_connect/"
TLS = "/test_keys/tls_handshakes/"
REQ = "/test_keys/requests/"


def _depth(tags: list[str] | None) -> int:
    if tags:
        for t in tags:
            if t.startswith("depth="):
                d = t[6:]
                return int(d) if d.isascii() and d.isdigit() else 0
    return 0


def _ips(q: Query) -> list[str]:
    out: list[str] = []
    for a in q.answers or ():
        v = a.ipv4 or a.ipv6
        if v:
            out.append(v)
    return out


def _norm(host: str | None) -> str:
    return (host or "").rstrip(".").lower()


_ENGINE_KINDS: Final[dict[str, str]] = {}


def _engine_kind(engine: str | None) -> str:
    """``doh``, ``system`` or ``public``: which kind of resolver an OONI ``engine`` names."""
    key = engine or ""
    kind = _ENGINE_KINDS.get(key)
    if kind is None:
        e = key.lower()
        kind = "doh" if e in DOH_ENGINES else "system" if e in SYSTEM_ENGINES else "public"
        netaddr.remember(_ENGINE_KINDS, key, kind)
    return kind


def _ctrl_usable(keys: WebKeys) -> Control | None:
    c = keys.control
    if c is None or keys.control_failure:
        return None
    if c.dns is None and c.http_request is None and not c.tcp_connect:
        return None
    return c


def _ctrl_http_ok(h: CtrlHTTP | None) -> bool:
    return h is not None and h.failure is None and (h.status_code or 0) > 0


_NOTHING_RESCUED: Final[frozenset[str]] = frozenset()  # most answers need no rescue


class Stage:
    """Where the final fetch failed: layer, failure string, pointer, endpoint address."""

    __slots__ = ("address", "failure", "inferred", "layer", "pointer")

    def __init__(self, layer: str, failure: str, pointer: str, address: str, inferred: bool):
        self.layer = layer
        self.failure = failure
        self.pointer = pointer
        self.address = address
        self.inferred = inferred


class WebFacts:
    """Everything the web rules read, extracted once from the typed test keys."""

    __slots__ = (
        "_final",
        "_final_body",
        "_final_ok",
        "_final_url",
        "_headers",
        "_stage",
        "_stage_done",
        "answer_asn",
        "consistent",
        "ctrl",
        "ctrl_dns_failure",
        "ctrl_dns_ok",
        "ctrl_ips",
        "diff",
        "diff_done",
        "dns_ips",
        "dups",
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

    def __init__(
        self, keys: WebKeys | None, url: str, fps: Fingerprints, info: URLInfo | None = None
    ) -> None:
        self.keys = keys = keys or WebKeys()
        self.fps = fps
        self.url = url
        self.info = info = info or urls.info(url)
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
        self._final_body: str | None = None
        self._headers: dict[int, Headers | None] | None = None  # made on first use
        # the final response's HTTP-diff against the control, computed on first use
        self.diff: httpdiff.HTTPDiff | None = None
        self.diff_done = False
        self._stage: Stage | None = None
        self._stage_done = False
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
        fp_dns = table.dns
        by_name = table.dns_has_names
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
            relevant = (qhost == host or _norm(qhost) == host) and (not tags or _depth(tags) == 0)
            for a in q.answers or ():
                v = a.ipv4 or a.ipv6
                if v:
                    ips.append(v)
                    if relevant:
                        asn = a.asn
                        if asn:
                            answer_asn[v] = asn
                    if seek:
                        fp = fp_dns.get(v)
                        if fp is None and (":" in v or v[-1:] == "."):
                            fp = table.match_dns(v)
                        if fp is not None:
                            fp_hits[kind] = (i, v, fp)
                            seek = False
                elif by_name and seek and a.hostname:
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
                preferred = [f for f in sys_failures if f[0] != F.DNS_NO_ANSWER]
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
                if sni == host or _norm(sni) in (host, ""):
                    ip, _ = netaddr.split_endpoint(h.address)
                    if ip:
                        out.add(ip)
        return out

    def _consistency(self) -> None:
        """OONI's DNS consistency, plus the TLS rescue of ooni-methodology.md §3.6 (LTE x_).
        The ASN and TLS facts are read only when no address is shared with the control."""
        dns_ips = self.dns_ips = self.sys_ips or self.pub_ips
        self.rescued: AbstractSet[str] = _NOTHING_RESCUED
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
    def final(self) -> tuple[int, HTTPTransaction] | None:
        return self._final

    def final_ok(self) -> bool:
        return self._final_ok

    def final_url(self) -> str:
        return self._final_url

    def final_body(self) -> str:
        """The final response's body text, decoded once on first use."""
        if self._final_body is None:
            r = self.requests[0] if self.requests else None
            self._final_body = httpdiff.body_text(r.response.body if r and r.response else None)
        return self._final_body

    def final_length_title(self) -> tuple[int, str]:
        """The final body's byte length and title (decodes the body)."""
        return httpdiff.text_length_title(self.final_body())

    def headers(self, i: int) -> Headers | None:
        """Response ``i``'s headers, decoded once on first use (None: absent or not a map)."""
        cache = self._headers
        if cache is None:
            cache = self._headers = {}
        elif i in cache:
            return cache[i]
        r = self.requests[i].response
        h = cache[i] = header_map(raw_headers(r.headers)) if r is not None else None
        return h

    def header_names(self, i: int) -> frozenset[str] | None:
        """Response ``i``'s lower-cased header names."""
        h = self.headers(i)
        return None if h is None else frozenset(h)

    def _fetch(self) -> None:
        self._final = (0, self.requests[0]) if self.requests else None
        r = self.requests[0] if self.requests else None
        self._final_ok = (
            r is not None
            and r.failure is None
            and r.response is not None
            and (r.response.code or 0) > 0
        )
        self._final_url = (r.request.url if r is not None and r.request else None) or self.url

    def stage(self) -> Stage | None:
        """The layer at which the final fetch failed, or None when it did not fail."""
        if not self._stage_done:
            self._stage = self._find_stage()
            self._stage_done = True
        return self._stage

    def _find_stage(self) -> Stage | None:
        f = self.final()
        if f is not None and self.final_ok():
            return None
        req = f[1] if f else None
        address = (req.address or "") if req else ""
        url = self.final_url()
        https = _is_https(url) if req else self.https
        depth = _depth(req.tags) if req else 0

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
                    or req.failure in (F.GENERIC_TIMEOUT, F.EOF_ERROR)
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
        v6 = 0
        for i, c in enumerate(self.tcp):
            ip = c.ip
            if not ip:
                continue
            if address:
                if netaddr.endpoint(ip, c.port or 0) != address:
                    continue
            elif c.port != self.port or _depth(c.tags) != depth:
                continue
            out.append((i, c))
            if ":" in ip:
                v6 += 1
        if not v6:
            return out
        # broken IPv6 on the probe's network is noise (ooni/probe#2284)
        v4 = [x for x in out if not netaddr.is_ipv6(x[1].ip or "")]
        if v4 and len(v4) != len(out):
            noise = UNREACHABLE
            out = [
                x
                for x in out
                if not (
                    netaddr.is_ipv6(x[1].ip or "") and x[1].status and x[1].status.failure in noise
                )
            ]
        return out

    def _relevant_tls(self, address: str, depth: int) -> list[tuple[int, TLSHandshake]]:
        out: list[tuple[int, TLSHandshake]] = []
        for i, h in enumerate(self.tls):
            if address:
                if h.address != address:
                    continue
            elif _depth(h.tags) != depth:
                continue
            else:
                _, port = netaddr.split_endpoint(h.address)
                if port is not None and port != self.port:
                    continue
            out.append((i, h))
        return out


# ------------------------------------------------------------------------ evidence


def _ev(
    pointer: str, summary: str, observed: str | None = None, expected: str | None = None
) -> Evidence:
    return Evidence(pointer, summary, observed, expected)


def _ctrl_addrs_text(f: WebFacts) -> str:
    ips = f.ctrl_ips
    if len(ips) == 1:
        return next(iter(ips))
    return ", ".join(sorted(ips)) or (f.ctrl_dns_failure or "none")


def _dns_layer(f: WebFacts) -> Evidence:
    ips = ", ".join(f.dns_ips) or (f.sys_failure[0] if f.sys_failure else "no answer")
    if f.consistent is None:
        summary = "layer dns: " + (
            "not compared (no control answer)" if not f.host_is_ip else "IP literal"
        )
    elif f.rescued:
        summary = f"layer dns: rescued: TLS valid for {f.host} on {', '.join(sorted(f.rescued))}"
    elif f.consistent:
        summary = "layer dns: consistent with the control"
    else:
        summary = "layer dns: inconsistent with the control"
    return Evidence("/test_keys/queries", summary, ips, _ctrl_addrs_text(f) if f.ctrl else None)


# Layer summaries repeat across measurements: one shared (never mutated) Evidence each,
# kept in plain dicts (emptied when full) keyed without building a tuple.
_TCP_LAYERS: Final[dict[int, Evidence]] = {}
_TLS_LAYERS: Final[dict[int, Evidence]] = {}


def _tcp_layer(ok: int, n: int) -> Evidence:
    return _count_layer(_TCP_LAYERS, ok, n, "/test_keys/tcp_connect", "tcp", "connects")


def _tls_layer(ok: int, n: int) -> Evidence:
    return _count_layer(_TLS_LAYERS, ok, n, "/test_keys/tls_handshakes", "tls", "handshakes")


def _count_layer(
    cache: dict[int, Evidence], ok: int, n: int, pointer: str, layer: str, what: str
) -> Evidence:
    """ "layer L: ok/n W succeeded", one shared Evidence per (ok, n)."""
    key = ok << 20 | n
    ev = cache.get(key)
    if ev is None:
        summary = f"layer {layer}: {ok}/{n} {what} succeeded"
        ev = netaddr.remember(cache, key, Evidence(pointer, summary), 1024)
    return ev


def _http_layer(code: int | None, url: str, info: URLInfo) -> Evidence:
    """The final response's evidence, shared by every verdict on ``url`` (``info``'s URL,
    or another one, the final URL after a redirect)."""
    if url != info.url:
        info = urls.info(url)
    by_code = info.layers
    ev = by_code.get(code)
    if ev is None:
        ev = by_code[code] = Evidence(f"{REQ}0", f"layer http: final response {code}", url)
    return ev


def _layers(f: WebFacts, ev: list[Evidence]) -> list[Evidence]:
    """The deciding evidence followed by the per-layer outcomes."""
    out = list(ev)
    out.append(_dns_layer(f))
    if f.tcp:
        ok = 0
        for c in f.tcp:
            status = c.status
            if status is not None and status.success:
                ok += 1
        out.append(_tcp_layer(ok, len(f.tcp)))
    if f.tls:
        ok = 0
        for h in f.tls:
            if h.failure is None:
                ok += 1
        out.append(_tls_layer(ok, len(f.tls)))
    quic = f.keys.x_didban_quic
    if quic:
        failed = [q for q in quic if q.failure]
        what = (
            f"HTTP/3 failed ({failed[0].failure} at {failed[0].address})"
            + (" while TLS over TCP worked" if f.final_ok() else "")
            if failed
            else "HTTP/3 worked"
        )
        out.append(Evidence("/test_keys/x_didban_quic", "layer quic: " + what))
    if f.requests:
        r = f.requests[0]
        if r.failure is None and r.response is not None:
            out.append(_http_layer(r.response.code, f._final_url, f.info))
        else:
            out.append(
                Evidence(
                    f"{REQ}0", f"layer http: final request failed ({r.failure})", f.final_url()
                )
            )
    return out


# --------------------------------------------------------------------------- rules

Check = Callable[[WebFacts], Hit | None]


def _hit(
    f: WebFacts,
    rule_id: str,
    reason: str,
    ev: list[Evidence],
    fp: Fingerprint | None = None,
    confidence: float | None = None,
) -> Hit:
    return Hit(RULES[rule_id], reason, _layers(f, ev), fp, confidence)


def r_input(f: WebFacts) -> Hit | None:
    if not f.host:
        return Hit(
            rule("wc.input.bad_url"),
            f"input {f.url!r} is not a URL with a host",
            [_ev("/input", "the measured input", f.url)],
        )
    return None


def _dup_pairs(f: WebFacts) -> list[tuple[int, Query, int, Query]]:
    pairs: list[tuple[int, Query, int, Query]] = []
    if not f.dups:
        return pairs
    for j, d in enumerate(f.dups):
        for i, q in enumerate(f.queries):
            if (
                _norm(q.hostname) == _norm(d.hostname)
                and q.query_type == d.query_type
                and (q.resolver_address or "") == (d.resolver_address or "")
                and (q.engine or "") != "doh"
            ):
                pairs.append((i, q, j, d))
                break
    return pairs


def r_dns_injection(f: WebFacts) -> Hit | None:
    for i, q, j, d in _dup_pairs(f):
        first, later = _ips(q), _ips(d)
        ev = [
            _ev(f"{Q}{i}", "first reply to the query", ", ".join(first) or (q.failure or "empty")),
            _ev(
                f"{DUP}{j}",
                "a second reply to the same query",
                ", ".join(later) or (d.failure or "empty"),
            ),
        ]
        for a in q.answers or ():
            for v in (a.ipv4, a.ipv6, a.hostname):
                fp = f.fps.blocking.match_dns(v)
                if fp is not None:
                    return _hit(
                        f,
                        "wc.dns.injection.fingerprint",
                        f"two replies to one {q.query_type} query for {q.hostname}; the first, "
                        f"{v}, is a known censor address ({fp.id})",
                        ev,
                        fp,
                    )
        bogons = [ip for ip in first if netaddr.is_bogon(ip) and ip not in f.ctrl_ips]
        if bogons:
            return _hit(
                f,
                "wc.dns.injection.bogon",
                f"two replies to one {q.query_type} query for {q.hostname}; the first is the "
                f"bogon {bogons[0]}",
                ev,
            )
        if first and later and set(first) != set(later):
            if f.ctrl_dns_ok and (set(first) & f.ctrl_ips or not set(later) & f.ctrl_ips):
                continue
            conf = 0.85 if f.ctrl_dns_ok else 0.7
            return _hit(
                f,
                "wc.dns.injection.forged",
                f"two replies to one {q.query_type} query for {q.hostname} with different "
                f"addresses ({', '.join(first)} then {', '.join(later)})",
                ev,
                confidence=conf,
            )
    return None


def r_dns_fingerprint(f: WebFacts) -> Hit | None:
    # a public resolver's forged answer names injection; otherwise the system resolver's
    kind = "public" if "public" in f.fp_hits else "system"
    if kind not in f.fp_hits:
        return None
    i, value, fp = f.fp_hits[kind]
    q = f.queries[i]
    ev = [
        _ev(
            f"{Q}{i}",
            f"{q.engine or 'system'} resolver answer for {q.hostname}",
            value,
            _ctrl_addrs_text(f),
        )
    ]
    if kind == "public":
        return _hit(
            f,
            "wc.dns.fingerprint.public_resolver",
            f"the public resolver {q.resolver_address} answered {value} for {q.hostname}, a known "
            f"censor address ({fp.id}); a public resolver does not answer that, so the reply "
            "was forged on path",
            ev,
            fp,
        )
    return _hit(
        f,
        "wc.dns.fingerprint",
        f"the system resolver answered {value} for {q.hostname}, a known censor address ({fp.id})",
        ev,
        fp,
    )


def r_http_blockpage(f: WebFacts) -> Hit | None:
    table = f.fps.blocking
    for i, r in enumerate(f.requests):
        resp = r.response
        if resp is None or _authenticated(r):
            continue
        if len(resp.headers) <= 4 and len(resp.body) <= 4:  # null, {} or "": nothing to match
            continue
        m = table.match_headers(f.headers(i))
        where = f"{REQ}{i}/response/headers"
        # the final page when it is the control's is not searched (cost): see _same_page
        if m is None and not (i == 0 and _same_page(f, len(resp.body) <= SCAN_ALWAYS)):
            body = f.final_body() if i == 0 else httpdiff.body_text(resp.body)
            m = table.match_body(body)
            where = f"{REQ}{i}/response/body"
        if m is not None:
            url = r.request.url if r.request else None
            ev = [
                _ev(
                    where,
                    f"response {resp.code} for {url} matches {m.fingerprint.id}",
                    m.excerpt,
                    m.fingerprint.pattern,
                )
            ]
            return _hit(
                f,
                "wc.http.blockpage",
                f"the response for {url} is a known blockpage ({m.fingerprint.id}, "
                f"{m.fingerprint.country})",
                ev,
                m.fingerprint,
            )
    return None


SCAN_ALWAYS: Final = 8192  # raw JSON bytes of a body below which "same page" needs the same title

# Throttling (censorship-techniques.md §2.7; docs/methodology.md "Throttling"): a body must be
# this large on both sides for its rate to mean anything (slow start and the shaper's burst
# dominate small transfers) ...
THROTTLE_MIN_BODY: Final = 32 * 1024
# ... the probe's rate must be under this share of the control's (a cut of at least 75 %,
# as Iran's 2011-12 throttling: NDT throughput -69 to -77 %; a stricter 10 % missed the lab's
# 1 Mbit/s shaper whenever the control's own read was slowed by shared CPU) ...
THROTTLE_RATIO: Final = 0.25
# ... and under this absolute ceiling in bytes/s (2 Mbit/s): a fast link that is merely
# slower than a data-centre control is not throttled.
THROTTLE_CEILING: Final = 250_000


def r_throttled(f: WebFacts) -> Hit | None:
    rate = f.keys.x_didban_http_throughput
    if rate is None or not f.final_ok() or f.ctrl is None:
        return None
    ch = f.ctrl.http_request
    if ch is None or ch.x_didban_throughput is None or not _ctrl_http_ok(ch):
        return None
    ctrl_rate = ch.x_didban_throughput
    if not 0 <= rate < THROTTLE_CEILING or rate >= THROTTLE_RATIO * ctrl_rate:
        return None
    resp = f.requests[0].response
    assert resp is not None
    size = resp.x_didban_body_length
    if size is None:
        size = f.final_length_title()[0]
    if size < THROTTLE_MIN_BODY or (ch.body_length or 0) < THROTTLE_MIN_BODY:
        return None
    share = rate / ctrl_rate if ctrl_rate > 0 else 0.0
    return _hit(
        f,
        "wc.throttled",
        f"the page ({size} bytes) arrived at {rate * 8 / 1e6:.2f} Mbit/s, {share:.1%} of the "
        f"control's {ctrl_rate * 8 / 1e6:.2f} Mbit/s for {ch.body_length} bytes: throttled",
        [
            _ev(
                "/test_keys/x_didban_http_throughput",
                "body bytes/s of the final response (probe vs control)",
                f"{rate:.0f}",
                f"{ctrl_rate:.0f}",
            )
        ],
    )


def _is_https(url: str) -> bool:
    """The URL's scheme is https, in any case (without lower-casing the whole URL)."""
    return url.startswith("https://") or url[:8].lower() == "https://"


def _authenticated(r: HTTPTransaction) -> bool:
    """Fetched over HTTPS without error: the certificate proves the page is the site's own."""
    url = r.request.url if r.request else None
    return r.failure is None and url is not None and _is_https(url)


def r_https_ok(f: WebFacts) -> Hit | None:
    if f.final_ok() and _is_https(f.final_url()):
        r = f.requests[0]
        code = r.response.code if r.response else None
        return _hit(
            f,
            "wc.https.ok",
            f"the page arrived over HTTPS (status {code}) with a certificate valid for the name",
            [_ev(f"{REQ}0/response", "final response over HTTPS", str(code))],
        )
    return None


def r_control_missing(f: WebFacts) -> Hit | None:
    if f.ctrl is not None:
        return None
    why = (
        f"the control failed ({f.keys.control_failure})"
        if f.keys.control_failure
        else "there is no control"
    )
    return _hit(
        f,
        "wc.control.missing",
        f"{why}; without it blocked cannot be told from down",
        [
            _ev(
                "/test_keys/control_failure" if f.keys.control_failure else "/test_keys/control",
                "control measurement",
                f.keys.control_failure,
            )
        ],
    )


def r_dns_bogon(f: WebFacts) -> Hit | None:
    if not f.ctrl_dns_ok or f.host_is_ip:
        return None
    for source, rid in (
        (f.sys_ips, "wc.dns.bogon.system"),
        (f.pub_ips, "wc.dns.bogon.public_resolver"),
    ):
        for ip, i in source.items():
            if (
                netaddr.is_bogon(ip)
                and ip not in f.ctrl_ips
                and not any(map(netaddr.is_bogon, f.ctrl_ips))
            ):
                q = f.queries[i]
                return _hit(
                    f,
                    rid,
                    f"{q.engine or 'system'} resolver answered the bogon {ip} for {f.host}; "
                    f"the control resolved {_ctrl_addrs_text(f)}",
                    [_ev(f"{Q}{i}", "bogon answer", ip, _ctrl_addrs_text(f))],
                )
    return None


def _ctrl_dns_failed(f: WebFacts) -> bool:
    c = f.ctrl
    return (
        c is not None and c.dns is not None and (f.ctrl_dns_failure is not None or not f.ctrl_ips)
    )


def r_dns_ghost(f: WebFacts) -> Hit | None:
    if f.host_is_ip or not f.dns_ips or not _ctrl_dns_failed(f):
        return None
    if _ctrl_http_ok(f.ctrl.http_request if f.ctrl else None):
        return None
    return _hit(
        f,
        "wc.dns.ghost",
        f"the control found no address for {f.host} ({f.ctrl_dns_failure or 'no addresses'}) "
        f"and could not fetch it; the probe's resolver answered {', '.join(f.dns_ips)} anyway "
        "(resolvers that rewrite NXDOMAIN do this; ooni/probe#2308)",
        [
            _ev(
                "/test_keys/control/dns",
                "control DNS",
                f.ctrl_dns_failure or "no addresses",
                ", ".join(f.dns_ips),
            )
        ],
    )


def r_dns_failure(f: WebFacts) -> Hit | None:
    if f.sys_failure is None or f.host_is_ip:
        return None
    failure, ptr = f.sys_failure
    ev = [_ev(ptr, f"system resolver failed for {f.host}", failure, _ctrl_addrs_text(f))]
    if _ctrl_dns_failed(f):
        return _hit(
            f,
            "wc.dns.failure.ctrl_failing",
            f"DNS failed for the probe ({failure}) and the control ({_ctrl_addrs_text(f)}): "
            "the name does not resolve anywhere",
            ev,
        )
    if failure in NXDOMAIN:
        return _hit(
            f,
            "wc.dns.nxdomain",
            f"NXDOMAIN for {f.host} while the control resolved {_ctrl_addrs_text(f)}",
            ev,
        )
    if failure in DNS_TIMEOUT:
        return _hit(
            f, "wc.dns.timeout", f"DNS for {f.host} timed out while the control resolved it", ev
        )
    return _hit(
        f,
        "wc.dns.servfail",
        f"DNS for {f.host} failed ({failure}) while the control resolved it",
        ev,
    )


def _final_diff(f: WebFacts) -> httpdiff.HTTPDiff | None:
    """OONI's HTTP-diff of the final response against the control (computed once)."""
    if f.diff_done:
        return f.diff
    f.diff_done = True
    if f.final_ok() and f.ctrl is not None and _ctrl_http_ok(f.ctrl.http_request):
        r = f.requests[0]
        assert r.response is not None and f.ctrl.http_request is not None
        f.diff = httpdiff.compare(
            r.response, f.final_length_title, f.header_names(0), f.ctrl.http_request
        )
    return f.diff


def _same_page(f: WebFacts, small: bool) -> bool:
    """The final page has the control's status, length (within 30 %) and title: it is the
    site's own page, so scanning its body for blockpage patterns is pointless. A ``small``
    page (where blockpages live: under ``SCAN_ALWAYS`` bytes) must carry the control's own
    title, exactly — OONI's looser title match calls any two titles without a word of five
    or more bytes ("NTE1", "Home") the same."""
    d = _final_diff(f)
    return (
        d is not None
        and bool(d.status_code_match and d.body_length_match and d.title_match)
        and (d.same_title or not small)
    )


def r_http_match(f: WebFacts) -> Hit | None:
    d = _final_diff(f)
    if d is None or d.different:
        return None
    what = d.describe()
    return _hit(
        f,
        "wc.http.match",
        f"the page matches the control's ({what})",
        [_ev(f"{REQ}0/response", "final response compared with the control", what)],
    )


# Challenge pages come with these statuses (Cloudflare: 403 managed/JS challenge, 503 "under
# attack" mode, 429 rate limiting); other pages are not searched for challenge markers.
CHALLENGE_STATUS: Final = frozenset({403, 429, 503})


def r_http_captcha(f: WebFacts) -> Hit | None:
    if not f.final_ok():
        return None
    resp = f.requests[0].response
    assert resp is not None
    table = f.fps.server_side
    m = table.match_headers(f.headers(0))
    if m is None and resp.code in CHALLENGE_STATUS:
        m = table.match_body(f.final_body())
    if m is None:
        return None
    return _hit(
        f,
        "wc.http.captcha",
        f"the page is a server-side challenge ({m.fingerprint.id}), not network censorship",
        [_ev(f"{REQ}0/response", f"matches {m.fingerprint.id}", m.excerpt)],
    )


def r_dns_inconsistent(f: WebFacts) -> Hit | None:
    if f.consistent is not False:
        return None
    stage = f.stage()
    diff = _final_diff(f)
    if stage is None and (diff is None or not diff.different):
        return None
    if stage is not None and _ctrl_addrs_fail_too(f, stage):
        return None
    what = f"the fetch failed at {stage.layer} ({stage.failure})" if stage else "the page differs"
    qi = next(iter(f.dns_ips.values()))
    ev = [
        _ev(
            f"{Q}{qi}",
            f"answer for {f.host} shares no address, ASN or valid TLS with the control",
            ", ".join(f.dns_ips),
            _ctrl_addrs_text(f),
        )
    ]
    if stage:
        ev.append(_ev(stage.pointer, f"then {stage.layer} failed", stage.failure))
    return _hit(
        f,
        "wc.dns.inconsistent",
        f"the probe got {', '.join(f.dns_ips)} for {f.host}, unrelated to the control's "
        f"{_ctrl_addrs_text(f)}, and {what}",
        ev,
    )


def _ctrl_addrs_fail_too(f: WebFacts, stage: Stage) -> bool:
    """The probe also tried the control's addresses and failed there the same way."""
    results: list[bool] = []
    if stage.layer == "tcp":
        for c in f.tcp:
            if c.ip in f.ctrl_ips and c.port == f.port:
                results.append(bool(c.status and c.status.success))
    elif stage.layer == "tls":
        for h in f.tls:
            if netaddr.split_endpoint(h.address)[0] in f.ctrl_ips:
                results.append(h.failure is None)
    return bool(results) and not any(results)


def _ctrl_for(f: WebFacts, stage: Stage) -> bool | None:
    """Did the control succeed where the probe failed? None when it did not try."""
    c = f.ctrl
    if c is None:
        return None
    if stage.layer == "tcp" and c.tcp_connect and stage.address in c.tcp_connect:
        return bool(c.tcp_connect[stage.address].status)
    if stage.layer == "tls" and c.tls_handshake and stage.address in c.tls_handshake:
        return bool(c.tls_handshake[stage.address].status)
    if c.http_request is not None:
        return _ctrl_http_ok(c.http_request)
    return None


_TCP_METHOD: Final = (
    (RESET, "wc.tcp.reset"),
    (frozenset({F.GENERIC_TIMEOUT}), "wc.tcp.timeout"),
    (UNREACHABLE, "wc.tcp.unreachable"),
)
_TLS_METHOD: Final = (
    (frozenset({F.CONNECTION_RESET, F.CONNECTION_ABORTED}), "wc.tls.sni.reset"),
    (frozenset({F.GENERIC_TIMEOUT}), "wc.tls.sni.timeout"),
    (frozenset({F.EOF_ERROR}), "wc.tls.sni.eof"),
    (CERT, "wc.tls.mitm"),
)
_HTTP_METHOD: Final = (
    (RESET, "wc.http.reset"),
    (frozenset({F.GENERIC_TIMEOUT}), "wc.http.timeout"),
    (frozenset({F.EOF_ERROR}), "wc.http.eof"),
)


def _url_host(url: str) -> str | None:
    """The host of ``url``; None when there is none or the URL does not parse."""
    try:
        return urlsplit(url).hostname if url else None
    except ValueError:  # "http://[x/": an unclosed IPv6 bracket
        return None


def r_redirect_bogon(f: WebFacts) -> Hit | None:
    if f.ctrl is None or not _ctrl_http_ok(f.ctrl.http_request):
        return None
    for i, r in enumerate(f.requests):
        resp = r.response
        if resp is None or not 300 <= (resp.code or 0) < 400:
            continue
        location = (f.headers(i) or {}).get("location")
        if location is not None:
            loc = header_text(location[1])
            host = _url_host(loc)
            if host and netaddr.is_bogon(host):
                return _hit(
                    f,
                    "wc.http.redirect.bogon",
                    f"the response redirected to the private address {host} ({loc[:120]}), a "
                    "filtering portal, while the control fetched the page",
                    [_ev(f"{REQ}{i}/response/headers", f"{resp.code} redirect", loc[:300])],
                )
    return None


def r_layer_failure(f: WebFacts) -> Hit | None:
    stage = f.stage()
    if stage is None:
        return None
    ctrl_ok = _ctrl_for(f, stage)
    layer = stage.layer
    ev = [
        _ev(
            stage.pointer,
            f"{layer} failure" + (" (inferred from the request)" if stage.inferred else ""),
            stage.failure,
            "success (control)" if ctrl_ok else None,
        )
    ]
    if ctrl_ok is None:
        return _hit(
            f,
            "wc.control.missing",
            f"{layer} failed ({stage.failure}) but the control did "
            "not measure this step; blocked cannot be told from down",
            ev,
        )
    if ctrl_ok is False:
        rid = {
            "tcp": "wc.tcp.ctrl_failing",
            "tls": "wc.tls.ctrl_failing",
            "http": "wc.http.ctrl_failing",
        }[layer]
        if layer == "http" and not _network_failure(stage.failure):
            return _hit(
                f,
                "wc.http.failure.other",
                f"the request failed with {stage.failure}, which is not network interference",
                ev,
            )
        return _hit(
            f,
            rid,
            f"{layer} failed for the probe ({stage.failure}) and for the control too: "
            "the site is down",
            ev,
        )
    table = {"tcp": _TCP_METHOD, "tls": _TLS_METHOD, "http": _HTTP_METHOD}[layer]
    for failures, rid in table:
        if stage.failure in failures:
            if rid == "wc.tls.mitm":
                ev += _presented(f, stage)
            conf = 0.6 if stage.inferred else None
            return _hit(
                f,
                rid,
                f"{layer} failed with {stage.failure} at {stage.address or f.host} while "
                "the control succeeded",
                ev,
                confidence=conf,
            )
    other = {"tcp": "wc.tcp.other", "tls": "wc.tls.other", "http": "wc.http.failure.other"}[layer]
    return _hit(
        f,
        other,
        f"{layer} failed with {stage.failure}, not a failure censors are known to cause",
        ev,
    )


def _presented(f: WebFacts, stage: Stage) -> list[Evidence]:
    """The certificate the probe was shown (issuer and names): who intercepted."""
    if stage.inferred or not stage.pointer.startswith(TLS):
        return []
    i = int(stage.pointer[len(TLS) :])
    what = certs.describe_leaf(raw_certificates(f.tls[i].peer_certificates))
    if what is None:
        return []
    return [_ev(f"{stage.pointer}/peer_certificates/0", "certificate presented", what)]


def _network_failure(failure: str) -> bool:
    return failure in RESET or failure in UNREACHABLE or failure in (F.GENERIC_TIMEOUT, F.EOF_ERROR)


def r_http_status(f: WebFacts) -> Hit | None:
    if not f.final_ok() or f.ctrl is None or f.ctrl.http_request is None:
        return None
    resp = f.requests[0].response
    assert resp is not None
    p, c = resp.code or 0, f.ctrl.http_request.status_code or 0
    ev = [_ev(f"{REQ}0/response/code", "status codes", str(p), str(c))]
    if p >= 400 and c >= 400:
        return _hit(
            f,
            "wc.http.error_everywhere",
            f"the site answered {p} to the probe and {c} to the "
            "control: a server-side error, not censorship",
            ev,
        )
    if not _ctrl_http_ok(f.ctrl.http_request) or not 200 <= c < 400:
        return _hit(
            f,
            "wc.http.ctrl_error",
            f"the control got {c or f.ctrl.http_request.failure}; the pages cannot be compared",
            ev,
        )
    return None


def r_http_diff(f: WebFacts) -> Hit | None:
    d = _final_diff(f)
    if d is None:
        return None
    diff, body = d, f.final_body()
    resp = f.requests[0].response
    assert resp is not None
    conf = 0.7 if diff.status_code_match is False else 0.6
    title = httpdiff.title_of(body)
    ctrl_code = f.ctrl.http_request.status_code if f.ctrl and f.ctrl.http_request else None
    return _hit(
        f,
        "wc.http.diff",
        f"the page differs from the control's ({diff.describe()})",
        [
            _ev(
                f"{REQ}0/response",
                "final response differs from the control's",
                f"status {resp.code}, title {title[:80]!r}, {len(body)} chars",
                f"status {ctrl_code}",
            )
        ],
        confidence=conf,
    )


def r_no_requests(f: WebFacts) -> Hit | None:
    return _hit(f, "wc.input.no_requests", "nothing was fetched and no failure explains why", [])


CASCADE: Final[tuple[Check, ...]] = (
    r_input,
    r_dns_injection,
    r_dns_fingerprint,
    r_http_blockpage,
    r_throttled,
    r_https_ok,
    r_control_missing,
    r_dns_bogon,
    r_dns_ghost,
    r_dns_failure,
    r_http_captcha,
    r_http_status,
    r_http_match,
    r_dns_inconsistent,
    r_redirect_bogon,
    r_layer_failure,
    r_http_diff,
    r_no_requests,
)


# Rules that never match when the final fetch succeeded (they read its failure), and rules
# that never match when it failed (they read its response): each fetch outcome runs the
# subsequence of CASCADE that can match, in the same order, so the first hit is the same.
_NEED_FAILURE: Final = frozenset({r_layer_failure})
_NEED_RESPONSE: Final = frozenset(
    {r_throttled, r_https_ok, r_http_captcha, r_http_status, r_http_match}
)
_CASCADE_OK: Final = tuple(c for c in CASCADE if c not in _NEED_FAILURE)
_CASCADE_FAILED: Final = tuple(c for c in CASCADE if c not in _NEED_RESPONSE)


def classify_web(
    keys: WebKeys | None, url: str, fps: Fingerprints, info: URLInfo | None = None
) -> Hit:
    """The first rule of ``CASCADE`` that matches ``keys`` measured for ``url`` (``info``:
    ``urls.info(url)``, when the caller has it)."""
    if keys is None:
        return Hit(
            rule("wc.input.no_test_keys"),
            "the measurement has no test_keys object",
            [_ev("/test_keys", "missing or not an object")],
        )
    facts = WebFacts(keys, url, fps, info)
    for check in _CASCADE_OK if facts.final_ok() else _CASCADE_FAILED:
        hit = check(facts)
        if hit is not None:
            return hit
    raise AssertionError("r_no_requests always matches")  # pragma: no cover
