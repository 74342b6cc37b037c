"""The steps of one fetch as the records show them, and where the fetch failed.

Failure classes, the JSON pointers evidence points at, the ``depth=N`` tag that places a
record on a redirect hop (OONI LTE: ``queries``, ``tcp_connect``, ``tls_handshakes`` and
``requests`` of the N-th redirect carry it), and ``Stage``: the layer, failure and hop at
which a fetch failed. Two shapes are read:

* a final request that failed (``requests[0].failure``; OONI v0.4, and LTE when the hop
  got as far as HTTP): its connects and handshakes are those of its address and depth;
* a chain cut after a redirect (``cut_stage``): the last request is a 3xx, and the next
  hop, which never reached HTTP, left only its lookups, connects and handshakes tagged
  with its depth (OONI LTE, didban's probe) — and, in current versions, the failure in
  ``http_experiment_failure``; older LTE versions leave that null, so the records decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin

from didban.analysis import netaddr, urls
from didban.analysis.records import Query, TCPConnect, TLSHandshake
from didban.model import failures

SYSTEM_ENGINES: Final = frozenset(
    {"system", "getaddrinfo", "golang_net_resolver", "go", "unknown", ""}
)
DOH_ENGINES: Final = frozenset({"doh"})
NXDOMAIN: Final = frozenset({failures.DNS_NXDOMAIN})
# "the name has no address": a NOERROR reply without one, and Android's getaddrinfo
# EAI_NODATA (which also covers NXDOMAIN there)
NO_ANSWER: Final = frozenset({failures.DNS_NO_ANSWER, failures.ANDROID_DNS_CACHE_NO_DATA})
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
# the statuses a redirect chain follows (RFC 9110 §15.4; OONI LTE follows 301/302/307/308)
REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})

# JSON pointers into the measurement, for evidence
Q = "/test_keys/queries/"
DUP = "/test_keys/x_dns_duplicate_responses/"
TCP = "/test_keys/tcp_connect/"
TLS = "/test_keys/tls_handshakes/"
REQ = "/test_keys/requests/"
HTTP_FAILURE = "/test_keys/http_experiment_failure"


def tag_depth(tags: list[str] | None) -> int | None:
    """The ``depth=N`` tag of a record (its redirect hop, OONI LTE), None without one."""
    if tags:
        for t in tags:
            if t.startswith("depth="):
                d = t[6:]
                return int(d) if d.isascii() and d.isdigit() else 0
    return None


def depth_of(tags: list[str] | None) -> int:
    """A record's redirect hop: its ``depth=N`` tag, 0 without one (``tag_depth``'s loop,
    not a call to it: every query of every measurement is read with it)."""
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


def engine_kind(engine: str | None) -> str:
    """``doh``, ``system`` or ``public``: which kind of resolver an OONI ``engine`` names."""
    e = (engine or "").lower()
    return "doh" if e in DOH_ENGINES else "system" if e in SYSTEM_ENGINES else "public"


def dns_method(failure: str) -> str:
    """The method a DNS failure names when the control resolved the name."""
    if failure in NXDOMAIN:
        return "dns.nxdomain"
    if failure in NO_ANSWER:
        return "dns.no_answer"
    if failure in DNS_TIMEOUT:
        return "dns.timeout"
    return "dns.servfail"


def prefer(found: list[tuple[str, str]]) -> tuple[str, str]:
    """Of a resolver's failures (failure, pointer), the A/ANY one over AAAA's no answer."""
    return ([f for f in found if f[0] != failures.DNS_NO_ANSWER] or found)[0]


def is_https(url: str) -> bool:
    """The URL's scheme is https, in any case."""
    return url[:8].lower() == "https://"


@dataclass(slots=True)
class Stage:
    """Where the fetch failed: layer, failure string, pointer, endpoint address, whether
    the layer was inferred from the request's failure (no handshake recorded), the redirect
    hop (0: the URL itself; N: the N-th redirect) and that hop's host ("" when unknown)."""

    layer: str
    failure: str
    pointer: str
    address: str
    inferred: bool
    hop: int = 0
    host: str = ""


@dataclass(slots=True)
class Conn:
    """The connections the probe made to one address for the URL's host (depth 0): TCP and
    TLS successes, and the first failure of each as (record index, failure)."""

    tcp_ok: bool = False
    tcp_fail: tuple[int, str] | None = None
    tls_ok: bool = False
    tls_fail: tuple[int, str] | None = None

    def failed(self) -> tuple[str, str] | None:
        """(pointer, failure) of a connection to this address that failed, if one did."""
        if self.tcp_fail is not None:
            return f"{TCP}{self.tcp_fail[0]}", self.tcp_fail[1]
        if self.tls_fail is not None:
            return f"{TLS}{self.tls_fail[0]}", self.tls_fail[1]
        return None


