"""Verdict rules for the IM apps, STUN and HTTP/3 measurements: where each test failed,
named as precisely as web verdicts are (``tcp.reset``, ``tls.sni.timeout``, ``dns.hijack``,
``quic.blocked``, ``stun.blocked``).

Staged beside ``didban.analysis`` while the analysis package is being restructured
(h-analysis); it moves into ``analysis/apps.py`` and ``analysis/rules.py`` then. It reads
the test keys as plain dicts (OONI's and didban's measurements alike), never raises, and
returns ``analysis.outcome.Hit`` objects.

didban's probe tags every record of an app flow with ``x_didban_endpoint=<id>`` (the
catalog's endpoint id), so the step that failed for an endpoint — its lookup, its
connects, its handshake, its request — is read from its own records. OONI's measurements
carry no such tags: their verdicts keep the coarse ``app`` layer with no method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from didban.analysis import apps as ooni_apps
from didban.analysis.fingerprints import Fingerprints
from didban.analysis.fprows import Fingerprint
from didban.analysis.outcome import Hit
from didban.analysis.rules import Rule
from didban.analysis.rules import rule as table_rule
from didban.model.verdict import METHODS, Evidence, Layer

TAG: Final = "x_didban_endpoint="
TAG_BASELINE: Final = "x_didban_baseline"


def _r(rid: str, state: Any, layer: Layer | None, method: str | None, conf: float, s: str) -> Rule:
    if method is not None and method not in METHODS:
        raise ValueError(f"rule {rid}: unknown method {method}")
    return Rule(rid, state, layer, method, conf, s)


# The new rules, in evaluation order per test (they join analysis/rules.py's table).
RULES: Final[dict[str, Rule]] = {
    r.id: r
    for r in (
        _r("stun.ok", "ok", "app", None, 0.8, "the STUN server answered the binding request"),
        _r(
            "stun.dns",
            "blocked",
            "dns",
            None,
            0.7,
            "the STUN server's name did not resolve while the control's lookup did",
        ),
        _r(
            "stun.down",
            "down",
            "app",
            None,
            0.7,
            "the STUN server answered neither the probe nor the control",
        ),
        _r(
            "stun.blocked",
            "blocked",
            "app",
            "stun.blocked",
            0.8,
            "the binding request went unanswered while the control's was answered",
        ),
        _r(
            "stun.blocked.no_control",
            "blocked",
            "app",
            "stun.blocked",
            0.5,
            "the binding request went unanswered and no control could say whether the server "
            "answers (OONI's own reading of stunreachability)",
        ),
        _r(
            "quic.missing_keys",
            "inconclusive",
            "quic",
            None,
            0.0,
            "the HTTP/3 measurement lacks the keys a verdict needs",
        ),
        _r(
            "quic.dns",
            "blocked",
            "dns",
            None,
            0.8,
            "the host's lookup failed or answered a censor's address",
        ),
        _r("quic.ok", "ok", "quic", None, 0.9, "the QUIC handshake and the HTTP/3 GET worked"),
        _r(
            "quic.down",
            "down",
            "quic",
            None,
            0.7,
            "HTTP/3 failed for the control too: the site offers no working HTTP/3",
        ),
        _r(
            "quic.host_blocked",
            "blocked",
            "tcp",
            None,
            0.7,
            "QUIC failed and so did TCP to the same address: the host is blocked, not QUIC",
        ),
        _r(
            "quic.blocked",
            "blocked",
            "quic",
            "quic.blocked",
            0.8,
            "the QUIC handshake failed while TCP to the same address connected and the "
            "control's QUIC handshake worked",
        ),
        _r(
            "quic.blocked.no_control",
            "blocked",
            "quic",
            "quic.blocked",
            0.5,
            "the QUIC handshake failed while TCP to the same address connected; no control",
        ),
        _r(
            "quic.http.failure",
            "inconclusive",
            "quic",
            None,
            0.0,
            "the QUIC handshake worked but the HTTP/3 request failed",
        ),
    )
}


def rule(rule_id: str) -> Rule:
    return RULES[rule_id] if rule_id in RULES else table_rule(rule_id)


# --- the failing step of a flow ---------------------------------------------------------

_DNS_METHOD: Final = {
    "dns_nxdomain_error": "dns.nxdomain",
    "android_dns_cache_no_data": "dns.nxdomain",
    "generic_timeout_error": "dns.timeout",
}
_TCP_METHOD: Final = {
    "connection_reset": "tcp.reset",
    "connection_refused": "tcp.reset",
    "connection_aborted": "tcp.reset",
    "generic_timeout_error": "tcp.timeout",
    "host_unreachable": "tcp.unreachable",
    "network_unreachable": "tcp.unreachable",
    "network_down": "tcp.unreachable",
}
_TLS_METHOD: Final = {
    "connection_reset": "tls.sni.reset",
    "connection_aborted": "tls.sni.reset",
    "generic_timeout_error": "tls.sni.timeout",
    "eof_error": "tls.sni.eof",
    "ssl_invalid_hostname": "tls.mitm",
    "ssl_unknown_authority": "tls.mitm",
    "ssl_invalid_certificate": "tls.mitm",
}
_HTTP_METHOD: Final = {
    "connection_reset": "http.reset",
    "generic_timeout_error": "http.timeout",
    "eof_error": "http.eof",
}


@dataclass(frozen=True)
class Step:
    """Where a flow failed: its layer, the method that names it (None when the failure is
    not one censors are known to cause), the failure, a pointer to the record, and the
    fingerprint an answer matched."""

    layer: Layer
    method: str | None
    failure: str | None
    pointer: str
    fingerprint: Fingerprint | None = None


def _dns_method(failure: str) -> str:
    return _DNS_METHOD.get(failure, "dns.servfail")


def _tagged(items: Any, tag: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and tag in (item.get("tags") or []):
            yield i, item


def answer_fingerprint(query: dict[str, Any], fps: Fingerprints) -> tuple[Fingerprint, str] | None:
    for a in query.get("answers") or []:
        if not isinstance(a, dict):
            continue
        for value in (a.get("ipv4"), a.get("ipv6")):
            fp = fps.blocking.match_dns(value) if isinstance(value, str) else None
            if fp is not None:
                return fp, str(value)
    return None


def dns_step(keys: dict[str, Any], tag: str | None, fps: Fingerprints) -> Step | None:
    """A lookup of the flow that failed, or that answered a censor's address."""
    queries = keys.get("queries")
    found = _tagged(queries, tag) if tag else enumerate(queries or [])
    for i, q in found:
        if not isinstance(q, dict):
            continue
        pointer = f"/test_keys/queries/{i}"
        hit = answer_fingerprint(q, fps)
        if hit is not None:
            return Step("dns", "dns.hijack", None, pointer, hit[0])
        failure = q.get("failure")
        if isinstance(failure, str):
            return Step("dns", _dns_method(failure), failure, pointer)
    return None


