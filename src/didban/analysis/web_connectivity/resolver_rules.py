"""The rules that read every resolver of the probe and say which one failed or lied.

OONI's current probe (Web Connectivity LTE) asks the system resolver (the ISP's), one
public resolver over UDP and sometimes DoH, then fetches the page over any of their
addresses. A page that arrives over another resolver's addresses does not make the site
reachable for the people of that network, whose devices ask the ISP's resolver: that
another resolver works is recorded as evidence ("reachable through another resolver"), a
way around the block. So these rules come before ``wc.https.ok``:

* ``wc.dns.system.failed`` — the system resolver failed (NXDOMAIN, no answer, timeout, …)
  for a name the control and another resolver resolved;
* ``wc.dns.bogon.system`` / ``wc.dns.bogon.public_resolver`` (the bogon rules, moved here)
  — it answered a bogon (loopback, private) the control did not return; named injection
  when the public resolver got the same forged answer;
* ``wc.dns.system.wrong_address`` — it answered addresses that are not the site's (no
  shared address or ASN with the control, no TLS handshake valid for the name, not the
  control's page over cleartext — the transparent-proxy case stays valid) and connecting
  to them failed, while other addresses for the name worked.

After the control check: ``wc.dns.bogon_everywhere`` (the name points at a bogon for the
control too, where nothing answers: a broken site, ``down``) and ``wc.dns.ghost.blocked``
(ghost DNS: the control says the name does not exist, the probe's resolver answered an
address where connecting fails — a censor's sinkhole, ``blocked``; the old
``wc.dns.ghost`` keeps the rest).
"""

from __future__ import annotations

from didban.analysis import netaddr
from didban.analysis.outcome import Hit
from didban.analysis.records import Query
from didban.analysis.web_connectivity.evidence import ctrl_addrs_text, hit
from didban.analysis.web_connectivity.facts import WebFacts, ctrl_http_ok
from didban.analysis.web_connectivity.steps import Q, dns_method, engine_kind
from didban.model.verdict import Evidence


def resolver_text(q: Query) -> str:
    """Who answered ``q``: the system (ISP) resolver, ``UDP 8.8.8.8:53``, ``DoH https://…``."""
    kind = engine_kind(q.engine)
    if kind == "system":
        return "the system (ISP) resolver"
    name = "DoH" if kind == "doh" else (q.engine or "udp").upper()
    return f"{name} {q.resolver_address or '?'}"


def other_resolvers(f: WebFacts) -> list[Evidence]:
    """One entry per other resolver (public, DoH) that answered for the host."""
    out: list[Evidence] = []
    for ips in (f.pub_ips, f.doh_ips):
        if not ips:
            continue
        q = f.queries[next(iter(ips.values()))]
        like = "like the control" if not f.ctrl_ips.isdisjoint(ips) else "not like the control"
        out.append(
            Evidence(
                f"{Q}{next(iter(ips.values()))}",
                f"reachable through another resolver: {resolver_text(q)} ({like})",
                ", ".join(ips),
                ctrl_addrs_text(f),
            )
        )
    return out


def _others_text(f: WebFacts) -> str:
    names = [
        resolver_text(f.queries[next(iter(ips.values()))]) for ips in (f.pub_ips, f.doh_ips) if ips
    ]
    return " and ".join(names)


def _ctrl_dns(f: WebFacts) -> Evidence:
    return Evidence("/test_keys/control/dns", "control DNS", ctrl_addrs_text(f))


def r_dns_system(f: WebFacts) -> Hit | None:
    """``wc.dns.system.failed``, then the system resolver's bogon, then
    ``wc.dns.system.wrong_address`` — one cascade step: most measurements have none of a
    failure, an answer that is not the control's, or inconsistent answers, and leave at
    the first test."""
    if f.sys_failure is None and f.consistent is not False and f.ctrl_ips.issuperset(f.sys_ips):
        return None
    return r_dns_system_failed(f) or r_dns_bogon_system(f) or r_dns_wrong_address(f)


