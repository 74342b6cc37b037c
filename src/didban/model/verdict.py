"""Verdicts: what analysis concludes about one measurement, kept apart from the evidence.

A verdict names the state, the layer and the method, cites the rule (``rule_id`` under
``rules_version``) and the fingerprint that matched, says how sure it is, and points at
the exact evidence (a JSON pointer into the measurement) that proves it.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

State = Literal["ok", "blocked", "down", "inconclusive"]
Layer = Literal["dns", "tcp", "tls", "http", "quic", "ip", "app"]

STATES: Final = ("ok", "blocked", "down", "inconclusive")
LAYERS: Final = ("dns", "tcp", "tls", "http", "quic", "ip", "app")

# Methods, named precisely (DESIGN.md §3). Analysis may only emit names from this table.
METHODS: Final[dict[str, str]] = {
    "dns.injection.bogon": "an on-path injector answered with a bogon or blockpage address",
    "dns.injection": "two or more replies to one query, the first forged",
    "dns.hijack": (
        "the system (ISP) resolver answered an address that is not the site's (a blockpage, "
        "a bogon, or an address that refuses connections or fails TLS)"
    ),
    "dns.nxdomain": "the name was said not to exist, while the control resolved it",
    "dns.no_answer": "the resolver answered without an address, while the control resolved it",
    "dns.servfail": "the resolver failed while the control resolved the name",
    "dns.timeout": "DNS queries went unanswered while the control resolved the name",
    "dns.inconsistent": "addresses unrelated to the control's, not proven genuine by TLS",
    "tcp.reset": "the TCP connection was reset or refused on connect",
    "tcp.timeout": "SYNs went unanswered while the control connected",
    "tcp.unreachable": "an ICMP unreachable or a missing route stopped the connection",
    "tls.sni.reset": "the TLS handshake was reset after the ClientHello",
    "tls.sni.timeout": "the TLS handshake stalled after the ClientHello",
    "tls.sni.eof": "the connection was closed after the ClientHello",
    "tls.mitm": "a certificate not valid for the name was presented",
    "http.blockpage": "a known blockpage was served in place of the site",
    "http.diff": "the page differs from the control's in status, size, headers and title",
    "http.reset": "the connection was reset after the HTTP request",
    "http.timeout": "the HTTP request went unanswered while the control fetched the page",
    "http.eof": "the connection was closed after the HTTP request",
    "quic.blocked": "the QUIC handshake failed while TCP/TLS to the same host worked",
    "stun.blocked": "a STUN binding request went unanswered while the control's was answered",
    "throttled": "the transfer rate was far below the control's",
    "shutdown": "no international destination was reachable",
    "nin.isolated": "international destinations unreachable while domestic ones worked",
    "protocol.whitelist": "flows not matching an allowed protocol were dropped",
    "circumvention.bootstrap": "a circumvention tunnel (Tor, Snowflake) failed to bootstrap",
    "tunnel.handshake.timeout": (
        "a circumvention tool's handshake went unanswered although its server's address "
        "was reachable (its own bytes recognised and dropped)"
    ),
    "webrtc.blocked": "the WebRTC connection to a Snowflake proxy never opened",
}


class Evidence(msgspec.Struct, omit_defaults=True):
    """Where in the measurement the proof sits, and what it says."""

    pointer: str  # JSON pointer into the measurement, e.g. /test_keys/tls_handshakes/0
    summary: str
    observed: str | None = None
    expected: str | None = None


class Verdict(msgspec.Struct, omit_defaults=True):
    measurement_uid: str | None
    report_id: str
    input: str | None
    test_name: str
    probe_cc: str
    probe_asn: str
    measurement_start_time: str
    state: State
    rule_id: str
    rules_version: str
    confidence: float
    layer: Layer | None = None
    method: str | None = None
    fingerprint_id: str | None = None
    confirmed: bool = False
    service: str | None = None
    domain: str | None = None
    blocking: str | bool | None = None  # OONI-compatible
    accessible: bool | None = None  # OONI-compatible
    evidence: list[Evidence] = msgspec.field(default_factory=list)
    reason: str = ""


NOT_A_MEASUREMENT: Final = (
    "a didban verdict, not a measurement (verdicts go to 'didban report --verdicts')"
)


def is_verdict_record(doc: dict[str, Any]) -> bool:
    """A decoded record that is one of didban's verdicts (written by ``didban analyze``),
    not a measurement: it has a rule id and rules version and no test keys (absent or
    null, as ``classify`` reads them)."""
    return (
        doc.get("test_keys") is None
        and isinstance(doc.get("rule_id"), str)
        and isinstance(doc.get("rules_version"), str)
    )