def flow_step(keys: dict[str, Any], endpoint: str, fps: Fingerprints) -> Step | None:
    """The first failing step of the endpoint's flows (didban's tagged records): its
    lookup, every connect, its handshake, its request; None when nothing failed."""
    tag = TAG + endpoint
    found = dns_step(keys, tag, fps)
    if found is not None:
        return found
    connects = list(_tagged(keys.get("tcp_connect"), tag))
    if connects and all(not (c.get("status") or {}).get("success") for _, c in connects):
        i, c = connects[-1]
        failure = (c.get("status") or {}).get("failure")
        method = _TCP_METHOD.get(str(failure))
        return Step("tcp", method, failure, f"/test_keys/tcp_connect/{i}")
    for i, h in _tagged(keys.get("tls_handshakes"), tag):
        failure = h.get("failure")
        if isinstance(failure, str):
            return Step("tls", _TLS_METHOD.get(failure), failure, f"/test_keys/tls_handshakes/{i}")
    for i, r in _tagged(keys.get("requests"), tag):
        failure = r.get("failure")
        if isinstance(failure, str):
            return Step("http", _HTTP_METHOD.get(failure), failure, f"/test_keys/requests/{i}")
    return None


def _ev(pointer: str, summary: str, observed: Any = None) -> Evidence:
    return Evidence(
        pointer=pointer, summary=summary, observed=None if observed is None else str(observed)
    )


def _blocked(rule_id: str, reason: str, ev: list[Evidence], step: Step | None) -> Hit:
    """A blocking hit whose layer and method come from the failing step, when known."""
    if step is None or step.method is None:
        return Hit(rule(rule_id), reason, ev)
    where = f"{step.layer} ({step.failure or 'a censor address'})"
    ev = [_ev(step.pointer, f"the failing step: {where}", step.failure), *ev]
    return Hit(
        rule(rule_id),
        f"{reason}: {step.method}",
        ev,
        step.fingerprint,
        method=step.method,
        layer=step.layer,
    )