def r_dns_system_failed(f: WebFacts) -> Hit | None:
    if f.sys_failure is None or f.host_is_ip or not f.ctrl_dns_ok:
        return None
    if not f.pub_ips and not f.doh_ips:
        return None
    failure, ptr = f.sys_failure
    ev = [
        Evidence(ptr, f"the system (ISP) resolver failed for {f.host}", failure),
        *other_resolvers(f),
        _ctrl_dns(f),
    ]
    return hit(
        f,
        "wc.dns.system.failed",
        f"the system (ISP) resolver answered {failure} for {f.host} while the control "
        f"resolved {ctrl_addrs_text(f)} and so did {_others_text(f)}: users of this "
        "network's resolver cannot reach the site (another resolver is a way around the "
        "block, not access)",
        ev,
        method=dns_method(failure),
    )


def _bogon_answer(f: WebFacts, ips: dict[str, int]) -> tuple[str, int] | None:
    """The first bogon of ``ips`` the control did not return and no TLS handshake proved
    genuine for the host (a split-horizon address that verifies is the site's)."""
    for ip, i in ips.items():
        if ip not in f.ctrl_ips and netaddr.is_bogon(ip) and ip not in f.tls_valid():
            return ip, i
    return None


def _bogon_hit(f: WebFacts, rid: str, found: tuple[str, int], also: str = "") -> Hit:
    ip, i = found
    q = f.queries[i]
    return hit(
        f,
        rid,
        f"{resolver_text(q)} answered the bogon {ip} for {f.host}{also}; the control resolved "
        f"{ctrl_addrs_text(f)}",
        [Evidence(f"{Q}{i}", "bogon answer", ip, ctrl_addrs_text(f)), *other_resolvers(f)],
    )


def _bogon_ready(f: WebFacts) -> bool:
    return f.ctrl_dns_ok and not f.host_is_ip and not any(map(netaddr.is_bogon, f.ctrl_ips))


def r_dns_bogon_system(f: WebFacts) -> Hit | None:
    """The system resolver's bogon (before ``wc.https.ok``); injection when the public
    resolver got one too (a public resolver does not answer that: forged on path)."""
    if not f.sys_ips or not f.ctrl_dns_ok:
        return None
    found = _bogon_answer(f, f.sys_ips)  # None at once when the answers are the control's
    if found is None or not _bogon_ready(f):
        return None
    public = _bogon_answer(f, f.pub_ips) if f.pub_ips else None
    if public is not None:
        return _bogon_hit(f, "wc.dns.bogon.public_resolver", public, ", as did the system resolver")
    return _bogon_hit(f, "wc.dns.bogon.system", found)


def r_dns_bogon_public(f: WebFacts) -> Hit | None:
    """A public resolver's bogon while the system resolver's answer was fine (after
    ``wc.https.ok``: the site may still be reached through the ISP's resolver)."""
    if not f.pub_ips or not f.ctrl_dns_ok:
        return None
    found = _bogon_answer(f, f.pub_ips)
    if found is None or not _bogon_ready(f):
        return None
    return _bogon_hit(f, "wc.dns.bogon.public_resolver", found)


def _liar_method(f: WebFacts, wrong: set[str]) -> str:
    """``dns.injection`` when the public resolver got the same wrong answer (forged on
    path: a public resolver would not give it), else ``dns.hijack`` (the ISP's resolver)."""
    return "dns.injection" if not wrong.isdisjoint(f.pub_ips) else "dns.hijack"


def r_dns_wrong_address(f: WebFacts) -> Hit | None:
    if f.consistent is not False or not f.sys_ips:
        return None
    wrong = set(f.sys_ips)
    conns = f.conns()
    witness: tuple[str, str, str] | None = None  # (ip, pointer, failure)
    for ip in f.sys_ips:
        c = conns.get(ip)
        if c is None:
            continue
        failed = c.failed()
        if failed is None:
            return None  # an address that worked at every step it was tried
        if witness is None:
            witness = (ip, *failed)
    if witness is None:
        return None
    worked = next(
        (
            ip
            for ip, c in conns.items()
            if ip not in wrong and c.tcp_ok and (c.tls_ok or not f.https)
        ),
        None,
    )
    final_ip = netaddr.split_endpoint(f.final.address)[0] if f.final is not None else ""
    if f.final_ok and final_ip in wrong:
        diff = f.final_diff()
        if diff is not None and not diff.different:
            return None  # a transparent proxy that served the control's page
    if worked is None and not (f.final_ok and final_ip and final_ip not in wrong):
        return None
    ip, pointer, failure = witness
    qi = f.sys_ips[ip]
    ev = [
        Evidence(
            f"{Q}{qi}",
            f"the system (ISP) resolver's answer for {f.host}: not the site's address "
            "(no shared address or ASN with the control, no valid TLS)",
            ", ".join(f.sys_ips),
            ctrl_addrs_text(f),
        ),
        Evidence(pointer, f"connecting to {ip} failed", failure),
        *other_resolvers(f),
    ]
    where = worked or final_ip
    return hit(
        f,
        "wc.dns.system.wrong_address",
        f"the system (ISP) resolver answered {', '.join(f.sys_ips)} for {f.host}, not the "
        f"site's address (the control resolved {ctrl_addrs_text(f)}); connecting there "
        f"failed ({failure}) while {where} worked",
        ev,
        method=_liar_method(f, wrong),
    )


