"""Web Connectivity rules on hand-built measurements: one test per method and per departure
from OONI (no control, site down, CAPTCHA, TLS rescue, duplicate DNS replies)."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import pytest
import trustme
from analysis_builders import IR_BLOCKPAGE, PAGE, ctrl, didban_web, q, req, tcp, tls, web

from didban.analysis import RULES_VERSION, classify
from didban.model import ooni
from didban.model.verdict import Verdict

HOST = "www.example.com"
IP = "93.184.216.34"
HTTPS = f"https://{HOST}/"
HTTP = f"http://{HOST}/"


def v(m: dict[str, Any]) -> Verdict:
    out = classify(m)
    assert out.rules_version == RULES_VERSION
    return out


def https_failing(layer_failure: str, *, layer: str, control_ok: bool = True) -> dict[str, Any]:
    """An https fetch to a consistent address failing at ``layer`` ('tcp' or 'tls')."""
    tcp_fail = layer_failure if layer == "tcp" else None
    tls_list = [] if layer == "tcp" else [tls(f"{IP}:443", HOST, layer_failure)]
    return web(
        HTTPS,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 443, tcp_fail)],
        tls_handshakes=tls_list,
        requests=[req(HTTPS, failure=layer_failure)],
        control=ctrl(
            [IP],
            tcp={f"{IP}:443": control_ok},
            tls={f"{IP}:443": control_ok},
            http_failure=None if control_ok else "generic_timeout_error",
        ),
    )


# ----------------------------------------------------------------------------- ok


def test_https_page_is_ok() -> None:
    m = web(
        HTTPS,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 443)],
        tls_handshakes=[tls(f"{IP}:443", HOST)],
        requests=[req(HTTPS)],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.state, out.rule_id, out.blocking, out.accessible) == (
        "ok",
        "wc.https.ok",
        False,
        True,
    )
    assert any(e.summary.startswith("layer dns: consistent") for e in out.evidence)


def test_http_page_matching_control_is_ok() -> None:
    m = web(
        HTTP,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 80)],
        requests=[req(HTTP)],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.state, out.rule_id) == ("ok", "wc.http.match")


# ---------------------------------------------------------------------------- DNS


def test_system_resolver_answering_iranian_blockpage_address_is_confirmed_hijack() -> None:
    m = web(
        HTTPS,
        queries=[q(HOST, ["10.10.34.34"])],
        tcp_connect=[tcp("10.10.34.34", 443, "generic_timeout_error")],
        requests=[req(HTTPS, failure="generic_timeout_error")],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.state, out.method, out.rule_id) == ("blocked", "dns.hijack", "wc.dns.fingerprint")
    assert out.confirmed and out.fingerprint_id == "ir.dns.10_10_34_34"
    assert (out.blocking, out.accessible) == ("dns", False)
    assert out.evidence[0].pointer == "/test_keys/queries/0"
    assert out.evidence[0].observed == "10.10.34.34"


def test_fingerprint_confirms_without_control() -> None:
    m = web(
        HTTPS,
        queries=[q(HOST, ["d0::11"], qtype="AAAA")],
        control=None,
        control_failure="generic_timeout_error",
    )
    out = v(m)
    assert out.state == "blocked" and out.confirmed and out.fingerprint_id == "ir.dns.d0_11"


def test_public_resolver_answering_blockpage_address_is_injection() -> None:
    m = web(
        HTTPS,
        queries=[q(HOST, [IP]), q(HOST, ["10.10.34.36"], engine="udp", resolver="8.8.8.8:53")],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.method, out.rule_id) == (
        "dns.injection.bogon",
        "wc.dns.fingerprint.public_resolver",
    )
    assert out.confirmed


def test_two_replies_first_fingerprinted_is_injection_with_both_pointers() -> None:
    dup = q(HOST, [IP], engine="udp", resolver="8.8.8.8:53")
    m = web(
        HTTPS,
        queries=[q(HOST, ["10.10.34.36"], engine="udp", resolver="8.8.8.8:53")],
        dups=[dup],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.method, out.rule_id, out.confirmed) == (
        "dns.injection.bogon",
        "wc.dns.injection.fingerprint",
        True,
    )
    pointers = [e.pointer for e in out.evidence]
    assert (
        "/test_keys/queries/0" in pointers and "/test_keys/x_dns_duplicate_responses/0" in pointers
    )


def test_two_replies_first_bogon_is_injection_bogon_unconfirmed() -> None:
    dup = q(HOST, [IP], engine="udp", resolver="8.8.8.8:53")
    m = web(
        HTTPS,
        queries=[q(HOST, ["10.1.2.3"], engine="udp", resolver="8.8.8.8:53")],
        dups=[dup],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.method, out.rule_id, out.confirmed) == (
        "dns.injection.bogon",
        "wc.dns.injection.bogon",
        False,
    )


def test_two_different_public_replies_is_injection() -> None:
    dup = q(HOST, [IP], engine="udp", resolver="8.8.8.8:53")
    m = web(
        HTTPS,
        queries=[q(HOST, ["31.13.64.1"], engine="udp", resolver="8.8.8.8:53")],
        dups=[dup],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.method, out.rule_id) == ("dns.injection", "wc.dns.injection.forged")


def test_bogon_answer_not_in_control_is_hijack() -> None:
    m = web(
        HTTPS,
        queries=[q(HOST, ["192.168.1.1"])],
        requests=[req(HTTPS, failure="connection_refused")],
        tcp_connect=[tcp("192.168.1.1", 443, "connection_refused")],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.method, out.rule_id, out.confirmed) == ("dns.hijack", "wc.dns.bogon.system", False)


def test_bogon_also_in_control_is_not_blocking() -> None:
    m = web(
        HTTP,
        queries=[q(HOST, ["192.168.1.1"])],
        tcp_connect=[tcp("192.168.1.1", 80)],
        requests=[req(HTTP)],
        control=ctrl(["192.168.1.1"]),
    )
    assert v(m).state == "ok"


@pytest.mark.parametrize(
    ("failure", "method"),
    [
        ("dns_nxdomain_error", "dns.nxdomain"),
        ("generic_timeout_error", "dns.timeout"),
        ("dns_servfail_error", "dns.servfail"),
        ("dns_refused_error", "dns.servfail"),
    ],
)
def test_dns_failure_while_control_resolved(failure: str, method: str) -> None:
    m = web(HTTPS, queries=[q(HOST, [], failure=failure)], control=ctrl([IP]))
    out = v(m)
    assert (out.state, out.method, out.layer, out.blocking) == ("blocked", method, "dns", "dns")


def test_nxdomain_everywhere_is_down_not_blocked() -> None:
    m = web(
        HTTPS,
        queries=[q(HOST, [], failure="dns_nxdomain_error")],
        control=ctrl([], dns_failure="dns_name_error", http_failure="dns_lookup_error"),
    )
    out = v(m)
    assert (out.state, out.rule_id, out.blocking, out.accessible) == (
        "down",
        "wc.dns.failure.ctrl_failing",
        False,
        False,
    )


def test_inconsistent_dns_then_failure_is_dns_inconsistent() -> None:
    other = "31.13.64.1"
    m = web(
        HTTPS,
        queries=[q(HOST, [other])],
        tcp_connect=[tcp(other, 443, "generic_timeout_error")],
        requests=[req(HTTPS, failure="generic_timeout_error")],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.method, out.rule_id) == ("dns.inconsistent", "wc.dns.inconsistent")
    assert out.evidence[0].observed == other and out.evidence[0].expected == IP


def test_inconsistent_answer_with_valid_tls_is_rescued() -> None:
    """A different address that completed a TLS handshake valid for the name is genuine (a
    CDN): the failure is blamed on TCP, not on DNS."""
    other = "151.101.1.1"
    m = web(
        HTTP,
        queries=[q(HOST, [other])],
        tcp_connect=[tcp(other, 80, "generic_timeout_error"), tcp(other, 443)],
        tls_handshakes=[tls(f"{other}:443", HOST)],
        requests=[req(HTTP, failure="generic_timeout_error")],
        control=ctrl([IP], tcp={f"{other}:80": True}),
    )
    out = v(m)
    assert (out.method, out.rule_id) == ("tcp.timeout", "wc.tcp.timeout")
    assert any("rescued" in e.summary for e in out.evidence)


# ---------------------------------------------------------------------------- TCP


@pytest.mark.parametrize(
    ("failure", "method"),
    [
        ("generic_timeout_error", "tcp.timeout"),
        ("connection_refused", "tcp.reset"),
        ("connection_reset", "tcp.reset"),
        ("host_unreachable", "tcp.unreachable"),
        ("network_unreachable", "tcp.unreachable"),
    ],
)
def test_tcp_failure_while_control_connected(failure: str, method: str) -> None:
    out = v(https_failing(failure, layer="tcp"))
    assert (out.state, out.method, out.layer, out.blocking) == ("blocked", method, "tcp", "tcp_ip")
    assert out.evidence[0].pointer == "/test_keys/tcp_connect/0"


def test_tcp_failure_for_control_too_is_down() -> None:
    out = v(https_failing("generic_timeout_error", layer="tcp", control_ok=False))
    assert (out.state, out.rule_id, out.method) == ("down", "wc.tcp.ctrl_failing", None)


def test_no_control_is_inconclusive_not_blocked() -> None:
    m = https_failing("generic_timeout_error", layer="tcp")
    m["test_keys"]["control"] = None
    m["test_keys"]["control_failure"] = "connection_refused"
    out = v(m)
    assert (out.state, out.rule_id, out.blocking, out.accessible) == (
        "inconclusive",
        "wc.control.missing",
        None,
        None,
    )


# ---------------------------------------------------------------------------- TLS


@pytest.mark.parametrize(
    ("failure", "method"),
    [
        ("connection_reset", "tls.sni.reset"),
        ("generic_timeout_error", "tls.sni.timeout"),
        ("eof_error", "tls.sni.eof"),
        ("ssl_invalid_hostname", "tls.mitm"),
        ("ssl_unknown_authority", "tls.mitm"),
        ("ssl_invalid_certificate", "tls.mitm"),
    ],
)
def test_tls_failure_after_consistent_dns(failure: str, method: str) -> None:
    out = v(https_failing(failure, layer="tls"))
    assert (out.state, out.method, out.layer, out.blocking) == (
        "blocked",
        method,
        "tls",
        "http-failure",
    )
    assert out.evidence[0].pointer == "/test_keys/tls_handshakes/0"
    assert out.evidence[0].observed == failure


def test_mitm_evidence_names_who_issued_the_certificate() -> None:
    # a certificate for the name from a CA the probe does not trust: the verdict says
    # who issued it (a national root's name identifies the interceptor)
    rogue = trustme.CA(organization_name="Qaznet Trust Network")
    leaf = rogue.issue_cert(HOST).cert_chain_pems[0].bytes()
    der = ssl.PEM_cert_to_DER_cert(leaf.decode())
    m = https_failing("ssl_unknown_authority", layer="tls")
    m["test_keys"]["tls_handshakes"][0]["peer_certificates"] = [
        {"format": "base64", "data": base64.b64encode(der).decode()}
    ]
    out = v(m)
    assert (out.method, out.rule_id) == ("tls.mitm", "wc.tls.mitm")
    shown = [e for e in out.evidence if e.summary == "certificate presented"]
    assert [(e.pointer, e.observed) for e in shown] == [
        (
            "/test_keys/tls_handshakes/0/peer_certificates/0",
            f"issued by Qaznet Trust Network for {HOST}",
        )
    ]
    # no chain, or garbage in it: the verdict stands, without that line
    m["test_keys"]["tls_handshakes"][0]["peer_certificates"] = [{"format": "base64", "data": "!"}]
    out = v(m)
    assert out.rule_id == "wc.tls.mitm"
    assert not [e for e in out.evidence if e.summary == "certificate presented"]


def test_tls_failure_for_control_too_is_down() -> None:
    out = v(https_failing("ssl_invalid_certificate", layer="tls", control_ok=False))
    assert (out.state, out.rule_id) == ("down", "wc.tls.ctrl_failing")


# --------------------------------------------------------------------------- HTTP


@pytest.mark.parametrize(
    ("failure", "method"),
    [
        ("connection_reset", "http.reset"),
        ("generic_timeout_error", "http.timeout"),
        ("eof_error", "http.eof"),
    ],
)
def test_cleartext_failure_after_connect(failure: str, method: str) -> None:
    m = web(
        HTTP,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 80)],
        requests=[req(HTTP, failure=failure)],
        control=ctrl([IP], tcp={f"{IP}:80": True}),
    )
    out = v(m)
    assert (out.state, out.method, out.blocking) == ("blocked", method, "http-failure")


def test_iranian_blockpage_is_confirmed() -> None:
    m = web(
        HTTP,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 80)],
        requests=[req(HTTP, code=403, body=IR_BLOCKPAGE, headers={"Connection": "close"})],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.state, out.method, out.rule_id, out.confirmed) == (
        "blocked",
        "http.blockpage",
        "wc.http.blockpage",
        True,
    )
    assert out.fingerprint_id is not None and out.fingerprint_id.startswith("ir.")
    assert out.blocking == "http-diff"
    assert out.evidence[0].pointer == "/test_keys/requests/0/response/body"
    assert "10.10.34.36" in (out.evidence[0].observed or "")


def test_blockpage_marker_inside_an_https_page_is_not_a_blockpage() -> None:
    """A news article quoting the blockpage, fetched over verified HTTPS, is the site's own page."""
    body = PAGE + '<pre>iframe src="http://10.10.34.34"</pre>'
    m = web(
        HTTPS,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 443)],
        tls_handshakes=[tls(f"{IP}:443", HOST)],
        requests=[req(HTTPS, body=body)],
        control=ctrl([IP]),
    )
    assert v(m).state == "ok"


