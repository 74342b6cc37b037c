"""What the Web Connectivity rules read, extracted once per measurement: ``WebFacts``.

DNS answers and failures per resolver kind (system, public, DoH) for the URL's host, the
first censor fingerprint per kind, the lookups of later redirect hops (``depth=N``), OONI's
DNS consistency with the control (with the TLS rescue of LTE), the final fetch — a redirect
chain whose next hop failed before HTTP is not final (``cut``) — the layer and hop at which
it failed (``Stage``, later hops read by ``hops``), the outcome of every connection per
address (``conns``), its HTTP-diff against the control, and the JSON pointers (``Q``,
``TCP``, ...) evidence points at. Lazily computed facts (the final body, headers, stage,
connections, diff) are computed on first use and kept.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from didban.analysis import httpdiff, netaddr, urls
from didban.analysis.fingerprints import (
    Fingerprint,
    Fingerprints,
    Headers,
    header_map,
    header_text,
)
from didban.analysis.records import Control, CtrlHTTP, WebKeys, raw_headers
from didban.analysis.web_connectivity.steps import (
    CERT,
    HTTP_FAILURE,
    REDIRECT_CODES,
    REQ,
    RESET,
    UNREACHABLE,
    Conn,
    Q,
    Stage,
    answer_ips,
    connect_stage,
    cut_stage,
    depth_of,
    engine_kind,
    is_https,
    norm_host,
    prefer,
    tag_depth,
)
from didban.model import failures


def _ctrl_usable(keys: WebKeys) -> Control | None:
    c = keys.control
    if c is None or keys.control_failure:
        return None
    if c.dns is None and c.http_request is None and not c.tcp_connect:
        return None
    return c


def ctrl_http_ok(h: CtrlHTTP | None) -> bool:
    return h is not None and h.failure is None and (h.status_code or 0) > 0


class WebFacts:
    """Everything the web rules read, extracted once from the typed test keys. (One is made
    per measurement: ``__slots__`` keeps its attributes out of a per-instance dict, 2 % of
    classification, docs/methodology.md §7.)"""

    __slots__ = (
        "_conns",
        "_diff",
        "_diff_done",
        "_headers",
        "_stage",
        "_stage_done",
        "_tls_valid",
        "answer_asn",
        "consistent",
        "ctrl",
        "ctrl_dns_failed",
        "ctrl_dns_failure",
        "ctrl_dns_ok",
        "ctrl_ips",
        "cut",
        "dns_ips",
        "doh_failure",
        "doh_ips",
        "dups",
        "final",
        "final_ok",
        "final_url",
        "fp_hits",
        "fps",
        "hop_queries",
        "host",
        "host_is_ip",
        "https",
        "info",
        "keys",
        "port",
        "pub_failure",
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
        # decoded header maps by response, the final response's HTTP-diff against the
        # control, the failing stage and the connections per address: computed on first
        # use, as several rules read them
        self._headers: dict[int, Headers | None] = {}
        self._diff: httpdiff.HTTPDiff | None = None
        self._diff_done = False
        self._stage: Stage | None = None
        self._stage_done = False
        self._conns: dict[str, Conn] | None = None
        self._tls_valid: set[str] | None = None
        self._dns()
        self._fetch()
        self._ctrl_dns()
        self._consistency()

    # ------------------------------------------------------------------------- DNS
    def _dns(self) -> None:
        self.sys_ips: dict[str, int] = {}
        self.pub_ips: dict[str, int] = {}
        self.doh_ips: dict[str, int] = {}
        self.answer_asn: dict[str, int] = {}
        self.sys_failure: tuple[str, str] | None = None  # (failure, pointer)
        self.pub_failure: tuple[str, str] | None = None
        self.doh_failure: tuple[str, str] | None = None
        self.hop_queries: list[int] = []  # lookups of later redirect hops (depth >= 1)
        # first fingerprinted answer per resolver kind: kind -> (query index, value, fp)
        self.fp_hits: dict[str, tuple[int, str, Fingerprint]] = {}
        if not self.queries:
            if self.keys.dns_experiment_failure:
                self.sys_failure = (
                    self.keys.dns_experiment_failure,
                    "/test_keys/dns_experiment_failure",
                )
            return
        failed: dict[str, list[tuple[str, str]]] = {}
        sys_seen = False
        table = self.fps.blocking
        host = self.host
        fp_hits = self.fp_hits
        answer_asn = self.answer_asn
        for i, q in enumerate(self.queries):
            kind = engine_kind(q.engine)
            tags = q.tags
            # (a membership test first: nearly every lookup is the first hop's)
            depth = 0 if not tags or "depth=0" in tags else depth_of(tags)
            if depth:
                self.hop_queries.append(i)
            # this host's own first-level query: its answers count (the others are only
            # searched for censor addresses)
            relevant = depth == 0 and norm_host(q.hostname) == host
            if kind == "doh":  # never searched: an on-path censor cannot forge DoH
                if relevant:
                    got = answer_ips(q)
                    for ip in got:
                        self.doh_ips.setdefault(ip, i)
                    if q.failure and not got:
                        failed.setdefault(kind, []).append((q.failure, f"{Q}{i}"))
                continue
            ips: list[str] = []
            seek = kind not in fp_hits
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
            else:
                target = self.pub_ips
            if q.failure and not ips:
                failed.setdefault(kind, []).append((q.failure, f"{Q}{i}"))
            for ip in ips:
                if ip not in target:
                    target[ip] = i
        if failed:
            if "public" in failed and not self.pub_ips:
                self.pub_failure = prefer(failed["public"])
            if "doh" in failed and not self.doh_ips:
                self.doh_failure = prefer(failed["doh"])
        if not self.sys_ips:
            if "system" in failed:
                self.sys_failure = prefer(failed["system"])
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
        # the control's DNS says the name has no address (a failure, or no address)
        self.ctrl_dns_failed = c is not None and c.dns is not None and not self.ctrl_dns_ok

    def _ctrl_asns(self) -> set[int]:
        """The ASNs the control found for the name (``ip_info`` flag 2)."""
        out: set[int] = set()
        ip_info = self.ctrl.ip_info if self.ctrl is not None else None
        for info in (ip_info or {}).values():
            flags = info.flags
            if flags and flags & 2 and info.asn:
                out.add(info.asn)
        return out

    def tls_valid(self) -> set[str]:
        """Addresses a TLS handshake proved genuine for the host: the control's (``ip_info``
        flag 8) and the probe's own handshakes that verified the name (computed once)."""
        if self._tls_valid is not None:
            return self._tls_valid
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
        self._tls_valid = out
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
                self.rescued = dns_ips.keys() & self.tls_valid()
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
        ok = (
            r is not None
            and r.failure is None
            and r.response is not None
            and (r.response.code or 0) > 0
        )
        # a redirect whose next hop failed before HTTP (no request for it: OONI LTE,
        # didban's probe) is no final response: the chain was cut there
        self.cut = bool(
            ok
            and r is not None
            and r.response is not None
            and r.response.code in REDIRECT_CODES
            and (self.keys.http_experiment_failure or self._deeper(depth_of(r.tags)))
        )
        self.final_ok = ok and not self.cut
        self.final_url = (r.request.url if r is not None and r.request else None) or self.url

    def _deeper(self, depth: int) -> bool:
        """Whether a lookup, connect or handshake of a hop after ``depth`` was recorded."""
        if any(depth_of(self.queries[i].tags) > depth for i in self.hop_queries):
            return True
        return any(depth_of(c.tags) > depth for c in self.tcp) or any(
            depth_of(h.tags) > depth for h in self.tls
        )

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
        """The layer (and hop) at which the fetch failed, or None when it did not fail
        (computed once)."""
        if not self._stage_done:
            self._stage_done = True
            self._stage = self._find_stage()
        return self._stage

    def _find_stage(self) -> Stage | None:
        req = self.final
        if req is not None and self.final_ok:
            return None
        if req is not None and self.cut:
            location = (self.headers(0) or {}).get("location")
            return cut_stage(
                self.final_url,
                req.tags,
                header_text(location[1]) if location is not None else None,
                self.queries,
                self.hop_queries,
                self.tcp,
                self.tls,
                self.keys.http_experiment_failure,
            )
        if req is None:
            stage, _ = connect_stage(self.tcp, self.tls, "", 0, self.port, self.https, 0, "")
            if stage is not None:
                return stage
            hf = self.keys.http_experiment_failure
            return Stage("http", hf, HTTP_FAILURE, "", False) if hf else None
        address = req.address or ""
        url = self.final_url
        tagged = tag_depth(req.tags)
        # untagged (v0.4, older didban): the hop is the number of earlier responses
        depth = tagged or 0
        hop = tagged if tagged is not None else len(self.requests) - 1
        info = urls.info(url) if hop else self.info
        if hop and tagged is None and not address:
            # v0.4 records the connects of the first host only: none of them is this hop's
            stage, handshakes = None, False
        else:
            stage, handshakes = connect_stage(
                self.tcp, self.tls, address, depth, info.port, is_https(url), hop, info.host
            )
        if stage is not None:
            return stage
        failure = req.failure
        if failure is None:
            return Stage("http", "unknown_failure: no response", f"{REQ}0", address, False, hop)
        if (
            is_https(url)
            and not handshakes
            and (
                failure in RESET
                or failure in (failures.GENERIC_TIMEOUT, failures.EOF_ERROR)
                or failure in CERT
                or failure.startswith("ssl_")
            )
        ):
            return Stage("tls", failure, f"{REQ}0/failure", address, True, hop, info.host)
        return Stage("http", failure, f"{REQ}0/failure", address, False, hop, info.host)

    def conns(self) -> dict[str, Conn]:
        """The probe's connections for the URL's host (depth 0) by address (computed once).
        An IPv6 address unreachable on a network without IPv6 is not counted as failing
        (ooni/probe#2284)."""
        if self._conns is not None:
            return self._conns
        out: dict[str, Conn] = {}
        for i, c in enumerate(self.tcp):
            ip = c.ip
            if not ip or depth_of(c.tags):
                continue
            st = c.status
            entry = out.setdefault(ip, Conn())
            if st is not None and st.success:
                entry.tcp_ok = True
            elif entry.tcp_fail is None:
                failure = (st.failure if st else None) or "unknown_failure"
                if failure in UNREACHABLE and netaddr.is_ipv6(ip):
                    continue
                entry.tcp_fail = (i, failure)
        for i, h in enumerate(self.tls):
            if depth_of(h.tags):
                continue
            ip, _ = netaddr.split_endpoint(h.address)
            if not ip:
                continue
            entry = out.setdefault(ip, Conn())
            if h.failure is None:
                entry.tls_ok = True
            elif entry.tls_fail is None:
                entry.tls_fail = (i, h.failure)
        self._conns = out
        return out
