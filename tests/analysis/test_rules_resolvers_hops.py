"""Verdicts that read every resolver and every redirect hop, on hand-built measurements in
OONI's v0.4 shape (the system resolver only, failed hops in ``requests``) and v0.5/LTE shape
(getaddrinfo, UDP and DoH lookups; records tagged ``depth=N``; no ``requests`` entry for a
hop that failed before HTTP):

1. the system (ISP) resolver fails or lies while other resolvers answer like the control;
2. a redirect chain whose later hop fails while the control reached the end;
3. inconsistent DNS whose addresses refuse connections or fail TLS;
4. ghost DNS: an answer for a name the control says does not exist, where connecting fails;

and the cases beside them that are not blocks (a transparent proxy, loopback for everyone,
a redirect loop or a broken Location the control meets too)."""

from __future__ import annotations

from typing import Any

import pytest
from analysis_builders import (
    DOH,
    ctrl,
    depth,
    lte,
    lte_queries,
    q,
    redirect,
    req,
    tcp,
    tls,
    web,
)

from didban.analysis import classify
from didban.model.verdict import Verdict

HOST = "www.example.com"
IP = "93.184.216.34"  # the site's address, as the control resolves it
SINK = "203.0.113.77"  # an address that is not the site's (a sinkhole)
HTTPS = f"https://{HOST}/"
HTTP = f"http://{HOST}/"


def verdict(m: dict[str, Any]) -> tuple[str, str | None, str | None, Any, str]:
    v = classify(m)
    return (v.state, v.layer, v.method, v.blocking, v.rule_id)


def summaries(v: Verdict) -> list[str]:
    return [e.summary for e in v.evidence]


# ------------------------------------------------- 1. the system resolver fails or lies