def test_small_cleartext_page_that_is_the_controls_is_not_searched_for_blockpages() -> None:
    """A small article that quotes a blockpage domain, with the control's status, length and
    exact title, is the site's own page: searching it would call it a blockpage."""
    title = "Example Domain for Testing Purposes"
    body = f"<html><title>{title}</title><p>Filtered sites show http://peyvandha.ir/1-2.html</p></html>"
    m = web(
        HTTP,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 80)],
        requests=[req(HTTP, body=body)],
        control=ctrl([IP], body_length=len(body), title=title),
    )
    out = v(m)
    assert (out.state, out.rule_id) == ("ok", "wc.http.match")


def test_small_blockpage_is_searched_when_its_title_only_loosely_matches() -> None:
    """OONI's title match calls "NTE1" and "Home" the same (no word of 5+ bytes): a small
    page of the control's size whose title is not the control's own is still searched."""
    m = web(
        HTTP,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 80)],
        requests=[req(HTTP, body=IR_BLOCKPAGE)],
        control=ctrl([IP], body_length=len(IR_BLOCKPAGE), title="Home"),
    )
    out = v(m)
    assert (out.state, out.rule_id, out.confirmed) == ("blocked", "wc.http.blockpage", True)


def test_unknown_different_page_is_http_diff_unconfirmed() -> None:
    m = web(
        HTTP,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 80)],
        requests=[
            req(
                HTTP,
                code=200,
                body="<html><title>Access denied by provider</title></html>",
                headers={"Content-Type": "text/html"},
            )
        ],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.state, out.method, out.rule_id, out.confirmed) == (
        "blocked",
        "http.diff",
        "wc.http.diff",
        False,
    )


