"""The Web Connectivity rule cascade (OONI v0.0.x–v0.4.x, v0.5/LTE, and didban's probe):
``CASCADE`` is the ordered list of rule checks, each returning a ``Hit`` under ids from
``rules.WEB`` or None; the first hit wins. The checks live beside the facts they read:
``dns_rules``, ``resolver_rules``, ``http_rules``, ``throttling``, ``failure_rules``; the
guards at both ends (no host, no control, nothing fetched) are here, and so is OONI's
``blocking`` for a block over inconsistent DNS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from didban.analysis.fingerprints import Fingerprints
from didban.analysis.outcome import Hit
from didban.analysis.records import WebKeys
from didban.analysis.rules import rule
from didban.analysis.web_connectivity.dns_rules import (
    r_dns_failure,
    r_dns_fingerprint,
    r_dns_ghost,
    r_dns_inconsistent,
    r_dns_injection,
)
from didban.analysis.web_connectivity.evidence import hit
from didban.analysis.web_connectivity.facts import WebFacts
from didban.analysis.web_connectivity.failure_rules import r_layer_failure
from didban.analysis.web_connectivity.http_rules import (
    r_http_blockpage,
    r_http_captcha,
    r_http_diff,
    r_http_match,
    r_http_status,
    r_https_ok,
    r_redirect_bogon,
)
from didban.analysis.web_connectivity.resolver_rules import (
    r_dns_answers,
    r_dns_system,
)
from didban.analysis.web_connectivity.throttling import r_throttled
from didban.model.verdict import Evidence

Check = Callable[[WebFacts], Hit | None]


def r_input(f: WebFacts) -> Hit | None:
    if not f.host:
        return Hit(
            rule("wc.input.bad_url"),
            f"input {f.url!r} is not a URL with a host",
            [Evidence("/input", "the measured input", f.url)],
        )
    return None


def r_control_missing(f: WebFacts) -> Hit | None:
    if f.ctrl is not None:
        return None
    why = (
        f"the control failed ({f.keys.control_failure})"
        if f.keys.control_failure
        else "there is no control"
    )
    return hit(
        f,
        "wc.control.missing",
        f"{why}; without it blocked cannot be told from down",
        [
            Evidence(
                "/test_keys/control_failure" if f.keys.control_failure else "/test_keys/control",
                "control measurement",
                f.keys.control_failure,
            )
        ],
    )


def r_no_requests(f: WebFacts) -> Hit | None:
    return hit(f, "wc.input.no_requests", "nothing was fetched and no failure explains why", [])


CASCADE: Final[tuple[Check, ...]] = (
    r_input,
    r_dns_injection,
    r_dns_fingerprint,
    r_http_blockpage,
    r_throttled,
    r_dns_system,  # wc.dns.system.failed, wc.dns.bogon.system, wc.dns.system.wrong_address
    r_https_ok,
    r_control_missing,
    r_dns_answers,  # wc.dns.bogon.public_resolver, wc.dns.bogon_everywhere, wc.dns.ghost.blocked
    r_dns_ghost,
    r_dns_failure,
    r_http_captcha,
    r_http_status,
    r_http_match,
    r_dns_inconsistent,
    r_redirect_bogon,
    r_layer_failure,
    r_http_diff,
    r_no_requests,
)


def classify_web(keys: WebKeys | None, url: str, fps: Fingerprints) -> Hit:
    """The first rule of ``CASCADE`` that matches ``keys`` measured for ``url``."""
    if keys is None:
        return Hit(
            rule("wc.input.no_test_keys"),
            "the measurement has no test_keys object",
            [Evidence("/test_keys", "missing or not an object")],
        )
    facts = WebFacts(keys, url, fps)
    for check in CASCADE:
        found = check(facts)
        if found is not None:
            if (facts.consistent is False or facts.rescued) and found.rule.state == "blocked":
                # OONI overrides the reason of any block with "dns" when the answers are
                # inconsistent (ooni-methodology.md §3.8 row 8, §3.9), by its classic
                # consistency, which knows no TLS rescue (§3.6); the layer stays ours
                found.blocking = "dns"
            return found
    raise AssertionError("r_no_requests always matches")  # pragma: no cover