def _https_over(addr: str, *, extra_tcp: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The https page fetched over ``addr`` (an address another resolver gave)."""
    return {
        "tcp_connect": [*(extra_tcp or []), tcp(addr, 443, tags=depth(0, "fetch_body=true"))],
        "tls_handshakes": [tls(f"{addr}:443", HOST, tags=depth(0, "fetch_body=true"))],
        "requests": [req(HTTPS, tags=depth(0), address=f"{addr}:443")],
    }


@pytest.mark.parametrize(
    ("failure", "method"),
    [
        ("dns_nxdomain_error", "dns.nxdomain"),
        ("dns_no_answer", "dns.no_answer"),
        ("android_dns_cache_no_data", "dns.no_answer"),
        ("generic_timeout_error", "dns.timeout"),
        ("dns_servfail_error", "dns.servfail"),
    ],
)
def test_system_resolver_failing_while_others_answer_is_dns_blocking(
    failure: str, method: str
) -> None:
    m = lte(
        HTTPS,
        queries=lte_queries(HOST, None, [IP], [IP], system_failure=failure),
        control=ctrl([IP]),
        **_https_over(IP),
    )
    v = classify(m)
    assert verdict(m) == ("blocked", "dns", method, "dns", "wc.dns.system.failed")
    assert v.evidence[0].pointer == "/test_keys/queries/0" and v.evidence[0].observed == failure
    found = summaries(v)
    assert any(s.startswith("reachable through another resolver: UDP 8.8.8.8:53") for s in found)
    assert any(s.startswith(f"reachable through another resolver: DoH {DOH}") for s in found)
    assert "system (ISP) resolver" in v.reason


def test_v04_system_resolver_failure_is_dns_blocking() -> None:
    m = web(HTTPS, queries=[q(HOST, [], failure="dns_nxdomain_error")], control=ctrl([IP]))
    assert verdict(m) == ("blocked", "dns", "dns.nxdomain", "dns", "wc.dns.nxdomain")


def test_v04_no_answer_is_named() -> None:
    m = web(HTTPS, queries=[q(HOST, [], failure="dns_no_answer")], control=ctrl([IP]))
    assert verdict(m) == ("blocked", "dns", "dns.no_answer", "dns", "wc.dns.no_answer")


def test_system_resolver_answering_localhost_is_its_hijack() -> None:
    m = lte(
        HTTPS,
        queries=lte_queries(HOST, ["127.0.0.1"], [IP], [IP]),
        control=ctrl([IP]),
        **_https_over(IP),
    )
    assert verdict(m) == ("blocked", "dns", "dns.hijack", "dns", "wc.dns.bogon.system")


def test_localhost_for_system_and_public_resolver_is_injection() -> None:
    m = lte(
        HTTPS,
        queries=lte_queries(HOST, ["127.0.0.1"], ["127.0.0.1"], [IP]),
        control=ctrl([IP]),
        **_https_over(IP),
    )
    assert verdict(m) == (
        "blocked",
        "dns",
        "dns.injection.bogon",
        "dns",
        "wc.dns.bogon.public_resolver",
    )


@pytest.mark.parametrize(
    ("tcp_failure", "tls_failure"),
    [
        ("connection_refused", None),
        ("generic_timeout_error", None),
        (None, "ssl_invalid_hostname"),
        (None, "ssl_unknown_authority"),
        (None, "connection_reset"),
    ],
)
def test_system_resolver_answering_an_address_that_fails_is_its_hijack(
    tcp_failure: str | None, tls_failure: str | None
) -> None:
    sink_tcp = tcp(SINK, 443, tcp_failure, tags=depth(0, "fetch_body=false"))
    sink_tls = [] if tcp_failure else [tls(f"{SINK}:443", HOST, tls_failure, tags=depth(0))]
    over = _https_over(IP, extra_tcp=[sink_tcp])
    over["tls_handshakes"] = sink_tls + over["tls_handshakes"]
    m = lte(
        HTTPS,
        queries=lte_queries(HOST, [SINK], [IP], [IP]),
        control=ctrl([IP], ip_info={IP: (15133, 10), SINK: (64500, 1)}),
        **over,
    )
    v = classify(m)
    assert verdict(m) == ("blocked", "dns", "dns.hijack", "dns", "wc.dns.system.wrong_address")
    witness = v.evidence[1]
    assert witness.observed == (tcp_failure or tls_failure)
    assert witness.pointer in ("/test_keys/tcp_connect/0", "/test_keys/tls_handshakes/0")


def test_transparent_proxy_verified_by_tls_is_not_blocking() -> None:
    """The system resolver's address is not the control's, but a TLS handshake there
    verified the name: a transparent proxy (OONI's TLS-verified address)."""
    proxy = "203.0.113.90"
    m = lte(
        HTTPS,
        queries=lte_queries(HOST, [proxy], [proxy], [IP]),
        control=ctrl([IP]),
        tcp_connect=[tcp(proxy, 443, tags=depth(0, "fetch_body=true"))],
        tls_handshakes=[tls(f"{proxy}:443", HOST, tags=depth(0, "fetch_body=true"))],
        requests=[req(HTTPS, tags=depth(0), address=f"{proxy}:443")],
    )
    assert verdict(m) == ("ok", "http", None, False, "wc.https.ok")


def test_transparent_proxy_serving_the_controls_cleartext_page_is_not_blocking() -> None:
    """Over cleartext the proxy served the control's page: its answer is valid, even though
    its :443 check failed."""
    proxy = "203.0.113.90"
    m = lte(
        HTTP,
        queries=lte_queries(HOST, [proxy], [proxy], [IP]),
        control=ctrl([IP]),
        tcp_connect=[
            tcp(proxy, 80, tags=depth(0, "fetch_body=true")),
            tcp(proxy, 443, "connection_refused", tags=["depth=0", "fetch_body=false"]),
            tcp(IP, 80, tags=["depth=0", "fetch_body=false"]),
        ],
        requests=[req(HTTP, tags=depth(0), address=f"{proxy}:80")],
    )
    assert verdict(m) == ("ok", "http", None, False, "wc.http.match")


def test_blockpage_on_every_address_over_a_proxy_answer_keeps_http_diff_with_ooni_dns() -> None:
    """The ISP's resolver sends the name to its proxy (TLS there verifies: valid for didban)
    and a blockpage comes over cleartext from it: the block is where it happened (http.diff),
    and OONI's ``blocking`` is ``"dns"``, by its classic consistency, which knows no TLS
    rescue."""
    proxy = "203.0.113.90"
    blockpage = "<html><head><title>Access Denied</title></head><body>Denied.</body></html>"
    m = lte(
        HTTP,
        queries=lte_queries(HOST, [proxy], [proxy], [IP]),
        control=ctrl([IP]),
        tcp_connect=[
            tcp(proxy, 80, tags=depth(0, "fetch_body=true")),
            tcp(proxy, 443, tags=["depth=0", "fetch_body=false"]),
        ],
        tls_handshakes=[tls(f"{proxy}:443", HOST, tags=["depth=0", "fetch_body=false"])],
        requests=[
            req(HTTP, body=blockpage, headers={"Server": "proxy"}, tags=depth(0), address=proxy)
        ],
    )
    assert verdict(m) == ("blocked", "http", "http.diff", "dns", "wc.http.diff")


def test_sni_reset_on_every_address_over_a_proxy_answer_is_tls_with_ooni_dns() -> None:
    """Every handshake is reset, the control's own address included, and the ISP's answer is
    its proxy (valid by the control's TLS check): layer tls, OONI's ``blocking`` ``"dns"``."""
    proxy = "203.0.113.90"
    m = lte(
        HTTPS,
        queries=lte_queries(HOST, [proxy], [proxy], [IP]),
        control=ctrl([IP], ip_info={proxy: (64500, 8 | 4), IP: (15133, 2 | 8)}),
        tcp_connect=[
            tcp(proxy, 443, tags=depth(0, "fetch_body=true")),
            tcp(IP, 443, tags=depth(0, "fetch_body=true")),
        ],
        tls_handshakes=[
            tls(f"{proxy}:443", HOST, "connection_reset", tags=depth(0, "fetch_body=true")),
            tls(f"{IP}:443", HOST, "connection_reset", tags=depth(0, "fetch_body=true")),
        ],
    )
    assert verdict(m) == ("blocked", "tls", "tls.sni.reset", "dns", "wc.tls.sni.reset")


# ------------------------------------------------------- 2. a later redirect hop fails

SHORT = "https://short.example.net/abc"
SHORT_HTTP = "http://short.example.net/abc"
SHORT_IP = "198.51.100.23"


def _chain(start: str, *, hop1: dict[str, Any], ctrl_ok: bool = True) -> dict[str, Any]:
    """``start`` redirects to https://www.example.com/ (hop 1), whose records ``hop1``
    adds; the control followed the chain to the end (or failed with ``ctrl_ok=False``)."""
    port = 443 if start.startswith("https") else 80
    queries = lte_queries("short.example.net", [SHORT_IP], [SHORT_IP])
    queries += hop1.pop("queries", [])
    first_tls = [tls(f"{SHORT_IP}:443", "short.example.net", tags=depth(0, "fetch_body=true"))]
    return lte(
        start,
        queries=queries,
        tcp_connect=[
            tcp(SHORT_IP, port, tags=depth(0, "fetch_body=true")),
            *hop1.pop("tcp_connect", []),
        ],
        tls_handshakes=(first_tls if port == 443 else []) + hop1.pop("tls_handshakes", []),
        requests=[*hop1.pop("requests", []), redirect(start, HTTPS, code=308, tags=depth(0))],
        control=ctrl(
            [SHORT_IP],
            tcp={f"{SHORT_IP}:{port}": True},
            http_failure=None if ctrl_ok else "dns_lookup_error",
        ),
        **hop1,
    )


def _hop1(
    *,
    dns: str | None = None,
    tcp_failure: str | None = None,
    tls_failure: str | None = None,
    summary: bool = True,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "queries": lte_queries(HOST, None if dns else [IP], None if dns else [IP], hop=1,
                               system_failure=dns, udp_failure=dns),
    }  # fmt: skip
    if not dns:
        out["tcp_connect"] = [tcp(IP, 443, tcp_failure, tags=depth(1, "fetch_body=true"))]
        if not tcp_failure:
            out["tls_handshakes"] = [
                tls(f"{IP}:443", HOST, tls_failure, tags=depth(1, "fetch_body=true"))
            ]
    if summary:
        out["http_failure"] = dns or tcp_failure or tls_failure
    return out


HOP_CASES = [
    ({"dns": "dns_nxdomain_error"}, ("blocked", "dns", "dns.nxdomain", "dns", "wc.hop.dns")),
    (
        {"tcp_failure": "connection_refused"},
        ("blocked", "tcp", "tcp.reset", "http-failure", "wc.hop.tcp"),
    ),
    (
        {"tcp_failure": "generic_timeout_error"},
        ("blocked", "tcp", "tcp.timeout", "http-failure", "wc.hop.tcp"),
    ),
    (
        {"tls_failure": "connection_reset"},
        ("blocked", "tls", "tls.sni.reset", "http-failure", "wc.hop.tls"),
    ),
    ({"tls_failure": "eof_error"}, ("blocked", "tls", "tls.sni.eof", "http-failure", "wc.hop.tls")),
]


@pytest.mark.parametrize("start", [SHORT, SHORT_HTTP])
@pytest.mark.parametrize("summary", [True, False], ids=["with-summary", "records-only"])
@pytest.mark.parametrize(("hop", "expected"), HOP_CASES)
def test_later_hop_failing_before_http_is_blocked_at_its_layer(
    start: str, summary: bool, hop: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    """No ``requests`` entry for the hop; older LTE versions leave the summary key null, so
    the hop's own records decide."""
    m = _chain(start, hop1=_hop1(summary=summary, **hop))
    v = classify(m)
    assert verdict(m) == expected
    assert any("hop 1 (www.example.com)" in e.summary for e in v.evidence)
    assert any(e.summary.startswith("layer http: redirect 308, then hop 1") for e in v.evidence)


def test_later_hop_failing_where_the_control_failed_too_is_down() -> None:
    m = _chain(SHORT, hop1=_hop1(tcp_failure="connection_refused"), ctrl_ok=False)
    assert verdict(m)[:3] == ("down", "tcp", None)
    assert verdict(m)[4] == "wc.hop.ctrl_failing"


def test_later_hop_request_failing_after_connect_is_http_failure() -> None:
    hop1 = {
        "queries": lte_queries(HOST, [IP], [IP], hop=1),
        "tcp_connect": [tcp(IP, 80, tags=depth(1, "fetch_body=true"))],
        "requests": [
            req(HTTP, failure="connection_reset", tags=depth(1), address=f"{IP}:80"),
        ],
        "http_failure": "connection_reset",
    }
    m = _chain(SHORT, hop1=hop1)
    m["test_keys"]["requests"][1] = redirect(SHORT, HTTP, code=308, tags=depth(0))
    assert verdict(m) == ("blocked", "http", "http.reset", "http-failure", "wc.hop.http")


def test_v04_later_hop_failure_is_read_from_requests() -> None:
    """v0.4 records every hop in ``requests`` (newest first) and has no depth tags."""
    m = web(
        SHORT,
        queries=[q("short.example.net", [SHORT_IP])],
        tcp_connect=[tcp(SHORT_IP, 443)],
        tls_handshakes=[tls(f"{SHORT_IP}:443", "short.example.net")],
        requests=[req(HTTPS, failure="connection_reset"), redirect(SHORT, HTTPS)],
        control=ctrl([SHORT_IP], tcp={f"{SHORT_IP}:443": True}),
    )
    v = classify(m)
    assert verdict(m) == ("blocked", "tls", "tls.sni.reset", "http-failure", "wc.hop.tls")
    assert v.confidence == 0.6  # the layer is inferred from the request's failure


def test_redirect_loop_the_control_meets_too_is_down() -> None:
    m = lte(
        "http://loop.example.net/",
        queries=lte_queries("loop.example.net", [IP], [IP]),
        tcp_connect=[tcp(IP, 80, tags=depth(10, "fetch_body=true"))],
        requests=[
            req(
                "http://loop.example.net/r/5",
                failure="unknown_failure: stopped after 10 redirects",
                tags=depth(10),
                address=f"{IP}:80",
            )
        ],
        control=ctrl([IP], http_failure="unknown_error"),
    )
    assert verdict(m) == ("down", "http", None, False, "wc.http.site_broken")


@pytest.mark.parametrize(("ctrl_status", "state"), [(302, "down"), (200, "inconclusive")])
def test_broken_location_is_the_sites_fault(ctrl_status: int, state: str) -> None:
    """A Location without a host stops the chain: ``down`` when the control stopped on the
    redirect too, ``inconclusive`` when it got a page (a probe or site fault either way)."""
    m = lte(
        HTTPS,
        queries=lte_queries(HOST, [IP], [IP]),
        tcp_connect=[tcp(IP, 443, tags=depth(0, "fetch_body=true"))],
        tls_handshakes=[tls(f"{IP}:443", HOST, tags=depth(0, "fetch_body=true"))],
        requests=[redirect(HTTPS, "https://", tags=depth(0))],
        http_failure="http_invalid_redirect_location_host",
        control=ctrl([IP], status=ctrl_status),
    )
    assert classify(m).state == state


# ---------------------------------------- 3. inconsistent DNS whose addresses fail


def test_v04_inconsistent_answer_that_refuses_is_dns_inconsistent() -> None:
    m = web(
        HTTP,
        queries=[q(HOST, [SINK])],
        tcp_connect=[tcp(SINK, 80, "connection_refused")],
        requests=[req(HTTP, failure="connection_refused")],
        control=ctrl([IP], tcp={f"{SINK}:80": True}),
    )
    assert verdict(m) == ("blocked", "dns", "dns.inconsistent", "dns", "wc.dns.inconsistent")


@pytest.mark.parametrize("failure", ["connection_refused", "ssl_unknown_authority"])
def test_forged_answer_for_system_and_public_resolver_is_injection(failure: str) -> None:
    """getaddrinfo and UDP got the same forged address; DoH and the control the site's; the
    page came over the DoH address."""
    refused = failure == "connection_refused"
    sink_tcp = tcp(SINK, 443, failure if refused else None, tags=depth(0, "fetch_body=false"))
    over = _https_over(IP, extra_tcp=[sink_tcp])
    if not refused:
        over["tls_handshakes"].insert(0, tls(f"{SINK}:443", HOST, failure, tags=depth(0)))
    m = lte(HTTPS, queries=lte_queries(HOST, [SINK], [SINK], [IP]), control=ctrl([IP]), **over)
    v = classify(m)
    assert verdict(m) == ("blocked", "dns", "dns.injection", "dns", "wc.dns.system.wrong_address")
    assert any(s.startswith(f"reachable through another resolver: DoH {DOH}") for s in summaries(v))


def test_inconsistent_dns_and_sni_reset_everywhere_keeps_the_tls_layer() -> None:
    """The reset hits the control's own address too, so the wrong answer does not explain
    it: didban's layer is TLS; OONI's ``blocking`` is still "dns" (its override)."""
    m = lte(
        HTTPS,
        queries=lte_queries(HOST, [SINK], [SINK], [IP]),
        tcp_connect=[
            tcp(SINK, 443, tags=depth(0, "fetch_body=false")),
            tcp(IP, 443, tags=["depth=0", "fetch_body=false"]),
        ],
        tls_handshakes=[
            tls(f"{SINK}:443", HOST, "connection_reset", tags=depth(0)),
            tls(f"{IP}:443", HOST, "connection_reset", tags=["depth=0"]),
        ],
        control=ctrl([IP], tcp={f"{IP}:443": True}, tls={f"{IP}:443": True}),
        http_failure="connection_reset",
    )
    assert verdict(m) == ("blocked", "tls", "tls.sni.reset", "dns", "wc.tls.sni.reset")


# --------------------------------------------------------------------- 4. ghost DNS

GHOST = "gone.example.org"


def _ghost(url: str, records: dict[str, Any], *, udp: list[str] | None) -> dict[str, Any]:
    return lte(
        url,
        queries=lte_queries(
            GHOST, [SINK], udp, None, udp_failure=None if udp else "dns_nxdomain_error",
            doh_failure="dns_nxdomain_error",
        ),
        control=ctrl([], dns_failure="dns_name_error", http_failure="dns_lookup_error"),
        **records,
    )  # fmt: skip


def test_ghost_answer_whose_443_check_is_refused_is_blocked() -> None:
    records = {
        "tcp_connect": [
            tcp(SINK, 80, tags=depth(0, "fetch_body=true")),
            tcp(SINK, 443, "connection_refused", tags=["depth=0", "fetch_body=false"]),
        ],
        "requests": [req(f"http://{GHOST}/", tags=depth(0), address=f"{SINK}:80")],
    }
    m = _ghost(f"http://{GHOST}/", records, udp=[SINK])
    v = classify(m)
    assert verdict(m) == ("blocked", "dns", "dns.injection", "dns", "wc.dns.ghost.blocked")
    assert any(e.observed == "connection_refused" for e in v.evidence)
    assert any(e.summary == "DoH found no address either" for e in v.evidence)


def test_ghost_answer_only_from_the_system_resolver_is_its_hijack() -> None:
    records = {
        "tcp_connect": [tcp(SINK, 443, "connection_refused", tags=depth(0, "fetch_body=true"))],
        "http_failure": "connection_refused",
    }
    m = _ghost(f"https://{GHOST}/", records, udp=None)
    assert verdict(m) == ("blocked", "dns", "dns.hijack", "dns", "wc.dns.ghost.blocked")


def test_v04_ghost_answer_serving_a_page_is_down() -> None:
    """Without a failed connection the answer may be an NXDOMAIN-rewriting portal: the name
    does not exist, the site is down (ooni/probe#2308)."""
    m = web(
        f"http://{GHOST}/",
        queries=[q(GHOST, [SINK])],
        tcp_connect=[tcp(SINK, 80)],
        requests=[req(f"http://{GHOST}/")],
        control=ctrl([], dns_failure="dns_name_error", http_failure="dns_lookup_error"),
    )
    assert verdict(m) == ("down", "dns", None, False, "wc.dns.ghost")


def test_loopback_for_probe_and_control_is_down() -> None:
    m = lte(
        HTTPS,
        queries=lte_queries(HOST, ["127.0.0.1"], ["127.0.0.1"], ["127.0.0.1"]),
        control=ctrl(["127.0.0.1"], http_failure="dns_lookup_error"),
    )
    assert verdict(m) == ("down", "dns", None, False, "wc.dns.bogon_everywhere")