def test_cloudflare_challenge_is_not_censorship() -> None:
    body = "<html><head><title>Just a moment...</title></head><body>cf-chl-widget</body></html>"
    m = web(
        HTTP,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 80)],
        requests=[req(HTTP, code=403, body=body, headers={"Server": "cloudflare"})],
        control=ctrl([IP]),
    )
    out = v(m)
    assert (out.state, out.rule_id, out.blocking) == ("ok", "wc.http.captcha", False)


def test_error_status_for_probe_and_control_is_down() -> None:
    m = web(
        HTTP,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 80)],
        requests=[req(HTTP, code=503, body="busy")],
        control=ctrl([IP], status=502, body_length=4),
    )
    out = v(m)
    assert (out.state, out.rule_id) == ("down", "wc.http.error_everywhere")


def _redirect(code: int, location: str) -> dict[str, Any]:
    """A cleartext fetch that ended in a ``code`` redirect to ``location``."""
    return web(
        HTTP,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 80)],
        requests=[
            {
                "request": {"url": HTTP},
                "failure": "http_invalid_redirect_url",
                "response": {"code": code, "headers": {"Location": location}, "body": ""},
            }
        ],
        control=ctrl([IP]),
    )


def test_redirect_to_private_portal_is_http_diff() -> None:
    out = v(_redirect(307, "http://192.168.22.1/UserCheck"))
    assert (out.method, out.rule_id) == ("http.diff", "wc.http.redirect.bogon")


