"""The evidence of a Web Connectivity verdict: the deciding entries a rule names, then one
summary per layer (DNS, TCP, TLS, QUIC, HTTP), and ``hit``, which assembles a rule's
``Hit`` with them. Every entry points into the measurement with a JSON pointer.
"""

from __future__ import annotations

from didban.analysis.fingerprints import Fingerprint
from didban.analysis.outcome import Hit
from didban.analysis.rules import rule
from didban.analysis.web_connectivity.facts import WebFacts
from didban.analysis.web_connectivity.steps import REQ
from didban.model.verdict import Evidence, Layer


def ctrl_addrs_text(f: WebFacts) -> str:
    return ", ".join(sorted(f.ctrl_ips)) or (f.ctrl_dns_failure or "none")


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
    return Evidence("/test_keys/queries", summary, ips, ctrl_addrs_text(f) if f.ctrl else None)


def _count_layer(ok: int, n: int, pointer: str, layer: str, what: str) -> Evidence:
    """ "layer L: ok/n W succeeded"."""
    return Evidence(pointer, f"layer {layer}: {ok}/{n} {what} succeeded")


def layers(f: WebFacts, ev: list[Evidence]) -> list[Evidence]:
    """The deciding evidence followed by the per-layer outcomes."""
    out = list(ev)
    out.append(_dns_layer(f))
    if f.tcp:
        ok = 0
        for c in f.tcp:
            status = c.status
            if status is not None and status.success:
                ok += 1
        out.append(_count_layer(ok, len(f.tcp), "/test_keys/tcp_connect", "tcp", "connects"))
    if f.tls:
        ok = 0
        for h in f.tls:
            if h.failure is None:
                ok += 1
        out.append(_count_layer(ok, len(f.tls), "/test_keys/tls_handshakes", "tls", "handshakes"))
    quic = f.keys.x_didban_quic
    if quic:
        failed = [q for q in quic if q.failure]
        what = (
            f"HTTP/3 failed ({failed[0].failure} at {failed[0].address})"
            + (" while TLS over TCP worked" if f.final_ok else "")
            if failed
            else "HTTP/3 worked"
        )
        out.append(Evidence("/test_keys/x_didban_quic", "layer quic: " + what))
    if f.requests:
        r = f.requests[0]
        stage = f.stage() if f.cut else None
        if stage is not None and r.response is not None:
            out.append(
                Evidence(
                    f"{REQ}0",
                    f"layer http: redirect {r.response.code}, then hop {stage.hop} "
                    f"({stage.host or 'the next URL'}) failed at {stage.layer} ({stage.failure})",
                    f.final_url,
                )
            )
        elif r.failure is None and r.response is not None:
            code = r.response.code
            out.append(Evidence(f"{REQ}0", f"layer http: final response {code}", f.final_url))
        else:
            out.append(
                Evidence(f"{REQ}0", f"layer http: final request failed ({r.failure})", f.final_url)
            )
    return out


def hit(
    f: WebFacts,
    rule_id: str,
    reason: str,
    ev: list[Evidence],
    fp: Fingerprint | None = None,
    confidence: float | None = None,
    *,
    method: str | None = None,
    layer: Layer | None = None,
    blocking: str | None = None,
) -> Hit:
    return Hit(rule(rule_id), reason, layers(f, ev), fp, confidence, method, layer, blocking)
