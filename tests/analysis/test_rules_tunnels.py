"""The circumvention rules that need the baseline or a PT log (``analysis/tunnels.py``):
an unanswered VPN handshake is the protocol's block only when the server's address
answers; a proxy's own refusal is not a block; Snowflake's log names the failing step."""

from __future__ import annotations

from typing import Any

from analysis_builders import measurement as m

from didban.analysis import classify


def _connect(success: bool, failure: str | None = None) -> dict[str, Any]:
    return {"ip": "203.0.113.166", "port": 1194, "status": {"success": success, "failure": failure}}


VPN = "openvpn://lab.corp/?address=203.0.113.166:1194&transport=udp"


def test_vpn_handshake_blocked_only_when_the_address_answers() -> None:
    timeout = {"success": False, "failure": "generic_timeout_error"}
    refused = classify(m("openvpn", {**timeout, "x_didban_baseline": [
        _connect(False, "connection_refused")]}, VPN))  # fmt: skip
    assert (refused.state, refused.rule_id, refused.method) == (
        "blocked", "vpn.handshake", "tunnel.handshake.timeout",
    )  # fmt: skip
    cut = classify(m("openvpn", {**timeout, "x_didban_baseline": [
        _connect(False, "generic_timeout_error")]}, VPN))  # fmt: skip
    assert (cut.state, cut.rule_id, cut.layer, cut.method) == (
        "blocked", "vpn.host_unreachable", "tcp", "tcp.timeout",
    )  # fmt: skip
    alone = classify(m("wireguard", timeout))
    assert (alone.rule_id, alone.confidence) == ("vpn.handshake.no_baseline", 0.5)
    other = classify(m("openvpn", {"success": False, "failure": "ssl_invalid_certificate"}, VPN))
    assert (other.state, other.rule_id) == ("inconclusive", "vpn.failure.other")
    assert classify(m("wireguard", {"success": True, "failure": None})).rule_id == "vpn.ok"


def _proxied(
    failure: str | None, operation: str | None, answer: str | None = None
) -> dict[str, Any]:
    proxy = {"protocol": "socks5", "address": "203.0.113.170:1080", "failure": answer}
    return {"failure": failure, "failed_operation": operation, "x_didban_proxy": proxy}


def test_proxy_refusal_is_the_proxys_answer_not_a_block() -> None:
    url = "https://www.instagram.com/"
    ok = classify(m("urlgetter", _proxied(None, None), url))
    assert (ok.state, ok.rule_id) == ("ok", "proxy.ok")
    refused = classify(m("urlgetter", _proxied("connection_refused", "connect", "reply 2"), url))
    assert (refused.state, refused.rule_id) == ("inconclusive", "proxy.refused")
    silent = _proxied("generic_timeout_error", "tls_handshake")
    silent["x_didban_baseline"] = [_connect(True)]
    out = classify(m("urlgetter", silent, url))
    assert (out.state, out.rule_id, out.method) == (
        "blocked", "proxy.tunnel.blocked", "tunnel.handshake.timeout",
    )  # fmt: skip


def test_snowflake_log_names_the_failing_step() -> None:
    base = {"success": False, "failure": "generic_timeout_error", "transport_name": "snowflake",
            "tor_progress": 10}  # fmt: skip
    reset = "2026/12/07 10:00:01 WebRTC: read tcp 192.0.2.2:1->203.0.113.164:443: " \
        "read: connection reset by peer Retrying..."  # fmt: skip
    out = classify(m("torsf", {**base, "x_didban_pt_log": [reset]}))
    assert (out.rule_id, out.layer, out.method) == ("torsf.rendezvous", "tls", "tls.sni.reset")
    answered = ["2026/12/07 10:00:01 Received answer: {...}"]
    out = classify(m("torsf", {**base, "x_didban_pt_log": answered}))
    assert (out.rule_id, out.method) == ("torsf.webrtc", "webrtc.blocked")
    opened = [*answered, "2026/12/07 10:00:02 WebRTC: DataChannel.OnOpen"]
    out = classify(m("torsf", {**base, "x_didban_pt_log": opened}))
    assert out.rule_id == "app.tunnel.blocked"  # a proxy was reached: it failed further on
