"""What a rule returns when it matches (``Hit``), and how a hit becomes a ``Verdict``.

Also owns the mapping from a verdict to OONI's ``blocking``/``accessible`` pair
(ts-017 "Semantics": ``"dns"``, ``"tcp_ip"``, ``"http-failure"``, ``"http-diff"``, ``false``,
``null``), so OONI tooling reading didban's verdicts finds what it expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from didban.analysis import urls
from didban.analysis.fingerprints import Fingerprint
from didban.analysis.records import Meta
from didban.analysis.rules import RULES_VERSION, Rule
from didban.model.verdict import METHODS, Evidence, Layer, Verdict


@dataclass(slots=True)
class Hit:
    """A rule that matched: its reason, evidence and, when it has one, the fingerprint."""

    rule: Rule
    reason: str
    evidence: list[Evidence] = field(default_factory=list)
    fingerprint: Fingerprint | None = None
    confidence: float | None = None
    # for rules whose method depends on the failing step (e.g. dnscheck.transport_blocked)
    method: str | None = None
    layer: Layer | None = None
    # OONI's ``blocking`` string when it is not the layer's (a later redirect hop's TCP
    # failure is OONI's "http-failure"; inconsistent DNS makes any block OONI's "dns")
    blocking: str | None = None
    # what is blocked when it is not the measured input: the resolver and transport of a
    # dnscheck lookup (``dot://198.51.100.8:853``), whatever name was looked up through it
    service: str | None = None

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in METHODS:
            raise ValueError(f"unknown method {self.method}")


_HTTP_DIFF_METHODS = frozenset({"http.diff", "http.blockpage"})


def ooni_blocking(hit: Hit, web: bool) -> tuple[str | bool | None, bool | None]:
    """OONI's (blocking, accessible) for a hit."""
    state = hit.rule.state
    if state == "ok":
        return False, True
    if state == "down":
        return False, False
    if state == "inconclusive":
        return None, None
    if not web:
        return True, False
    if hit.blocking is not None:
        return hit.blocking, False
    layer = hit.layer or hit.rule.layer
    if layer == "dns":
        return "dns", False
    if layer in ("tcp", "ip"):
        return "tcp_ip", False
    if (hit.method or hit.rule.method) in _HTTP_DIFF_METHODS:
        return "http-diff", False
    return "http-failure", False


def _text(value: Any) -> str:
    """An envelope field as the verdict spells it: text, '' when absent."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def build(
    hit: Hit,
    meta: Meta,
    *,
    web: bool,
    service: str | None = None,
    domain: str | None = None,
) -> Verdict:
    """The verdict for ``hit`` on the measurement whose envelope is ``meta``."""
    blocking, accessible = ooni_blocking(hit, web)
    rule = hit.rule
    fp = hit.fingerprint
    url = None if meta.input is None else _text(meta.input)
    service = hit.service or service
    if service is None and url:
        service = urls.info(url).service
    return Verdict(
        measurement_uid=None if meta.measurement_uid is None else _text(meta.measurement_uid),
        report_id=_text(meta.report_id),
        input=url,
        test_name=_text(meta.test_name),
        probe_cc=_text(meta.probe_cc),
        probe_asn=_text(meta.probe_asn),
        measurement_start_time=_text(meta.measurement_start_time),
        state=rule.state,
        rule_id=rule.id,
        rules_version=RULES_VERSION,
        confidence=rule.confidence if hit.confidence is None else hit.confidence,
        layer=hit.layer or rule.layer,
        method=hit.method or rule.method,
        fingerprint_id=fp.id if fp else None,
        confirmed=fp is not None and rule.state == "blocked",
        service=service,
        domain=domain,
        blocking=blocking,
        accessible=accessible,
        evidence=hit.evidence,
        reason=hit.reason,
    )