def test_redirect_to_a_location_that_does_not_parse_is_not_a_crash() -> None:
    """An unclosed IPv6 bracket made urlsplit raise out of classify (found in review)."""
    out = v(_redirect(302, "http://[x/"))
    assert out.rule_id != "wc.http.redirect.bogon"
    assert out.rule_id != "input.malformed"


# ------------------------------------------------------------------ input problems


def test_missing_test_keys_is_inconclusive() -> None:
    m = web(HTTPS)
    m["test_keys"] = None
    out = v(m)
    assert (out.state, out.rule_id) == ("inconclusive", "wc.input.no_test_keys")


def test_missing_input_is_inconclusive() -> None:
    m = web(HTTPS)
    m["input"] = None
    assert v(m).rule_id == "wc.input.bad_url"


def test_empty_measurement_is_never_ok() -> None:
    out = v(web(HTTPS, control=ctrl([IP])))
    assert out.state == "inconclusive"


def test_unsupported_test_is_inconclusive() -> None:
    out = v({"test_name": "ndt", "test_keys": {}, "report_id": "r"})
    assert (out.state, out.rule_id) == ("inconclusive", "unsupported.test")


def test_not_a_measurement_is_malformed_verdict() -> None:
    assert classify(b"{not json").rule_id == "input.malformed"
    assert classify(b"[1, 2]").rule_id == "input.malformed"
    assert classify({"no": "test name"}).rule_id == "input.malformed"


