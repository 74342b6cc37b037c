"""Rules for the app tests (whatsapp, telegram, signal, facebook_messenger, tor) and dnscheck."""

from __future__ import annotations

from typing import Any

from analysis_builders import measurement as m

from didban.analysis import classify
from didban.analysis.output import Summary


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
    # stalled connecting to its first relay (5 %): the relay's TCP connect never completed
    out = classify(
        m("vanilla_tor", {"success": False, "failure": "generic_timeout_error", "tor_progress": 5})
    )
    assert (out.state, out.layer, out.method, out.rule_id) == (
        "blocked",
        "tcp",
        "tcp.timeout",
        "tor.bootstrap.tcp",
    )
    # no progress recorded: the bootstrap failed, where is not known
    out = classify(m("vanilla_tor", {"success": False, "failure": "generic_timeout_error"}))
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


def test_dnscheck_names_transport_failures_as_the_other_tests_do() -> None:
    """An aborted handshake is a reset, and a network that is down unreachable, in dnscheck
    as in Web Connectivity and the tunnels (one failure -> method table)."""
    ok = {
        "failure": None,
        "queries": [{"hostname": "example.org", "answers": [{"ipv4": "93.184.216.34"}]}],
    }
    for step, failure, method in (
        ("tls", "connection_aborted", "tls.sni.reset"),
        ("tcp", "network_down", "tcp.unreachable"),
    ):
        tcp_ok = step == "tls"
        status = {"success": tcp_ok, "failure": None if tcp_ok else failure}
        handshakes = [{"address": "198.51.100.1:853", "failure": failure}] if tcp_ok else []
        dot = {
            "failure": failure,
            "queries": [],
            "tcp_connect": [{"ip": "198.51.100.1", "port": 853, "status": status}],
            "tls_handshakes": handshakes,
        }
        keys = {"lookups": {"udp://198.51.100.1:53": ok, "dot://198.51.100.1:853": dot}}
        out = classify(m("dnscheck", keys, "example.org"))
        assert (out.state, out.layer, out.method) == ("blocked", step, method)


def test_dnscheck_plaintext_censor_answer_is_injection() -> None:
    bad = {
        "failure": None,
        "queries": [{"hostname": "www.facebook.com", "answers": [{"ipv4": "10.10.34.36"}]}],
    }
    out = classify(m("dnscheck", {"lookups": {"udp://198.51.100.8:53": bad}}, "www.facebook.com"))
    assert (out.state, out.method, out.confirmed) == ("blocked", "dns.injection.bogon", True)


# --- didban's own app, STUN and HTTP/3 measurements: the failing step named --------------


def _tagged(rec: dict[str, Any], endpoint: str) -> dict[str, Any]:
    return {**rec, "tags": [f"x_didban_endpoint={endpoint}"]}


def _connect(ip: str, port: int, failure: str | None, endpoint: str) -> dict[str, Any]:
    status = {"success": failure is None, "failure": failure}
    return _tagged({"ip": ip, "port": port, "status": status}, endpoint)


def test_telegram_data_centres_refused_is_tcp_reset() -> None:
    keys = {
        "telegram_tcp_blocking": True,
        "telegram_http_blocking": True,
        "telegram_web_status": "ok",
        "tcp_connect": [_connect("203.0.113.128", 80, "connection_refused", "dc1")],
    }
    out = classify(m("telegram", keys))
    assert (out.state, out.rule_id, out.layer, out.method) == (
        "blocked",
        "app.telegram.blocked",
        "tcp",
        "tcp.reset",
    )
    assert out.evidence[0].pointer == "/test_keys/tcp_connect/0"


def test_signal_stalled_handshake_is_tls_sni_timeout() -> None:
    keys = {
        "signal_backend_status": "blocked",
        "signal_backend_failure": "generic_timeout_error",
        "tcp_connect": [_connect("203.0.113.18", 443, None, "cdsi")],
        "tls_handshakes": [_tagged({"failure": "generic_timeout_error"}, "cdsi")],
    }
    out = classify(m("signal", keys))
    assert (out.layer, out.method) == ("tls", "tls.sni.timeout")


