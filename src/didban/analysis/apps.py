"""Rules for OONI's app tests (whatsapp, telegram, signal, facebook_messenger) and dnscheck
(the circumvention tests' are in ``analysis/tunnels.py``).

These tests carry their own summary keys (ooni-methodology.md §5); the rules read those
keys, check that they are present (missing keys → ``app.missing_keys``, never ``ok``), and
point the evidence at them. dnscheck has no control: only a fingerprint can make it
``blocked``.
"""

from __future__ import annotations

from typing import Any

from didban.analysis import netaddr
from didban.analysis.fingerprints import Fingerprints
from didban.analysis.outcome import Hit
from didban.analysis.records import DNSCheckKeys, DNSCheckLookup, Query
from didban.analysis.rules import rule
from didban.analysis.steps import TCP_METHOD, TLS_METHOD
from didban.model.verdict import Evidence, Layer

# Failures of WhatsApp Web that are the server's answer, not the network's (ooni/ooni.org#1317).
_SERVER_SIDE = frozenset({"http_unexpected_status_code"})
FACEBOOK_ASN = 32934


def _ev(pointer: str, summary: str, observed: Any = None) -> Evidence:
    return Evidence(
        pointer=pointer, summary=summary, observed=None if observed is None else str(observed)
    )


def _missing(keys: dict[str, Any], names: tuple[str, ...]) -> Hit | None:
    absent = [n for n in names if n not in keys]
    if absent:
        return Hit(
            rule("app.missing_keys"),
            f"test keys {', '.join(absent)} are missing",
            [_ev("/test_keys", "missing keys", ", ".join(absent))],
        )
    return None


def whatsapp(keys: dict[str, Any]) -> Hit:
    names = ("whatsapp_endpoints_status", "registration_server_status", "whatsapp_web_status")
    miss = _missing(keys, names)
    if miss:
        return miss
    ev = [_ev(f"/test_keys/{n}", n, keys.get(n)) for n in names]
    blocked = []
    if keys.get("whatsapp_endpoints_status") == "blocked":
        blocked.append("no WhatsApp endpoint was reachable")
    if keys.get("registration_server_status") == "blocked":
        blocked.append(
            f"the registration server failed ({keys.get('registration_server_failure')})"
        )
    web_failure = keys.get("whatsapp_web_failure")
    if keys.get("whatsapp_web_status") == "blocked" and web_failure not in _SERVER_SIDE:
        blocked.append(f"WhatsApp Web failed ({web_failure})")
    if blocked:
        return Hit(rule("app.whatsapp.blocked"), "; ".join(blocked), ev)
    reason = "WhatsApp endpoints, registration server and web were reachable"
    if web_failure in _SERVER_SIDE:
        reason += f" (WhatsApp Web answered with {web_failure}: the server's answer, not a block)"
    return Hit(rule("app.whatsapp.ok"), reason, ev)


def telegram(keys: dict[str, Any]) -> Hit:
    names = ("telegram_tcp_blocking", "telegram_http_blocking", "telegram_web_status")
    miss = _missing(keys, names)
    if miss:
        return miss
    ev = [_ev(f"/test_keys/{n}", n, keys.get(n)) for n in names]
    blocked = []
    if keys.get("telegram_tcp_blocking") is True:
        blocked.append("no Telegram data centre accepted a TCP connection")
    elif keys.get("telegram_http_blocking") is True:
        blocked.append("no Telegram data centre answered over HTTP")
    if keys.get("telegram_web_status") == "blocked":
        blocked.append(f"Telegram Web failed ({keys.get('telegram_web_failure')})")
    if blocked:
        return Hit(rule("app.telegram.blocked"), "; ".join(blocked), ev)
    return Hit(rule("app.telegram.ok"), "Telegram data centres and web were reachable", ev)


def signal(keys: dict[str, Any]) -> Hit:
    miss = _missing(keys, ("signal_backend_status",))
    if miss:
        return miss
    ev = [
        _ev(
            "/test_keys/signal_backend_status",
            "signal_backend_status",
            keys.get("signal_backend_status"),
        )
    ]
    if keys.get("signal_backend_status") == "blocked":
        ev.append(
            _ev("/test_keys/signal_backend_failure", "failure", keys.get("signal_backend_failure"))
        )
        return Hit(
            rule("app.signal.blocked"),
            f"a Signal backend failed ({keys.get('signal_backend_failure')})",
            ev,
        )
    return Hit(rule("app.signal.ok"), "every Signal backend was reachable", ev)


def facebook_messenger(keys: dict[str, Any]) -> Hit:
    miss = _missing(keys, ("facebook_dns_blocking", "facebook_tcp_blocking"))
    if miss:
        return miss
    bad_dns = sorted(k for k, v in keys.items() if k.endswith("_dns_consistent") and v is False)
    bad_tcp = sorted(k for k, v in keys.items() if k.endswith("_reachable") and v is False)
    if keys.get("facebook_dns_blocking") is True:
        return Hit(
            rule("app.facebook_messenger.dns"),
            f"names resolved outside AS{FACEBOOK_ASN}: {', '.join(bad_dns) or 'see queries'}",
            [_ev(f"/test_keys/{k}", k, False) for k in bad_dns]
            or [_ev("/test_keys/facebook_dns_blocking", "facebook_dns_blocking", True)],
        )
    if keys.get("facebook_tcp_blocking") is True:
        return Hit(
            rule("app.facebook_messenger.tcp"),
            f"endpoints unreachable: {', '.join(bad_tcp) or 'see tcp_connect'}",
            [_ev(f"/test_keys/{k}", k, False) for k in bad_tcp]
            or [_ev("/test_keys/facebook_tcp_blocking", "facebook_tcp_blocking", True)],
        )
    return Hit(
        rule("app.facebook_messenger.ok"),
        "Messenger resolved to Facebook and was reachable",
        [_ev("/test_keys/facebook_dns_blocking", "facebook_dns_blocking", False)],
    )


