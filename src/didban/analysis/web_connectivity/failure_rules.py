"""The rules for a fetch that failed at TCP, TLS or HTTP — at the URL's own host, or at a
later hop of its redirect chain (also at DNS there): blocked when the control succeeded at
that step (reset, timeout, unreachable, SNI filtering, an intercepting certificate),
down when it failed too, inconclusive when it did not try or the failure is not one
censors cause. The test helper measures only the first hop; for a later hop its witness
is its fetch of the whole chain (``control.http_request``)."""

from __future__ import annotations

from typing import Final

from didban.analysis import certs
from didban.analysis.outcome import Hit
from didban.analysis.records import raw_certificates
from didban.analysis.web_connectivity.evidence import hit
from didban.analysis.web_connectivity.facts import WebFacts, ctrl_http_ok
from didban.analysis.web_connectivity.steps import (
    CERT,
    RESET,
    TLS,
    UNREACHABLE,
    Stage,
    dns_method,
)
from didban.model import failures
from didban.model.verdict import Evidence, Layer


def _ctrl_for(f: WebFacts, stage: Stage) -> bool | None:
    """Did the control succeed where the probe failed? None when it did not try."""
    c = f.ctrl
    if c is None:
        return None
    if not stage.hop:
        if stage.layer == "tcp" and c.tcp_connect and stage.address in c.tcp_connect:
            return bool(c.tcp_connect[stage.address].status)
        if stage.layer == "tls" and c.tls_handshake and stage.address in c.tls_handshake:
            return bool(c.tls_handshake[stage.address].status)
    if c.http_request is not None:
        return ctrl_http_ok(c.http_request)
    return None


def _ctrl_stopped_at_redirect(f: WebFacts) -> bool:
    """The control's fetch ended on a redirect it did not follow either."""
    h = f.ctrl.http_request if f.ctrl is not None else None
    return h is not None and 300 <= (h.status_code or 0) < 400


TIMEOUT: Final = frozenset({failures.GENERIC_TIMEOUT})
# (failures, rule id at the URL's own host, method)
_TCP: Final = (
    (RESET, "wc.tcp.reset", "tcp.reset"),
    (TIMEOUT, "wc.tcp.timeout", "tcp.timeout"),
    (UNREACHABLE, "wc.tcp.unreachable", "tcp.unreachable"),
)
_TLS: Final = (
    (frozenset({failures.CONNECTION_RESET, failures.CONNECTION_ABORTED}), "wc.tls.sni.reset",
     "tls.sni.reset"),
    (TIMEOUT, "wc.tls.sni.timeout", "tls.sni.timeout"),
    (frozenset({failures.EOF_ERROR}), "wc.tls.sni.eof", "tls.sni.eof"),
    (CERT, "wc.tls.mitm", "tls.mitm"),
)  # fmt: skip
_HTTP: Final = (
    (RESET, "wc.http.reset", "http.reset"),
    (TIMEOUT, "wc.http.timeout", "http.timeout"),
    (frozenset({failures.EOF_ERROR}), "wc.http.eof", "http.eof"),
)
_TABLES: Final = {"tcp": _TCP, "tls": _TLS, "http": _HTTP}
_CTRL_FAILING: Final = {
    "tcp": "wc.tcp.ctrl_failing",
    "tls": "wc.tls.ctrl_failing",
    "http": "wc.http.ctrl_failing",
}
_OTHER: Final = {"tcp": "wc.tcp.other", "tls": "wc.tls.other", "http": "wc.http.failure.other"}


def _method(stage: Stage) -> tuple[str, str] | None:
    """(rule id at the URL's own host, method) of a failure censors are known to cause."""
    if stage.layer == "dns":
        return "wc.hop.dns", dns_method(stage.failure)
    for known, rid, method in _TABLES[stage.layer]:
        if stage.failure in known:
            return rid, method
    return None


def r_layer_failure(f: WebFacts) -> Hit | None:
    stage = f.stage()
    if stage is None:
        return None
    ctrl_ok = _ctrl_for(f, stage)
    layer = stage.layer
    at = f" at redirect hop {stage.hop} ({stage.host or 'the next URL'})" if stage.hop else ""
    ev = [
        Evidence(
            stage.pointer,
            f"{layer} failure{at}" + (" (inferred from the request)" if stage.inferred else ""),
            stage.failure,
            "success (control)" if ctrl_ok else None,
        )
    ]
    if ctrl_ok is None:
        return hit(
            f,
            "wc.control.missing",
            f"{layer} failed{at} ({stage.failure}) but the control did "
            "not measure this step; blocked cannot be told from down",
            ev,
        )
    if layer == "http" and not network_failure(stage.failure):
        if ctrl_ok is False or _ctrl_stopped_at_redirect(f):
            return hit(
                f,
                "wc.http.site_broken",
                f"the fetch stopped{at} with {stage.failure}, the site's own fault, and the "
                "control's fetch did not reach a page either: the site is broken, not blocked",
                ev,
            )
        rid = "wc.hop.other" if stage.hop else "wc.http.failure.other"
        return hit(
            f,
            rid,
            f"{layer} failed{at} with {stage.failure}, not a failure censors are known to cause",
            ev,
        )
    if ctrl_ok is False:
        return hit(
            f,
            "wc.hop.ctrl_failing" if stage.hop else _CTRL_FAILING[layer],
            f"{layer} failed for the probe{at} ({stage.failure}) and for the control too: "
            "the site is down",
            ev,
            layer=_layer(layer),
        )
    found = _method(stage)
    if found is None:
        rid = "wc.hop.other" if stage.hop else _OTHER[layer]
        return hit(
            f,
            rid,
            f"{layer} failed{at} with {stage.failure}, not a failure censors are known to cause",
            ev,
        )
    rid, method = found
    if method == "tls.mitm":
        ev += _presented(f, stage)
    conf = 0.6 if stage.inferred else None
    if stage.hop:
        # OONI names a later hop's DNS failure "dns" and any other "http-failure"
        return hit(
            f,
            f"wc.hop.{layer}",
            f"{layer} failed{at} with {stage.failure} at {stage.address or stage.host} while "
            "the control fetched the redirect chain to its end",
            ev,
            confidence=conf,
            method=method,
            blocking="dns" if layer == "dns" else "http-failure",
        )
    return hit(
        f,
        rid,
        f"{layer} failed with {stage.failure} at {stage.address or f.host} while "
        "the control succeeded",
        ev,
        confidence=conf,
    )


def _layer(name: str) -> Layer | None:
    for layer in ("dns", "tcp", "tls", "http"):
        if name == layer:
            return layer
    return None


def _presented(f: WebFacts, stage: Stage) -> list[Evidence]:
    """The certificate the probe was shown (issuer and names): who intercepted."""
    if stage.inferred or not stage.pointer.startswith(TLS):
        return []
    i = int(stage.pointer[len(TLS) :])
    what = certs.describe_leaf(raw_certificates(f.tls[i].peer_certificates))
    if what is None:
        return []
    return [Evidence(f"{stage.pointer}/peer_certificates/0", "certificate presented", what)]


def network_failure(failure: str) -> bool:
    """A failure on the network (reset, refused, unreachable, timeout, EOF), not a probe
    or site error (``unknown_failure …``, a redirect without a host, …)."""
    return (
        failure in RESET
        or failure in UNREACHABLE
        or failure in (failures.GENERIC_TIMEOUT, failures.EOF_ERROR)
    )