def relevant_tcp(
    tcp: list[TCPConnect], address: str, depth: int, port: int
) -> list[tuple[int, TCPConnect]]:
    """The connects a fetch to ``address`` (or, without one, to ``port``) at ``depth`` made."""
    out: list[tuple[int, TCPConnect]] = []
    for i, c in enumerate(tcp):
        ip = c.ip
        if not ip:
            continue
        if address:
            if netaddr.endpoint(ip, c.port or 0) != address:
                continue
            tagged = tag_depth(c.tags)
            if tagged is not None and tagged != depth:
                continue
        elif c.port != port or depth_of(c.tags) != depth:
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


def relevant_tls(
    tls: list[TLSHandshake], address: str, depth: int, port: int
) -> list[tuple[int, TLSHandshake]]:
    """The handshakes a fetch to ``address`` (or, without one, to ``port``) at ``depth``
    made."""
    out: list[tuple[int, TLSHandshake]] = []
    for i, h in enumerate(tls):
        if address:
            if h.address != address:
                continue
            tagged = tag_depth(h.tags)
            if tagged is not None and tagged != depth:
                continue
        elif depth_of(h.tags) != depth:
            continue
        else:
            _, hport = netaddr.split_endpoint(h.address)
            if hport is not None and hport != port:
                continue
        out.append((i, h))
    return out


def connect_stage(
    tcp: list[TCPConnect],
    tls: list[TLSHandshake],
    address: str,
    depth: int,
    port: int,
    https: bool,
    hop: int,
    host: str,
) -> tuple[Stage | None, bool]:
    """The TCP or TLS stage at which every connection of a fetch failed (None if none did),
    and whether the fetch recorded handshakes at all."""
    conns = relevant_tcp(tcp, address, depth, port)
    if conns and not any(c.status and c.status.success for _, c in conns):
        i, c = conns[0]
        fail = (c.status.failure if c.status else None) or "unknown_failure"
        address = netaddr.endpoint(c.ip or "", c.port or 0)
        return Stage("tcp", fail, f"{TCP}{i}", address, False, hop, host), False
    if not https:
        return None, False
    hs = relevant_tls(tls, address, depth, port)
    if hs and not any(h.failure is None for _, h in hs):
        i, h = hs[0]
        failure = h.failure or "unknown_failure"
        return Stage("tls", failure, f"{TLS}{i}", h.address or "", False, hop, host), True
    return None, bool(hs)


def cut_stage(
    last_url: str,
    last_tags: list[str] | None,
    location: str | None,
    queries: list[Query],
    hop_queries: list[int],
    tcp: list[TCPConnect],
    tls: list[TLSHandshake],
    http_failure: str | None,
) -> Stage:
    """Where the hop after the last redirect (``last_url``, its tags, its ``Location``)
    failed, from the records tagged with that hop's depth: its system lookup, its connects
    to the next URL's port, its handshakes; else ``http_experiment_failure``."""
    last = depth_of(last_tags)
    deeper = [depth_of(queries[i].tags) for i in hop_queries]
    deeper += [depth_of(c.tags) for c in tcp] + [depth_of(h.tags) for h in tls]
    hop = max([d for d in deeper if d > last], default=last + 1)
    nxt = _joined(last_url, location)
    info = urls.info(nxt) if nxt else None
    host = info.host if info is not None else ""
    failed: list[tuple[str, str]] = []
    answered = False
    for i in hop_queries:
        q = queries[i]
        if depth_of(q.tags) != hop or engine_kind(q.engine) != "system":
            continue
        if host and norm_host(q.hostname) != host:
            continue
        if answer_ips(q):
            answered = True
        elif q.failure:
            failed.append((q.failure, f"{Q}{i}"))
    if failed and not answered:
        failure, pointer = prefer(failed)
        return Stage("dns", failure, pointer, "", False, hop, host)
    if info is not None and info.port:
        port, https = info.port, info.scheme == "https"
    else:  # no usable Location: the connects of that hop that fetched, on any port
        port = next((c.port or 0 for c in tcp if depth_of(c.tags) == hop), 0)
        https = any(depth_of(h.tags) == hop for h in tls)
    stage, _ = connect_stage(tcp, tls, "", hop, port, https, hop, host)
    if stage is not None:
        return stage
    if http_failure:
        return Stage("http", http_failure, HTTP_FAILURE, "", False, hop, host)
    return Stage(
        "http", "unknown_failure: the redirect was not followed", f"{REQ}0", "", False, hop, host
    )


def _joined(base: str, location: str | None) -> str | None:
    """``location`` resolved against ``base`` (None when there is none or it is broken)."""
    if not location:
        return None
    try:
        return urljoin(base, location.strip())
    except ValueError:
        return None
