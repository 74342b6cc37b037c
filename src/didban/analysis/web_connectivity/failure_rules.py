"""The rules for a fetch that failed at TCP, TLS or HTTP: blocked when the control
succeeded at that step (reset, timeout, unreachable, SNI filtering, an intercepting
certificate), down when it failed too, inconclusive when it did not try or the failure is
not one censors cause."""

from __future__ import annotations

from typing import Final

from didban.analysis import certs
from didban.analysis.outcome import Hit
from didban.analysis.records import raw_certificates
from didban.analysis.web_connectivity.evidence import hit
from didban.analysis.web_connectivity.facts import (
    CERT,
    RESET,
    TLS,
    UNREACHABLE,
    Stage,
    WebFacts,
    ctrl_http_ok,
)
from didban.model import failures
from didban.model.verdict import Evidence


def _ctrl_for(f: WebFacts, stage: Stage) -> bool | None:
    """Did the control succeed where the probe failed? None when it did not try."""
    c = f.ctrl
    if c is None:
        return None
    if stage.layer == "tcp" and c.tcp_connect and stage.address in c.tcp_connect:
        return bool(c.tcp_connect[stage.address].status)
    if stage.layer == "tls" and c.tls_handshake and stage.address in c.tls_handshake:
        return bool(c.tls_handshake[stage.address].status)
    if c.http_request is not None:
        return ctrl_http_ok(c.http_request)
    return None


_TCP_METHOD: Final = (
    (RESET, "wc.tcp.reset"),
    (frozenset({failures.GENERIC_TIMEOUT}), "wc.tcp.timeout"),
    (UNREACHABLE, "wc.tcp.unreachable"),
)
_TLS_METHOD: Final = (
    (frozenset({failures.CONNECTION_RESET, failures.CONNECTION_ABORTED}), "wc.tls.sni.reset"),
    (frozenset({failures.GENERIC_TIMEOUT}), "wc.tls.sni.timeout"),
    (frozenset({failures.EOF_ERROR}), "wc.tls.sni.eof"),
    (CERT, "wc.tls.mitm"),
)
_HTTP_METHOD: Final = (
    (RESET, "wc.http.reset"),
    (frozenset({failures.GENERIC_TIMEOUT}), "wc.http.timeout"),
    (frozenset({failures.EOF_ERROR}), "wc.http.eof"),
)


def r_layer_failure(f: WebFacts) -> Hit | None:
    stage = f.stage()
    if stage is None:
        return None
    ctrl_ok = _ctrl_for(f, stage)
    layer = stage.layer
    ev = [
        Evidence(
            stage.pointer,
            f"{layer} failure" + (" (inferred from the request)" if stage.inferred else ""),
            stage.failure,
            "success (control)" if ctrl_ok else None,
        )
    ]
    if ctrl_ok is None:
        return hit(
            f,
            "wc.control.missing",
            f"{layer} failed ({stage.failure}) but the control did "
            "not measure this step; blocked cannot be told from down",
            ev,
        )
    if ctrl_ok is False:
        rid = {
            "tcp": "wc.tcp.ctrl_failing",
            "tls": "wc.tls.ctrl_failing",
            "http": "wc.http.ctrl_failing",
        }[layer]
        if layer == "http" and not _network_failure(stage.failure):
            return hit(
                f,
                "wc.http.failure.other",
                f"the request failed with {stage.failure}, which is not network interference",
                ev,
            )
        return hit(
            f,
            rid,
            f"{layer} failed for the probe ({stage.failure}) and for the control too: "
            "the site is down",
            ev,
        )
    table = {"tcp": _TCP_METHOD, "tls": _TLS_METHOD, "http": _HTTP_METHOD}[layer]
    for known, rid in table:
        if stage.failure in known:
            if rid == "wc.tls.mitm":
                ev += _presented(f, stage)
            conf = 0.6 if stage.inferred else None
            return hit(
                f,
                rid,
                f"{layer} failed with {stage.failure} at {stage.address or f.host} while "
                "the control succeeded",
                ev,
                confidence=conf,
            )
    other = {"tcp": "wc.tcp.other", "tls": "wc.tls.other", "http": "wc.http.failure.other"}[layer]
    return hit(
        f,
        other,
        f"{layer} failed with {stage.failure}, not a failure censors are known to cause",
        ev,
    )


def _presented(f: WebFacts, stage: Stage) -> list[Evidence]:
    """The certificate the probe was shown (issuer and names): who intercepted."""
    if stage.inferred or not stage.pointer.startswith(TLS):
        return []
    i = int(stage.pointer[len(TLS) :])
    what = certs.describe_leaf(raw_certificates(f.tls[i].peer_certificates))
    if what is None:
        return []
    return [Evidence(f"{stage.pointer}/peer_certificates/0", "certificate presented", what)]


def _network_failure(failure: str) -> bool:
    return (
        failure in RESET
        or failure in UNREACHABLE
        or failure in (failures.GENERIC_TIMEOUT, failures.EOF_ERROR)
    )
