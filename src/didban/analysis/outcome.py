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
from didban.analysis.rules import RULES_VERSION, Rule
from didban.analysis.urls import URLInfo
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
    layer = hit.layer or hit.rule.layer
    if layer == "dns":
        return "dns", False
    if layer in ("tcp", "ip"):
        return "tcp_ip", False
    if (hit.method or hit.rule.method) in _HTTP_DIFF_METHODS:
        return "http-diff", False
    return "http-failure", False


def _s(value: Any) -> str:
    if type(value) is str:
        return value
    return "" if value is None else str(value)


def build(
    hit: Hit,
    meta: Any,
    *,
    web: bool,
    service: str | None = None,
    domain: str | None = None,
    info: URLInfo | None = None,
) -> Verdict:
    """The verdict for ``hit`` on the measurement whose envelope is ``meta`` (``info``:
    ``urls.info`` of its input, when the caller has it)."""
    blocking, accessible = ooni_blocking(hit, web)
    rule = hit.rule
    fp = hit.fingerprint
    url = meta.input
    if url is not None and type(url) is not str:
        url = str(url)
    if service is None and url:
        service = (info or urls.info(url)).service
    uid = meta.measurement_uid
    report_id = meta.report_id
    test_name = meta.test_name
    cc = meta.probe_cc
    asn = meta.probe_asn
    start = meta.measurement_start_time
    return Verdict(
        measurement_uid=uid if uid is None or type(uid) is str else str(uid),
        report_id=report_id if type(report_id) is str else _s(report_id),
        input=url,
        test_name=test_name if type(test_name) is str else _s(test_name),
        probe_cc=cc if type(cc) is str else _s(cc),
        probe_asn=asn if type(asn) is str else _s(asn),
        measurement_start_time=start if type(start) is str else _s(start),
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