def r_dns_answers(f: WebFacts) -> Hit | None:
    """After the control check, in order: a public resolver's bogon, a bogon for everyone
    (``wc.dns.bogon_everywhere``), ghost DNS (``wc.dns.ghost.blocked``) — one cascade
    step; the first two need the control's addresses, the last its failure."""
    if f.ctrl_dns_failed:
        return r_dns_ghost_blocked(f)
    if not f.ctrl_dns_ok:
        return None
    if not f.ctrl_ips.issuperset(f.pub_ips):
        found = r_dns_bogon_public(f)
        if found is not None:
            return found
    return None if f.final_ok else r_dns_bogon_everywhere(f)


def r_dns_bogon_everywhere(f: WebFacts) -> Hit | None:
    if f.host_is_ip or not f.ctrl_dns_ok or not f.dns_ips or f.final_ok or f.cut:
        return None
    if not all(map(netaddr.is_bogon, f.ctrl_ips)):
        return None
    if not all(map(netaddr.is_bogon, f.dns_ips)):
        return None
    conns = f.conns()
    if any(conns[ip].tcp_ok for ip in f.dns_ips if ip in conns):
        return None  # something answers there (a site on a private network): not this rule
    qi = next(iter(f.dns_ips.values()))
    return hit(
        f,
        "wc.dns.bogon_everywhere",
        f"{f.host} points at {', '.join(f.dns_ips)} for the probe and at "
        f"{ctrl_addrs_text(f)} for the control: a loopback or private address everywhere is "
        "the site's own misconfiguration, not a block",
        [Evidence(f"{Q}{qi}", "probe's answer", ", ".join(f.dns_ips), ctrl_addrs_text(f))],
    )


def r_dns_ghost_blocked(f: WebFacts) -> Hit | None:
    if f.host_is_ip or not f.dns_ips or not f.ctrl_dns_failed:
        return None
    if ctrl_http_ok(f.ctrl.http_request if f.ctrl else None):
        return None
    conns = f.conns()
    witness = next((w for ip in f.dns_ips if ip in conns and (w := conns[ip].failed())), None)
    sinkhole = all(map(netaddr.is_bogon, f.dns_ips))
    if witness is None and not sinkhole:
        return None
    qi = next(iter(f.dns_ips.values()))
    answered = resolver_text(f.queries[qi])
    ev = [
        Evidence(
            f"{Q}{qi}",
            f"{answered} answered for a name the control says does not exist",
            ", ".join(f.dns_ips),
            f.ctrl_dns_failure or "no addresses",
        ),
        Evidence("/test_keys/control/dns", "control DNS", f.ctrl_dns_failure or "no addresses"),
    ]
    if f.doh_failure is not None:
        ev.append(Evidence(f.doh_failure[1], "DoH found no address either", f.doh_failure[0]))
    what = "a bogon"
    if witness is not None:
        ev.insert(1, Evidence(witness[0], "connecting to that answer failed", witness[1]))
        what = f"an address where connecting fails ({witness[1]})"
    method = "dns.injection" if (f.pub_ips and f.sys_ips) or not f.sys_ips else "dns.hijack"
    return hit(
        f,
        "wc.dns.ghost.blocked",
        f"the control found no address for {f.host} "
        f"({f.ctrl_dns_failure or 'no addresses'}), yet {answered} answered "
        f"{', '.join(f.dns_ips)}, {what}: a sinkhole for the name (ghost DNS)",
        ev,
        method=method,
    )
