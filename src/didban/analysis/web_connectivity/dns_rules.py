"""The DNS rules of Web Connectivity: injected replies (two answers to one query),
censor fingerprints, a name that resolves only at the probe, DNS failures, and answers
inconsistent with the control's. (The rules that compare the probe's resolvers with one
another are ``resolver_rules``.)"""

from __future__ import annotations

from didban.analysis import netaddr
from didban.analysis.outcome import Hit
from didban.analysis.records import Query
from didban.analysis.web_connectivity.evidence import ctrl_addrs_text, hit
from didban.analysis.web_connectivity.facts import WebFacts, ctrl_http_ok
from didban.analysis.web_connectivity.steps import (
    DNS_TIMEOUT,
    DUP,
    NO_ANSWER,
    NXDOMAIN,
    Q,
    Stage,
    answer_ips,
    norm_host,
)
from didban.model.verdict import Evidence


def _dup_pairs(f: WebFacts) -> list[tuple[int, Query, int, Query]]:
    pairs: list[tuple[int, Query, int, Query]] = []
    if not f.dups:
        return pairs
    for j, d in enumerate(f.dups):
        for i, q in enumerate(f.queries):
            if (
                norm_host(q.hostname) == norm_host(d.hostname)
                and q.query_type == d.query_type
                and (q.resolver_address or "") == (d.resolver_address or "")
                and (q.engine or "") != "doh"
            ):
                pairs.append((i, q, j, d))
                break
    return pairs


def r_dns_injection(f: WebFacts) -> Hit | None:
    for i, q, j, d in _dup_pairs(f):
        first, later = answer_ips(q), answer_ips(d)
        ev = [
            Evidence(
                f"{Q}{i}", "first reply to the query", ", ".join(first) or (q.failure or "empty")
            ),
            Evidence(
                f"{DUP}{j}",
                "a second reply to the same query",
                ", ".join(later) or (d.failure or "empty"),
            ),
        ]
        for a in q.answers or ():
            for v in (a.ipv4, a.ipv6, a.hostname):
                fp = f.fps.blocking.match_dns(v)
                if fp is not None:
                    return hit(
                        f,
                        "wc.dns.injection.fingerprint",
                        f"two replies to one {q.query_type} query for {q.hostname}; the first, "
                        f"{v}, is a known censor address ({fp.id})",
                        ev,
                        fp,
                    )
        bogons = [ip for ip in first if netaddr.is_bogon(ip) and ip not in f.ctrl_ips]
        if bogons:
            return hit(
                f,
                "wc.dns.injection.bogon",
                f"two replies to one {q.query_type} query for {q.hostname}; the first is the "
                f"bogon {bogons[0]}",
                ev,
            )
        if first and later and set(first) != set(later):
            if f.ctrl_dns_ok and (set(first) & f.ctrl_ips or not set(later) & f.ctrl_ips):
                continue
            conf = 0.85 if f.ctrl_dns_ok else 0.7
            return hit(
                f,
                "wc.dns.injection.forged",
                f"two replies to one {q.query_type} query for {q.hostname} with different "
                f"addresses ({', '.join(first)} then {', '.join(later)})",
                ev,
                confidence=conf,
            )
    return None


def r_dns_fingerprint(f: WebFacts) -> Hit | None:
    # a public resolver's forged answer names injection; otherwise the system resolver's
    kind = "public" if "public" in f.fp_hits else "system"
    if kind not in f.fp_hits:
        return None
    i, value, fp = f.fp_hits[kind]
    q = f.queries[i]
    ev = [
        Evidence(
            f"{Q}{i}",
            f"{q.engine or 'system'} resolver answer for {q.hostname}",
            value,
            ctrl_addrs_text(f),
        )
    ]
    if kind == "public":
        return hit(
            f,
            "wc.dns.fingerprint.public_resolver",
            f"the public resolver {q.resolver_address} answered {value} for {q.hostname}, a known "
            f"censor address ({fp.id}); a public resolver does not answer that, so the reply "
            "was forged on path",
            ev,
            fp,
        )
    return hit(
        f,
        "wc.dns.fingerprint",
        f"the system resolver answered {value} for {q.hostname}, a known censor address ({fp.id})",
        ev,
        fp,
    )


