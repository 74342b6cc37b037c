"""Per-URL outcome strings for the end-of-run table: what happened at each step, no verdict.

Reads the web_connectivity test keys as plain dicts (the JSON that was written) and says,
per step, ``ok``, the failure string, or ``-`` when the step did not run. Whether a failure
means censorship is for ``didban analyze`` to decide.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    url: str
    dns: str
    tcp: str
    tls: str
    http: str
    failed_steps: int
    quic: str = "-"  # QUIC handshakes, or a STUN exchange: the UDP step
    control_failure: str | None = None  # the control (test helper) query's failure
    test: str = "web_connectivity"


def _endpoint_step(item: dict[str, Any]) -> bool:
    """A flow of the endpoint step (every resolved address on the URL's port), not a
    connection made for a redirect hop or the :443 address check of an http URL."""
    tags = item.get("tags") or []
    return "x_didban_ip_check" not in tags and "x_didban_redirect" not in tags


def _mixed(failures: list[str | None]) -> str:
    if not failures:
        return "-"
    bad = [f for f in failures if f]
    if not bad:
        return "ok" if len(failures) == 1 else f"ok ({len(failures)})"
    if len(failures) == 1:
        return bad[0]
    # every distinct failure, the most frequent first: two addresses failing differently
    # (d0::11 address_not_available, 10.10.34.36 connection_refused) must not read as one
    kinds = Counter(bad).most_common()
    what = (
        ", ".join(f if n == 1 else f"{f} ×{n}" for f, n in kinds) if len(kinds) > 1 else kinds[0][0]
    )
    return f"{what} ({len(bad)}/{len(failures)})"


_ENGINES = ("getaddrinfo", "udp", "doh")


def _lookups(tk: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The queries of each resolver that was asked (A and AAAA are one lookup)."""
    queries = tk.get("queries") or []
    by_engine = {e: [q for q in queries if q.get("engine") == e] for e in _ENGINES}
    return {e: qs for e, qs in by_engine.items() if qs}


def _failed_lookups(tk: dict[str, Any]) -> int:
    """Lookups that got no answer at all (every query failed; an AAAA query with no
    answer beside an answered A is not a failed lookup); the system lookup's failure
    alone when no query was recorded."""
    lookups = _lookups(tk)
    if not lookups:
        return 1 if tk.get("dns_experiment_failure") else 0
    return sum(1 for qs in lookups.values() if all(q.get("failure") for q in qs))


def _dns(tk: dict[str, Any]) -> str:
    parts: list[str] = []
    for engine, qs in _lookups(tk).items():
        fails = [q.get("failure") for q in qs]
        if all(fails):
            parts.append(f"{engine}:{fails[0]}")
        else:
            addrs = {
                a.get("ipv4") or a.get("ipv6")
                for q in qs
                for a in (q.get("answers") or [])
                if a.get("ipv4") or a.get("ipv6")
            }
            parts.append(f"{engine}:{len(addrs)}")
    dups = tk.get("x_dns_duplicate_responses") or []
    if dups:
        parts.append(f"dup:{len(dups)}")
    if not parts:
        return tk.get("dns_experiment_failure") or "-"
    return " ".join(parts)


def outcome(m: dict[str, Any]) -> Outcome:
    """Outcome strings of one decoded measurement (web_connectivity or anything else)."""
    tk = m.get("test_keys") or {}
    test = str(m.get("test_name") or "web_connectivity")
    url = str(m.get("input") or test)
    dns = _dns(tk)
    tcp = _mixed(
        [
            (c.get("status") or {}).get("failure")
            for c in tk.get("tcp_connect") or []
            if _endpoint_step(c)
        ]
    )
    handshakes = tk.get("tls_handshakes") or []
    tls_hs = [h for h in handshakes if _endpoint_step(h) and h.get("network") != "udp"]
    tls = _mixed([h.get("failure") for h in tls_hs])
    if tls == "-":  # an http URL: the :443 check of its addresses, if any
        checks = [
            h.get("failure")
            for h in tk.get("tls_handshakes") or []
            if "x_didban_ip_check" in (h.get("tags") or [])
        ]
        if checks:
            tls = f":443 {_mixed(checks)}"
    udp = [q.get("failure") for q in tk.get("x_didban_quic") or []]
    udp += [h.get("failure") for h in handshakes if h.get("network") == "udp"]
    if test == "stunreachability":
        udp.append(tk.get("failure"))
    quic = _mixed(udp)
    reqs = [r for r in tk.get("requests") or [] if r.get("network") != "udp"]
    if reqs and test != "web_connectivity":
        http = _mixed([r.get("failure") for r in reqs])
    elif reqs:
        last = reqs[0]
        if last.get("failure"):
            http = str(last["failure"])
        else:
            code = (last.get("response") or {}).get("code")
            http = f"{code}" + (f" after {len(reqs) - 1} redirects" if len(reqs) > 1 else "")
    else:
        http = tk.get("http_experiment_failure") or "-"
    failed = _failed_lookups(tk)
    failed += sum(1 for c in tk.get("tcp_connect") or [] if (c.get("status") or {}).get("failure"))
    failed += sum(1 for h in handshakes if h.get("failure"))
    failed += 1 if tk.get("http_experiment_failure") else 0
    failed += 1 if tk.get("control_failure") else 0
    if test != "web_connectivity":
        failed += sum(1 for r in reqs if r.get("failure"))
        failed += 1 if test == "stunreachability" and tk.get("failure") else 0
    ctrl = tk.get("control_failure")
    return Outcome(url, dns, tcp, tls, http, failed, quic, str(ctrl) if ctrl else None, test)


def control_warning(outcomes: list[Outcome]) -> str | None:
    """A sentence when the control failed for some measurements: without it their verdicts
    can only be inconclusive, which the per-step table does not show."""
    failed = [o.control_failure for o in outcomes if o.control_failure]
    if not failed:
        return None
    common = Counter(failed).most_common(1)[0][0]  # ties: the first seen
    return (
        f"the control (test helper) failed for {len(failed)} of {len(outcomes)} measurements "
        f"({common}): without it blocked cannot be told from down, so didban analyze will "
        "call them inconclusive"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def run_line(written: int, out: Path, elapsed: float, failed_steps: int, interrupted: bool) -> str:
    """The run's last line: what was written where, how fast, how many steps failed."""
    rate = written / elapsed if elapsed > 0 else 0.0
    return (
        f"{_count(written, 'measurement')} written to {out} in {elapsed:.1f} s "
        f"({rate:.1f} URL/s), {_count(failed_steps, 'failed step')}"
        + (" — interrupted" if interrupted else "")
    )
