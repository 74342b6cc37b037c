"""Rules for didban's HTTP/3 test (OONI ``urlgetter`` with ``HTTP3Enabled``): was QUIC
blocked, or the host, or does the site offer no working HTTP/3?

Rules, in order: ``quic.dns`` (the lookup failed or answered a censor's address: the name
is blocked whatever the transport); ``quic.missing_keys`` (no QUIC handshake recorded);
``quic.ok``; ``quic.http.failure`` (the handshake worked, the GET did not: inconclusive);
``quic.down`` (the control's QUIC handshakes failed too); ``quic.host_blocked`` (TCP to the
same address failed too: the host is blocked, method from that connect); ``quic.blocked``
(TCP to the same address connected and the control's QUIC worked), or
``quic.blocked.no_control`` when no control answered (confidence 0.5).
"""

from __future__ import annotations

from typing import Any

from didban.analysis.fingerprints import Fingerprints
from didban.analysis.outcome import Hit
from didban.analysis.rules import rule
from didban.analysis.steps import TAG_BASELINE, TCP_METHOD, Step, blocked, dns_step, ev, tagged


def is_http3(test_keys: Any) -> bool:
    """A urlgetter measurement of an HTTP/3 fetch: didban's test, or OONI's with
    ``HTTP3Enabled`` (its QUIC handshake recorded with network ``udp`` or ``quic``)."""
    if not isinstance(test_keys, dict):
        return False
    return "x_didban_quic_address" in test_keys or bool(_udp(test_keys.get("tls_handshakes")))


def _udp(items: Any) -> list[tuple[int, dict[str, Any]]]:
    return [
        (i, h)
        for i, h in enumerate(items if isinstance(items, list) else [])
        if isinstance(h, dict) and h.get("network") in ("udp", "quic")
    ]


def _control_quic(keys: dict[str, Any]) -> bool | None:
    """Did any of the control's QUIC handshakes work (None: the control has none)?"""
    control = keys.get("x_didban_control")
    handshakes = control.get("quic_handshake") if isinstance(control, dict) else None
    if not isinstance(handshakes, dict) or not handshakes:
        return None
    return any(isinstance(v, dict) and bool(v.get("status")) for v in handshakes.values())


def http3(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    step = dns_step(keys, None, fps)
    if step is not None and step.method is not None:
        return blocked(rule("quic.dns"), "the host's name was not resolved truthfully", [], step)
    handshakes = _udp(keys.get("tls_handshakes"))
    if not handshakes:
        failure = keys.get("failure")
        return Hit(
            rule("quic.missing_keys"),
            f"no QUIC handshake was recorded ({failure})",
            [ev("/test_keys/tls_handshakes", "no QUIC handshake", failure)],
        )
    i, quic = handshakes[-1]
    hs_failure = quic.get("failure")
    address = quic.get("address") or keys.get("x_didban_quic_address")
    found = [ev(f"/test_keys/tls_handshakes/{i}", f"QUIC handshake with {address}", hs_failure)]
    if hs_failure is None:
        if keys.get("failure") is None:
            return Hit(rule("quic.ok"), f"HTTP/3 to {address} worked", found)
        reason = f"the QUIC handshake worked but the HTTP/3 GET failed ({keys.get('failure')})"
        return Hit(rule("quic.http.failure"), reason, found)
    ctrl_ok = _control_quic(keys)
    if ctrl_ok is not None:
        pointer = "/test_keys/x_didban_control/quic_handshake"
        found.append(ev(pointer, "the control's QUIC handshakes", "ok" if ctrl_ok else "failed"))
    if ctrl_ok is False:
        reason = f"QUIC to {address} failed ({hs_failure}) and for the control too"
        return Hit(rule("quic.down"), reason, found)
    baseline = list(tagged(keys.get("tcp_connect"), TAG_BASELINE))
    if not baseline:
        return Hit(rule("quic.missing_keys"), "no TCP baseline to the same address", found)
    if not any((c.get("status") or {}).get("success") for _, c in baseline):
        j, c = baseline[-1]
        failure = (c.get("status") or {}).get("failure")
        tcp = Step("tcp", TCP_METHOD.get(str(failure)), failure, f"/test_keys/tcp_connect/{j}")
        reason = f"QUIC to {address} failed ({hs_failure}) and TCP to it failed too"
        return blocked(rule("quic.host_blocked"), reason, found, tcp)
    rid = "quic.blocked" if ctrl_ok else "quic.blocked.no_control"
    reason = (
        f"the QUIC handshake with {address} failed ({hs_failure}) while TCP to the same "
        "address connected" + (" and the control's QUIC worked" if ctrl_ok else "")
    )
    return Hit(rule(rid), reason, found)
