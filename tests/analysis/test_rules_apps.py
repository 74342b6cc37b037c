"""Rules for the app tests (whatsapp, telegram, signal, facebook_messenger, tor) and dnscheck."""

from __future__ import annotations

from typing import Any

from didban.analysis import classify
from didban.analysis.output import Summary


def m(test_name: str, test_keys: Any, input_: str | None = None) -> dict[str, Any]:
    return {
        "test_name": test_name,
        "test_keys": test_keys,
        "input": input_,
        "report_id": "r",
        "probe_cc": "IR",
        "probe_asn": "AS44244",
        "measurement_start_time": "2026-11-21 10:00:00",
    }


def test_whatsapp_unreachable_endpoints_is_blocked() -> None:
    out = classify(
        m(
            "whatsapp",
            {
                "whatsapp_endpoints_status": "blocked",
                "registration_server_status": "ok",
                "whatsapp_web_status": "ok",
            },
        )
    )
    assert (out.state, out.rule_id, out.service, out.blocking) == (
        "blocked",
        "app.whatsapp.blocked",
        "whatsapp",
        True,
    )


def test_whatsapp_web_status_code_is_not_a_block() -> None:
    out = classify(
        m(
            "whatsapp",
            {
                "whatsapp_endpoints_status": "ok",
                "registration_server_status": "ok",
                "whatsapp_web_status": "blocked",
                "whatsapp_web_failure": "http_unexpected_status_code",
            },
        )
    )
    assert (out.state, out.rule_id) == ("ok", "app.whatsapp.ok")


def test_telegram_tcp_blocking() -> None:
    out = classify(
        m(
            "telegram",
            {
                "telegram_tcp_blocking": True,
                "telegram_http_blocking": True,
                "telegram_web_status": "ok",
            },
        )
    )
    assert (out.state, out.rule_id, out.service) == ("blocked", "app.telegram.blocked", "telegram")


def test_signal_backend_blocked_points_at_failure() -> None:
    out = classify(
        m(
            "signal",
            {"signal_backend_status": "blocked", "signal_backend_failure": "connection_reset"},
        )
    )
    assert out.state == "blocked"
    assert [e.pointer for e in out.evidence] == [
        "/test_keys/signal_backend_status",
        "/test_keys/signal_backend_failure",
    ]


def test_facebook_messenger_dns_outside_facebook() -> None:
    out = classify(
        m(
            "facebook_messenger",
            {
                "facebook_dns_blocking": True,
                "facebook_tcp_blocking": False,
                "facebook_b_api_dns_consistent": False,
            },
        )
    )
    assert (out.state, out.method, out.service) == ("blocked", "dns.inconsistent", "facebook")


def test_tor_protocol_class_all_failed() -> None:
    targets = {
        "a": {"target_protocol": "obfs4", "failure": "generic_timeout_error"},
        "b": {"target_protocol": "or_port", "failure": None},
    }
    out = classify(m("tor", {"targets": targets}))
    assert (out.state, out.rule_id) == ("blocked", "app.tor.blocked")
    assert out.evidence[0].pointer == "/test_keys/targets/a/failure"


def test_app_with_missing_keys_is_inconclusive_not_ok() -> None:
    for name in ("whatsapp", "telegram", "signal", "facebook_messenger", "tor"):
        out = classify(m(name, {}))
        assert (out.state, out.rule_id) == ("inconclusive", "app.missing_keys"), name
        assert classify(m(name, None)).state == "inconclusive"


def test_dnscheck_censor_answer_is_blocked() -> None:
    keys = {
        "bootstrap": {
            "queries": [{"hostname": "dns.google", "answers": [{"ipv4": "10.10.34.36"}]}]
        },
        "lookups": {},
    }
    out = classify(m("dnscheck", keys, "https://dns.google/dns-query"))
    assert (out.state, out.method, out.confirmed) == ("blocked", "dns.hijack", True)
    assert out.evidence[0].pointer == "/test_keys/bootstrap/queries/0"


def test_dnscheck_ok_and_all_failed() -> None:
    ok = {"lookups": {"https://1.1.1.1/dns-query": {"failure": None, "queries": []}}}
    assert classify(m("dnscheck", ok)).rule_id == "dnscheck.ok"
    bad = {"lookups": {"https://1.1.1.1/dns-query": {"failure": "connection_reset"}}}
    out = classify(m("dnscheck", bad))
    assert (out.state, out.rule_id) == ("inconclusive", "dnscheck.all_failed")


def test_tor_tunnel_bootstrap() -> None:
    out = classify(
        m("vanilla_tor", {"success": False, "failure": "generic_timeout_error", "tor_progress": 5})
    )
    assert (out.state, out.method, out.rule_id) == (
        "blocked",
        "circumvention.bootstrap",
        "app.tunnel.blocked",
    )
    assert classify(m("torsf", {"success": True, "failure": None})).state == "ok"


def test_dnscheck_dot_blocked_while_udp_answers() -> None:
    ok = {
        "failure": None,
        "queries": [{"hostname": "example.org", "answers": [{"ipv4": "93.184.216.34"}]}],
    }
    dot = {
        "failure": "generic_timeout_error",
        "queries": [],
        "tcp_connect": [{"ip": "198.51.100.1", "port": 853, "status": {"success": True}}],
        "tls_handshakes": [{"address": "198.51.100.1:853", "failure": "generic_timeout_error"}],
    }
    keys = {"lookups": {"udp://198.51.100.1:53": ok, "dot://198.51.100.1:853": dot}}
    out = classify(m("dnscheck", keys, "example.org"))
    assert (out.state, out.rule_id, out.layer, out.method) == (
        "blocked",
        "dnscheck.transport_blocked",
        "tls",
        "tls.sni.timeout",
    )
    assert out.evidence[0].pointer == "/test_keys/lookups/dot:~1~1198.51.100.1:853/tls_handshakes/0"
    # the block is the resolver's, whatever name was looked up: the verdict and the
    # summary name the resolver and its transport, not example.org
    assert out.service == "dot://198.51.100.1:853" and out.domain == "example.org"
    assert "the resolver dot://198.51.100.1:853 failed at tls" in out.reason
    summary = Summary()
    summary.add(out)
    assert [row[:4] for row in summary.rows()] == [
        ("dot://198.51.100.1:853", "IR", "blocked", "tls.sni.timeout")
    ]


def test_dnscheck_plaintext_censor_answer_is_injection() -> None:
    bad = {
        "failure": None,
        "queries": [{"hostname": "www.facebook.com", "answers": [{"ipv4": "10.10.34.36"}]}],
    }
    out = classify(m("dnscheck", {"lookups": {"udp://198.51.100.8:53": bad}}, "www.facebook.com"))
    assert (out.state, out.method, out.confirmed) == ("blocked", "dns.injection.bogon", True)