def _escape(token: str) -> str:
    """A JSON pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _queries_fp(queries: list[Query] | None, fps: Fingerprints) -> tuple[int, str, Any] | None:
    for i, q in enumerate(queries or ()):
        for a in q.answers or ():
            for v in (a.ipv4, a.ipv6, a.hostname):
                fp = fps.blocking.match_dns(v)
                if fp is not None:
                    return i, v or "", fp
    return None


_PLAINTEXT = ("udp://", "tcp://")


def _resolver_ip(key: str) -> str:
    """The resolver address of a lookup key ``udp://1.2.3.4:53`` → ``1.2.3.4``."""
    rest = key.split("://", 1)[-1]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest.split("/", 1)[0]


def _transport_failure(lk: DNSCheckLookup) -> tuple[Layer, str | None, str] | None:
    """(layer, method, pointer suffix) of a failed lookup's first failed step."""
    for i, c in enumerate(lk.tcp_connect or ()):
        if c.status is not None and c.status.success is False:
            failure = c.status.failure or ""
            return "tcp", TCP_METHOD.get(failure), f"tcp_connect/{i}"
    for i, h in enumerate(lk.tls_handshakes or ()):
        if h.failure:
            return "tls", TLS_METHOD.get(h.failure), f"tls_handshakes/{i}"
    return None


def dnscheck(keys: DNSCheckKeys | None, fps: Fingerprints) -> Hit:
    if keys is None:
        return Hit(
            rule("app.missing_keys"),
            "the dnscheck measurement has no test keys",
            [_ev("/test_keys", "missing")],
        )
    found = _queries_fp(keys.bootstrap.queries if keys.bootstrap else None, fps)
    if found:
        i, value, fp = found
        return Hit(
            rule("dnscheck.fingerprint"),
            f"the resolver's own name resolved to {value}, a known censor address ({fp.id})",
            [_ev(f"/test_keys/bootstrap/queries/{i}", "bootstrap answer", value)],
            fp,
        )
    lookups = keys.lookups or {}
    for url, lk in lookups.items():
        base = f"/test_keys/lookups/{_escape(url)}"
        found = _queries_fp(lk.queries, fps)
        plaintext = url.startswith(_PLAINTEXT)
        if found:
            i, value, fp = found
            rid = "dnscheck.injection" if plaintext else "dnscheck.fingerprint"
            return Hit(
                rule(rid),
                f"the lookup through {url} answered {value}, a known censor address ({fp.id})",
                [_ev(f"{base}/queries/{i}", "lookup answer", value)],
                fp,
            )
        dups = lk.x_dns_duplicate_responses or []
        if plaintext and dups:
            first_ips = [a.ipv4 or a.ipv6 for q in lk.queries or () for a in q.answers or ()]
            bogus = [ip for ip in first_ips if ip and netaddr.is_bogon(ip)]
            if bogus:
                return Hit(
                    rule("dnscheck.injection"),
                    f"two replies to one query through {url}; the first is the bogon {bogus[0]}",
                    [
                        _ev(f"{base}/queries/0", "first reply", bogus[0]),
                        _ev(f"{base}/x_dns_duplicate_responses/0", "a second reply"),
                    ],
                )
    answered = {_resolver_ip(u) for u, lk in lookups.items() if lk.failure is None}
    for url, lk in lookups.items():
        if lk.failure is None or _resolver_ip(url) not in answered:
            continue
        step = _transport_failure(lk)
        if step is None:
            continue
        layer, method, where = step
        base = f"/test_keys/lookups/{_escape(url)}"
        return Hit(
            rule("dnscheck.transport_blocked"),
            f"the resolver {url} failed at {layer} ({lk.failure}) while the same resolver "
            "answered over another transport: the block is of the resolver, not of the name",
            [_ev(f"{base}/{where}", f"{layer} failure", lk.failure)],
            method=method,
            layer=layer,
            service=url,
        )
    if keys.bootstrap_failure:
        return Hit(
            rule("dnscheck.bootstrap_failed"),
            f"the resolver's name did not resolve ({keys.bootstrap_failure})",
            [_ev("/test_keys/bootstrap_failure", "bootstrap failure", keys.bootstrap_failure)],
        )
    ok = [u for u, lk in lookups.items() if lk.failure is None]
    if ok:
        return Hit(
            rule("dnscheck.ok"),
            f"{len(ok)}/{len(lookups)} lookups succeeded",
            [_ev(f"/test_keys/lookups/{_escape(ok[0])}", "successful lookup")],
        )
    if not lookups:
        return Hit(
            rule("app.missing_keys"),
            "dnscheck has no lookups",
            [_ev("/test_keys/lookups", "missing or empty")],
        )
    first = next(iter(lookups))
    return Hit(
        rule("dnscheck.all_failed"),
        f"all {len(lookups)} lookups failed",
        [
            _ev(
                f"/test_keys/lookups/{_escape(first)}/failure",
                "lookup failure",
                lookups[first].failure,
            )
        ],
    )


APP_SERVICE = {
    "whatsapp": "whatsapp",
    "telegram": "telegram",
    "signal": "signal",
    "facebook_messenger": "facebook",
}
