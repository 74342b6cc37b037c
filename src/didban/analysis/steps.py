"""The failing step of one flow of an app measurement, named as precisely as a web verdict
names it: a lookup that failed or answered a censor's address (``dns.*``, ``dns.hijack``),
connects that all failed (``tcp.*``), a handshake that failed (``tls.*``), a request that
failed (``http.*``).

didban's probe tags every record of an app endpoint's flows ``x_didban_endpoint=<id>`` (the
catalog's id, ``data/apps.yaml``) and the HTTP/3 test's TCP baseline
``x_didban_baseline``; the functions here read a measurement's plain-dict test keys by
those tags. OONI's measurements carry no such tags: nothing is found in them, and their
verdicts keep the coarse ``app`` layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from didban.analysis.fingerprints import Fingerprint, Fingerprints
from didban.analysis.outcome import Hit
from didban.analysis.rules import Rule
from didban.model.verdict import Evidence, Layer

TAG: Final = "x_didban_endpoint="
TAG_BASELINE: Final = "x_didban_baseline"

_DNS_METHOD: Final = {
    "dns_nxdomain_error": "dns.nxdomain",
    "android_dns_cache_no_data": "dns.nxdomain",
    "generic_timeout_error": "dns.timeout",
}
TCP_METHOD: Final = {
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


def tagged(items: Any, tag: str) -> Iterator[tuple[int, dict[str, Any]]]:
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
    found = tagged(queries, tag) if tag else enumerate(queries or [])
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
    connects = list(tagged(keys.get("tcp_connect"), tag))
    if connects and all(not (c.get("status") or {}).get("success") for _, c in connects):
        i, c = connects[-1]
        failure = (c.get("status") or {}).get("failure")
        method = TCP_METHOD.get(str(failure))
        return Step("tcp", method, failure, f"/test_keys/tcp_connect/{i}")
    for i, h in tagged(keys.get("tls_handshakes"), tag):
        failure = h.get("failure")
        if isinstance(failure, str):
            return Step("tls", _TLS_METHOD.get(failure), failure, f"/test_keys/tls_handshakes/{i}")
    for i, r in tagged(keys.get("requests"), tag):
        failure = r.get("failure")
        if isinstance(failure, str):
            return Step("http", _HTTP_METHOD.get(failure), failure, f"/test_keys/requests/{i}")
    return None


def blocked(rule: Rule, reason: str, evidence: list[Evidence], step: Step | None) -> Hit:
    """A blocking hit whose layer and method come from the failing step, when known."""
    if step is None or step.method is None:
        return Hit(rule, reason, evidence)
    where = f"{step.layer} ({step.failure or 'a censor address'})"
    evidence = [ev(step.pointer, f"the failing step: {where}", step.failure), *evidence]
    return Hit(
        rule,
        f"{reason}: {step.method}",
        evidence,
        step.fingerprint,
        method=step.method,
        layer=step.layer,
    )


def endpoints(keys: dict[str, Any], prefix: str = "") -> list[str]:
    """The endpoint ids the measurement's records are tagged with, in record order."""
    seen: dict[str, None] = {}
    for field in ("queries", "tcp_connect", "tls_handshakes", "requests"):
        for item in keys.get(field) or []:
            for tag in (item.get("tags") or []) if isinstance(item, dict) else []:
                if isinstance(tag, str) and tag.startswith(TAG + prefix):
                    seen[tag[len(TAG) :]] = None
    return list(seen)


def first(keys: dict[str, Any], ids: list[str], fps: Fingerprints) -> Step | None:
    """The failing step of the first of ``ids`` that failed."""
    for e in ids:
        step = flow_step(keys, e, fps)
        if step is not None:
            return step
    return None


def ev(pointer: str, summary: str, observed: Any = None) -> Evidence:
    return Evidence(
        pointer=pointer, summary=summary, observed=None if observed is None else str(observed)
    )