def test_oonis_own_app_measurement_keeps_the_app_layer() -> None:
    """No tags: nothing names the step, the verdict stays coarse (OONI's fixtures)."""
    keys = {
        "signal_backend_status": "blocked",
        "signal_backend_failure": "generic_timeout_error",
        "tls_handshakes": [{"failure": "generic_timeout_error"}],
    }
    out = classify(m("signal", keys))
    assert (out.state, out.layer, out.method) == ("blocked", "app", None)


def test_messenger_answer_at_irans_blockpage_is_confirmed_hijack() -> None:
    keys = {
        "facebook_dns_blocking": True,
        "facebook_tcp_blocking": False,
        "facebook_b_api_dns_consistent": False,
        "queries": [
            {
                "hostname": "b-api.facebook.com",
                "query_type": "ANY",
                "failure": None,
                "answers": [{"answer_type": "A", "ipv4": "10.10.34.36", "asn": 0}],
            }
        ],
    }
    out = classify(m("facebook_messenger", keys))
    assert (out.layer, out.method, out.confirmed) == ("dns", "dns.hijack", True)


def _stun(failure: str | None, control: Any) -> dict[str, Any]:
    keys: dict[str, Any] = {"endpoint": "stun.l.google.com:19302", "failure": failure}
    if control is None:
        keys["x_didban_control_failure"] = "generic_timeout_error"
    else:
        keys["x_didban_control"] = control
    return m("stunreachability", keys, "stun://stun.l.google.com:19302")


def test_stun_rules() -> None:
    ok = {"endpoint": "stun.l.google.com:19302", "failure": None, "addresses": ["1.2.3.4"]}
    assert classify(_stun(None, ok)).rule_id == "stun.ok"
    out = classify(_stun("generic_timeout_error", ok))
    assert (out.state, out.rule_id, out.method) == ("blocked", "stun.blocked", "stun.blocked")
    assert out.confidence == 0.8
    down = {**ok, "failure": "generic_timeout_error"}
    assert classify(_stun("generic_timeout_error", down)).state == "down"
    alone = classify(_stun("generic_timeout_error", None))
    assert (alone.rule_id, alone.confidence) == ("stun.blocked.no_control", 0.5)
    assert alone.domain == "stun.l.google.com"


def _h3(quic_failure: str | None, baseline_ok: bool, control_quic: bool | None) -> dict[str, Any]:
    keys: dict[str, Any] = {
        "failure": quic_failure,
        "x_didban_quic_address": "203.0.113.10:443",
        "queries": [
            {
                "hostname": "www.instagram.com",
                "query_type": "ANY",
                "failure": None,
                "answers": [{"answer_type": "A", "ipv4": "203.0.113.10"}],
            }
        ],
        "tcp_connect": [
            {
                "ip": "203.0.113.10",
                "port": 443,
                "status": {
                    "success": baseline_ok,
                    "failure": None if baseline_ok else "generic_timeout_error",
                },
                "tags": ["depth=0", "x_didban_baseline"],
            }
        ],
        "tls_handshakes": [
            {"network": "udp", "address": "203.0.113.10:443", "failure": quic_failure}
        ],
    }
    if control_quic is not None:
        keys["x_didban_control"] = {
            "quic_handshake": {"203.0.113.10:443": {"server_name": "x", "status": control_quic}}
        }
    return m("urlgetter", keys, "https://www.instagram.com/")


def test_http3_rules() -> None:
    assert classify(_h3(None, True, True)).rule_id == "quic.ok"
    blocked = classify(_h3("generic_timeout_error", True, True))
    assert (blocked.rule_id, blocked.layer, blocked.method, blocked.service) == (
        "quic.blocked",
        "quic",
        "quic.blocked",
        "instagram",
    )
    host = classify(_h3("generic_timeout_error", False, True))
    assert (host.rule_id, host.layer, host.method) == ("quic.host_blocked", "tcp", "tcp.timeout")
    assert classify(_h3("generic_timeout_error", True, False)).state == "down"
    assert classify(_h3("generic_timeout_error", True, None)).rule_id == "quic.blocked.no_control"


def test_a_urlgetter_that_is_no_http3_test_is_unsupported() -> None:
    out = classify(m("urlgetter", {"failure": None, "requests": []}, "https://example.org/"))
    assert out.rule_id == "unsupported.test"