def test_service_and_domain_from_catalog() -> None:
    url = "https://www.instagram.com/"
    m = web(url, queries=[q("www.instagram.com", ["10.10.34.35"])], control=ctrl([IP]))
    out = v(m)
    assert (out.service, out.domain, out.state) == ("instagram", "www.instagram.com", "blocked")


# ------------------------------------------------------------------ didban format


def _didban_keys(**kw: Any) -> ooni.WebConnectivityTestKeys:
    return ooni.WebConnectivityTestKeys(**kw)


def test_didban_duplicate_dns_replies_are_injection() -> None:
    first = ooni.DNSQuery(
        hostname=HOST,
        query_type="A",
        engine="udp",
        resolver_address="8.8.8.8:53",
        answers=[ooni.DNSAnswer(answer_type="A", ipv4="10.10.34.36", ttl=418)],
        tags=["depth=0"],
        transaction_id=2,
    )
    late = ooni.DNSDuplicateResponse(
        hostname=HOST,
        query_type="A",
        engine="udp",
        resolver_address="8.8.8.8:53",
        answers=[ooni.DNSAnswer(answer_type="A", ipv4=IP, ttl=300)],
        tags=["depth=0"],
        transaction_id=2,
    )
    system = ooni.DNSQuery(
        hostname=HOST,
        query_type="ANY",
        engine="getaddrinfo",
        resolver_address="",
        answers=[ooni.DNSAnswer(answer_type="A", ipv4="10.10.34.36")],
        tags=["depth=0"],
    )
    tk = _didban_keys(
        queries=[system, first],
        x_dns_duplicate_responses=[late],
        control=ooni.THResponse(dns=ooni.THDNSResult(addrs=[IP])),
    )
    out = v(didban_web(HTTPS, tk))
    assert (out.method, out.rule_id, out.confirmed) == (
        "dns.injection.bogon",
        "wc.dns.injection.fingerprint",
        True,
    )
    assert {e.pointer for e in out.evidence} >= {
        "/test_keys/queries/1",
        "/test_keys/x_dns_duplicate_responses/0",
    }