def _first(keys: dict[str, Any], endpoints: list[str], fps: Fingerprints) -> Step | None:
    for e in endpoints:
        step = flow_step(keys, e, fps)
        if step is not None:
            return step
    return None


def _endpoints(keys: dict[str, Any], prefix: str = "") -> list[str]:
    """The endpoint ids the measurement's records are tagged with, in record order."""
    seen: dict[str, None] = {}
    for field in ("queries", "tcp_connect", "tls_handshakes", "requests"):
        for item in keys.get(field) or []:
            for tag in (item.get("tags") or []) if isinstance(item, dict) else []:
                if isinstance(tag, str) and tag.startswith(TAG + prefix):
                    seen[tag[len(TAG) :]] = None
    return list(seen)


# --- the IM apps --------------------------------------------------------------------------


def telegram(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    """OONI's telegram keys decide; the data centres' records (then the web's) name how."""
    hit = ooni_apps.telegram(keys)
    if hit.rule.state != "blocked":
        return hit
    dcs = [e for e in _endpoints(keys) if e != "web"]
    if keys.get("telegram_tcp_blocking") is True or keys.get("telegram_http_blocking") is True:
        step = _first(keys, dcs, fps)
    else:
        step = flow_step(keys, "web", fps)
    return _blocked("app.telegram.blocked", hit.reason, hit.evidence, step)


def signal(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    hit = ooni_apps.signal(keys)
    if hit.rule.state != "blocked":
        return hit
    backends = [e for e in _endpoints(keys) if e != "uptime"]
    return _blocked("app.signal.blocked", hit.reason, hit.evidence, _first(keys, backends, fps))


def whatsapp(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    hit = ooni_apps.whatsapp(keys)
    if hit.rule.state != "blocked":
        return hit
    step: Step | None = None
    if keys.get("whatsapp_endpoints_status") == "blocked":
        step = _first(keys, [e for e in _endpoints(keys, "e") if e[1:].isdigit()], fps)
    if step is None and keys.get("registration_server_status") == "blocked":
        step = flow_step(keys, "registration", fps)
    if step is None:
        step = flow_step(keys, "web", fps)
    return _blocked("app.whatsapp.blocked", hit.reason, hit.evidence, step)


def facebook_messenger(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    """DNS first (a censor's answer is ``dns.hijack``, a failed lookup ``dns.*``, an answer
    outside Facebook's AS ``dns.inconsistent``), then TCP."""
    hit = ooni_apps.facebook_messenger(keys)
    if hit.rule.id == "app.facebook_messenger.dns":
        step = dns_step(keys, None, fps)
        if step is None or step.method is None:
            return hit
        return Hit(
            hit.rule,
            f"{hit.reason}: {step.method}",
            [_ev(step.pointer, "the lookup", step.failure), *hit.evidence],
            step.fingerprint,
            method=step.method,
            layer="dns",
        )
    if hit.rule.id == "app.facebook_messenger.tcp":
        bad = [
            k[len("facebook_") : -len("_reachable")]
            for k, v in keys.items()
            if k.endswith("_reachable") and v is False
        ]
        step = _first(keys, bad, fps) if bad else None
        if step is not None and step.layer == "tcp" and step.method is not None:
            return Hit(
                hit.rule,
                f"{hit.reason}: {step.method}",
                [_ev(step.pointer, "a failed connect", step.failure), *hit.evidence],
                method=step.method,
                layer="tcp",
            )
    return hit


# --- STUN ---------------------------------------------------------------------------------


def stunreachability(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    if "failure" not in keys:
        return Hit(
            rule("app.missing_keys"),
            "test key failure is missing",
            [_ev("/test_keys", "missing keys", "failure")],
        )
    failure = keys.get("failure")
    endpoint = keys.get("endpoint")
    ev = [_ev("/test_keys/failure", "the binding transaction", failure)]
    if failure is None:
        return Hit(rule("stun.ok"), f"{endpoint} answered the binding request", ev)
    control = keys.get("x_didban_control")
    control = control if isinstance(control, dict) else None
    step = dns_step(keys, None, fps)
    if step is not None:
        if control is not None and control.get("addresses"):
            return _blocked(
                "stun.dns",
                f"{endpoint}'s name did not resolve here but did for the control",
                ev,
                step,
            )
        if control is not None:
            return Hit(rule("stun.down"), f"{endpoint}'s name resolves nowhere", ev)
    ev.append(
        _ev(
            "/test_keys/x_didban_control",
            "the control's transaction",
            (control or {}).get("failure") if control else keys.get("x_didban_control_failure"),
        )
    )
    if control is not None and control.get("failure") is None:
        return Hit(
            rule("stun.blocked"),
            f"{endpoint} did not answer ({failure}); it answered the control",
            ev,
        )
    if control is not None:
        return Hit(
            rule("stun.down"),
            f"{endpoint} answered neither the probe ({failure}) nor the control "
            f"({control.get('failure')})",
            ev,
        )
    return Hit(
        rule("stun.blocked.no_control"),
        f"{endpoint} did not answer ({failure}); the control could not be asked",
        ev,
    )


# --- HTTP/3 -------------------------------------------------------------------------------


def is_http3(test_keys: Any, options: Any) -> bool:
    """A urlgetter measurement of didban's HTTP/3 test (or OONI's with HTTP3Enabled)."""
    if isinstance(test_keys, dict) and "x_didban_quic_address" in test_keys:
        return True
    return isinstance(options, list) and "HTTP3Enabled=true" in options


def _udp(items: Any) -> list[tuple[int, dict[str, Any]]]:
    return [
        (i, h)
        for i, h in enumerate(items if isinstance(items, list) else [])
        if isinstance(h, dict) and h.get("network") in ("udp", "quic")
    ]


def http3(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    handshakes = _udp(keys.get("tls_handshakes"))
    step = dns_step(keys, None, fps)
    if step is not None and step.method is not None:
        return _blocked("quic.dns", "the host's name was not resolved truthfully", [], step)
    if not handshakes:
        failure = keys.get("failure")
        return Hit(
            rule("quic.missing_keys"),
            f"no QUIC handshake was recorded ({failure})",
            [_ev("/test_keys/tls_handshakes", "no QUIC handshake", failure)],
        )
    i, quic = handshakes[-1]
    hs_failure = quic.get("failure")
    address = quic.get("address") or keys.get("x_didban_quic_address")
    ev = [_ev(f"/test_keys/tls_handshakes/{i}", f"QUIC handshake with {address}", hs_failure)]
    if hs_failure is None:
        if keys.get("failure") is None:
            return Hit(rule("quic.ok"), f"HTTP/3 to {address} worked", ev)
        return Hit(
            rule("quic.http.failure"),
            f"the QUIC handshake worked but the HTTP/3 GET failed ({keys.get('failure')})",
            ev,
        )
    control = keys.get("x_didban_control")
    ctrl_quic = (control or {}).get("quic_handshake") if isinstance(control, dict) else None
    ctrl_ok: bool | None = None
    if isinstance(ctrl_quic, dict) and ctrl_quic:
        ctrl_ok = any(isinstance(v, dict) and v.get("status") for v in ctrl_quic.values())
        ev.append(
            _ev(
                "/test_keys/x_didban_control/quic_handshake",
                "the control's QUIC handshakes",
                "ok" if ctrl_ok else "failed",
            )
        )
        if not ctrl_ok:
            return Hit(
                rule("quic.down"),
                f"QUIC to {address} failed ({hs_failure}) and for the control too",
                ev,
            )
    baseline = [(j, c) for j, c in _tagged(keys.get("tcp_connect"), TAG_BASELINE)]
    if baseline and not any((c.get("status") or {}).get("success") for _, c in baseline):
        j, c = baseline[-1]
        failure = (c.get("status") or {}).get("failure")
        tcp = Step("tcp", _TCP_METHOD.get(str(failure)), failure, f"/test_keys/tcp_connect/{j}")
        return _blocked(
            "quic.host_blocked",
            f"QUIC to {address} failed ({hs_failure}) and TCP to it failed too",
            ev,
            tcp,
        )
    if not baseline:
        return Hit(rule("quic.missing_keys"), "no TCP baseline to the same address", ev)
    rid = "quic.blocked" if ctrl_ok else "quic.blocked.no_control"
    return Hit(
        rule(rid),
        f"the QUIC handshake with {address} failed ({hs_failure}) while TCP "
        "to the same address connected" + (" and the control's QUIC worked" if ctrl_ok else ""),
        ev,
    )


APP_TESTS: Final[dict[str, Callable[[dict[str, Any], Fingerprints], Hit]]] = {
    "telegram": telegram,
    "signal": signal,
    "whatsapp": whatsapp,
    "facebook_messenger": facebook_messenger,
    "stunreachability": stunreachability,
}