def r_dns_ghost(f: WebFacts) -> Hit | None:
    if f.host_is_ip or not f.dns_ips or not f.ctrl_dns_failed:
        return None
    if ctrl_http_ok(f.ctrl.http_request if f.ctrl else None):
        return None
    return hit(
        f,
        "wc.dns.ghost",
        f"the control found no address for {f.host} ({f.ctrl_dns_failure or 'no addresses'}) "
        f"and could not fetch it; the probe's resolver answered {', '.join(f.dns_ips)} anyway "
        "(resolvers that rewrite NXDOMAIN do this; ooni/probe#2308)",
        [
            Evidence(
                "/test_keys/control/dns",
                "control DNS",
                f.ctrl_dns_failure or "no addresses",
                ", ".join(f.dns_ips),
            )
        ],
    )


def r_dns_failure(f: WebFacts) -> Hit | None:
    if f.sys_failure is None or f.host_is_ip:
        return None
    failure, ptr = f.sys_failure
    ev = [Evidence(ptr, f"system resolver failed for {f.host}", failure, ctrl_addrs_text(f))]
    if f.ctrl_dns_failed:
        return hit(
            f,
            "wc.dns.failure.ctrl_failing",
            f"DNS failed for the probe ({failure}) and the control ({ctrl_addrs_text(f)}): "
            "the name does not resolve anywhere",
            ev,
        )
    if failure in NXDOMAIN:
        return hit(
            f,
            "wc.dns.nxdomain",
            f"NXDOMAIN for {f.host} while the control resolved {ctrl_addrs_text(f)}",
            ev,
        )
    if failure in NO_ANSWER:
        return hit(
            f,
            "wc.dns.no_answer",
            f"no address for {f.host} ({failure}) while the control resolved {ctrl_addrs_text(f)}",
            ev,
        )
    if failure in DNS_TIMEOUT:
        return hit(
            f, "wc.dns.timeout", f"DNS for {f.host} timed out while the control resolved it", ev
        )
    return hit(
        f,
        "wc.dns.servfail",
        f"DNS for {f.host} failed ({failure}) while the control resolved it",
        ev,
    )


def r_dns_inconsistent(f: WebFacts) -> Hit | None:
    if f.consistent is not False:
        return None
    stage = f.stage()
    diff = f.final_diff()
    if stage is None and (diff is None or not diff.different):
        return None
    if stage is not None and stage.hop:
        return None  # a later hop failed: the first hop, over these answers, worked
    if stage is not None and _ctrl_addrs_fail_too(f, stage):
        return None
    what = f"the fetch failed at {stage.layer} ({stage.failure})" if stage else "the page differs"
    qi = next(iter(f.dns_ips.values()))
    ev = [
        Evidence(
            f"{Q}{qi}",
            f"answer for {f.host} shares no address, ASN or valid TLS with the control",
            ", ".join(f.dns_ips),
            ctrl_addrs_text(f),
        )
    ]
    if stage:
        ev.append(Evidence(stage.pointer, f"then {stage.layer} failed", stage.failure))
    return hit(
        f,
        "wc.dns.inconsistent",
        f"the probe got {', '.join(f.dns_ips)} for {f.host}, unrelated to the control's "
        f"{ctrl_addrs_text(f)}, and {what}",
        ev,
    )


def _ctrl_addrs_fail_too(f: WebFacts, stage: Stage) -> bool:
    """The probe also tried the control's addresses and failed there the same way."""
    results: list[bool] = []
    if stage.layer == "tcp":
        for c in f.tcp:
            if c.ip in f.ctrl_ips and c.port == f.port:
                results.append(bool(c.status and c.status.success))
    elif stage.layer == "tls":
        for h in f.tls:
            if netaddr.split_endpoint(h.address)[0] in f.ctrl_ips:
                results.append(h.failure is None)
    return bool(results) and not any(results)