def test_didban_certificate_for_another_name_is_mitm() -> None:
    tk = _didban_keys(
        queries=[
            ooni.DNSQuery(
                hostname=HOST,
                query_type="ANY",
                engine="getaddrinfo",
                resolver_address="",
                answers=[ooni.DNSAnswer(answer_type="A", ipv4=IP)],
                tags=["depth=0"],
            )
        ],
        tcp_connect=[
            ooni.TCPConnect(
                ip=IP, port=443, status=ooni.TCPConnectStatus(success=True), tags=["depth=0"]
            )
        ],
        tls_handshakes=[
            ooni.TLSHandshake(
                network="tcp",
                address=f"{IP}:443",
                server_name=HOST,
                failure="ssl_invalid_hostname",
                x_didban_verify_code=62,
                tags=["depth=0"],
            )
        ],
        requests=[
            ooni.HTTPTransaction(
                request=ooni.HTTPRequest(url=HTTPS),
                failure="ssl_invalid_hostname",
                address=f"{IP}:443",
                tags=["depth=0"],
            )
        ],
        control=ooni.THResponse(
            dns=ooni.THDNSResult(addrs=[IP]),
            tcp_connect={f"{IP}:443": ooni.THTCPConnectResult(status=True)},
            tls_handshake={f"{IP}:443": ooni.THTLSHandshakeResult(server_name=HOST, status=True)},
            http_request=ooni.THHTTPRequestResult(status_code=200, body_length=100),
        ),
    )
    out = v(didban_web(HTTPS, tk))
    assert (out.state, out.method, out.rule_id) == ("blocked", "tls.mitm", "wc.tls.mitm")


def test_quic_failure_is_reported_as_layer_evidence_without_changing_the_verdict() -> None:
    m = web(
        HTTPS,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 443)],
        tls_handshakes=[tls(f"{IP}:443", HOST)],
        requests=[req(HTTPS)],
        control=ctrl([IP]),
    )
    m["test_keys"]["x_didban_quic"] = [{"address": f"{IP}:443", "failure": "generic_timeout_error"}]
    out = v(m)
    assert out.state == "ok"
    quic = [e for e in out.evidence if e.pointer == "/test_keys/x_didban_quic"]
    assert quic and "HTTP/3 failed (generic_timeout_error" in quic[0].summary


@pytest.mark.parametrize(
    ("body", "title"),
    [
        ("<html><title>Home</title></html>", "Home"),
        ("<html><TITLE>First</TITLE><title>Second</title></html>", "First"),
        ("<title></title><Title>Named</Title>", "Named"),
        ("<title>" + "x" * 513 + "</title>", ""),
        ("no title here", ""),
    ],
)
def test_the_title_is_oonis_first_title_in_any_case(body: str, title: str) -> None:
    """OONI's title: the first ``<title>X</title>`` (any case), X of 1-512 characters."""
    assert ooni.page_title(body) == title
