"""Rules for the circumvention tests: vanilla_tor and torsf (did the tunnel bootstrap, and
where did it stall), tor (which class of Tor's targets was unreachable, and how), openvpn
and wireguard (did the handshake complete; was the server's address reachable at all),
riseupvpn, and urlgetter through a proxy or Shadowsocks.

None of these tests has a control: a server that is down looks like a blocked one, so the
confidences are lower than the web rules'. What makes a verdict precise is the step that
failed: tor's bootstrap stage (before ``conn_done``, 10 %: the first relay's TCP connect;
before ``handshake_done``, 15 %: its TLS handshake), Snowflake's log (the rendezvous with
the broker, then the WebRTC data channel), and didban's baseline connects to a VPN's or
Shadowsocks' server (``x_didban_baseline``: an accepted or refused connect shows the
address answers, so an unanswered handshake is the protocol's, not the address's).
"""

from __future__ import annotations

import re
from typing import Any, Final

from didban.analysis.fingerprints import Fingerprints
from didban.analysis.outcome import Hit
from didban.analysis.rules import rule
from didban.analysis.steps import HTTP_METHOD, TCP_METHOD, TLS_METHOD, ev
from didban.model.verdict import Layer

TIMEOUT: Final = "generic_timeout_error"
RESETS: Final = ("CONNECTREFUSED", "CONNECTRESET", "DONE", "IOERROR", "MISC")
# Snowflake client log (snowflake-client 2.5): the rendezvous fails with "WebRTC: <error>
# Retrying..."; the data channel opens with "DataChannel.OnOpen".
SF_BROKER: Final = (
    ("no such host", "dns", "dns.nxdomain"),
    ("connection refused", "tcp", "tcp.reset"),
    ("connection reset by peer", "tls", "tls.sni.reset"),
    ("TLS handshake timeout", "tls", "tls.sni.timeout"),
    ("i/o timeout", "tcp", "tcp.timeout"),
)
SF_ANSWER: Final = ("Received Answer", "Received answer")
SF_OPEN: Final = re.compile(r"WebRTC: DataChannel\.OnOpen\s*$")
TOR_CLASSES: Final = ("obfs4", "or_port_dirauth", "dir_port", "or_port")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _missing(reason: str, pointer: str = "/test_keys") -> Hit:
    return Hit(rule("app.missing_keys"), reason, [ev(pointer, "missing keys", reason)])


# --- vanilla_tor, torsf ----------------------------------------------------------------------


def tor_bootstrap(keys: dict[str, Any], _fps: Fingerprints) -> Hit:
    """vanilla_tor and torsf: the bootstrap's outcome, and the step it stalled at."""
    if "failure" not in keys and "success" not in keys:
        return _missing("test keys failure and success are missing")
    failure = keys.get("failure")
    progress = keys.get("tor_progress")
    tag = keys.get("tor_progress_tag") or ""
    ev_list = [ev("/test_keys/failure", "bootstrap failure", failure)]
    if isinstance(progress, int):
        ev_list.append(ev("/test_keys/tor_progress", "bootstrap progress (%)", f"{progress} {tag}"))
    if failure is None and keys.get("success") is not False:
        return Hit(rule("app.tunnel.ok"), "the tunnel bootstrapped", ev_list)
    pt_log = keys.get("x_didban_pt_log")
    if keys.get("transport_name") == "snowflake":
        hit = _snowflake(pt_log if isinstance(pt_log, list) else [], ev_list)
        if hit is None:
            hit = _rendezvous_unreachable(keys, ev_list)
        if hit is not None:
            return hit
    elif isinstance(progress, int) and progress < 15:
        warnings = keys.get("x_didban_tor_warnings")
        reset = any(r in str(w) for w in warnings or [] for r in RESETS)
        if progress < 10:
            method = "tcp.reset" if reset else "tcp.timeout"
            return Hit(
                rule("tor.bootstrap.tcp"),
                f"tor stalled at {progress}% ({tag}): its first relay's TCP connect "
                f"never completed ({failure})",
                ev_list,
                method=method,
            )
        method = "tls.sni.reset" if reset else "tls.sni.timeout"
        return Hit(
            rule("tor.bootstrap.tls"),
            f"tor stalled at {progress}% ({tag}): connected to its first relay, the TLS "
            f"handshake never completed ({failure})",
            ev_list,
            method=method,
        )
    reason = f"the tunnel did not bootstrap ({failure}"
    reason += f"; progress {progress}%)" if progress is not None else ")"
    return Hit(rule("app.tunnel.blocked"), reason, ev_list)


def _snowflake(log: list[Any], found: list[Any]) -> Hit | None:
    """torsf's Snowflake step: the broker rendezvous, then the WebRTC data channel."""
    text = [str(line) for line in log]
    pointer = "/test_keys/x_didban_pt_log"
    if any(SF_OPEN.search(line) for line in text):
        return None  # a proxy was reached: the tunnel failed further on
    for i, line in enumerate(text):
        if "WebRTC:" not in line or "Retrying" not in line:
            continue
        for marker, layer, method in SF_BROKER:
            if marker in line:
                evidence = [ev(f"{pointer}/{i}", "the rendezvous with the broker failed", line)]
                layer_: Layer = layer  # type: ignore[assignment]
                return Hit(
                    rule("torsf.rendezvous"),
                    f"Snowflake's rendezvous with its broker failed: {marker}",
                    [*evidence, *found],
                    method=method,
                    layer=layer_,
                )
    answered = [i for i, line in enumerate(text) if any(a in line for a in SF_ANSWER)]
    if answered:
        evidence = [ev(f"{pointer}/{answered[-1]}", "the broker answered", text[answered[-1]])]
        return Hit(
            rule("torsf.webrtc"),
            "the broker handed out a proxy, but the WebRTC data channel to it never opened",
            [*evidence, *found],
        )
    return None


def _rendezvous_unreachable(keys: dict[str, Any], found: list[Any]) -> Hit | None:
    """torsf: the front domain's address did not answer didban's TCP connect."""
    answered, failure = _baseline(keys)
    method = TCP_METHOD.get(str(failure))
    if answered is not False or method is None:
        return None
    evidence = [ev("/test_keys/x_didban_baseline/0", "TCP to the broker's front", failure)]
    return Hit(rule("torsf.rendezvous"),
               f"Snowflake's broker (its front domain) did not answer a TCP connect ({failure})",
               [*evidence, *found], method=method, layer="tcp")  # fmt: skip


# --- tor ---------------------------------------------------------------------------------------


def _target_step(key: str, t: dict[str, Any]) -> tuple[Layer, str | None, str | None, str]:
    """(layer, method, failure, pointer) of a failed tor target's failing step."""
    base = f"/test_keys/targets/{_escape(key)}"
    for i, c in enumerate(t.get("tcp_connect") or []):
        status = c.get("status") if isinstance(c, dict) else None
        if isinstance(status, dict) and status.get("success") is False:
            failure = status.get("failure")
            return "tcp", TCP_METHOD.get(str(failure)), failure, f"{base}/tcp_connect/{i}"
    failure = t.get("failure")
    if t.get("target_protocol") == "obfs4":
        method = "tunnel.handshake.timeout" if failure == TIMEOUT else None
        return "app", method, failure, f"{base}/failure"
    for i, h in enumerate(t.get("tls_handshakes") or []):
        if isinstance(h, dict) and h.get("failure"):
            f = h["failure"]
            return "tls", TLS_METHOD.get(str(f)), f, f"{base}/tls_handshakes/{i}"
    return "http", HTTP_METHOD.get(str(failure)), failure, f"{base}/failure"


def tor_targets(keys: dict[str, Any], _fps: Fingerprints) -> Hit:
    """tor: blocked when every target of one protocol class failed (OONI's anomaly rule);
    the class checked first is obfs4 (bridges exist to evade the others' blocks)."""
    targets = keys.get("targets")
    if not isinstance(targets, dict) or not targets:
        return _missing("the tor test has no targets", "/test_keys/targets")
    by_class: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, t in targets.items():
        if isinstance(t, dict):
            by_class.setdefault(str(t.get("target_protocol") or "unknown"), []).append((name, t))
    order = [c for c in TOR_CLASSES if c in by_class] + sorted(set(by_class) - set(TOR_CLASSES))
    for proto in order:
        results = by_class[proto]
        if results and all(t.get("failure") is not None for _, t in results):
            key, first = results[0]
            layer, method, failure, pointer = _target_step(key, first)
            evidence = [ev(pointer, f"{proto} target {first.get('target_address')}", failure)]
            reason = f"all {len(results)} {proto} targets failed"
            if method is None:
                return Hit(rule("app.tor.blocked"), reason, evidence)
            return Hit(
                rule("app.tor.blocked"), f"{reason}: {method}", evidence, method=method, layer=layer
            )
    summary = ", ".join(
        f"{p}: {sum(t.get('failure') is None for _, t in by_class[p])}/{len(by_class[p])}"
        for p in order
    )
    return Hit(
        rule("app.tor.ok"),
        f"reachable targets per protocol: {summary}",
        [ev("/test_keys/targets", "targets reachable", summary)],
    )


# --- openvpn, wireguard ----------------------------------------------------------------------


def _baseline(keys: dict[str, Any]) -> tuple[bool | None, str | None]:
    """Did didban's TCP connect to the server's address get an answer (accepted or
    refused)? None when there is no baseline."""
    records = keys.get("x_didban_baseline")
    if not isinstance(records, list) or not records:
        return None, None
    status = records[-1].get("status") if isinstance(records[-1], dict) else None
    if not isinstance(status, dict):
        return None, None
    failure = status.get("failure")
    return (status.get("success") is True or failure == "connection_refused"), failure


def vpn(keys: dict[str, Any], _fps: Fingerprints) -> Hit:
    """openvpn (ts-040; and the 0.0.x layout) and wireguard: did the handshake complete?"""
    if "success" not in keys and "failure" not in keys:
        return _missing("test keys success and failure are missing")
    failure = keys.get("failure")
    found = [ev("/test_keys/failure", "the handshake", failure)]
    if keys.get("success") is True or (failure is None and "success" not in keys):
        return Hit(rule("vpn.ok"), "the VPN handshake completed", found)
    records = keys.get("tcp_connect")
    for i, c in enumerate(records if isinstance(records, list) else []):
        status = c.get("status") if isinstance(c, dict) else None
        if isinstance(status, dict) and status.get("success") is False:
            f = status.get("failure")
            method = TCP_METHOD.get(str(f))
            evidence = [ev(f"/test_keys/tcp_connect/{i}", "the TCP connect", f), *found]
            if method is not None:
                return Hit(
                    rule("vpn.tcp"),
                    f"the TCP connect to the server failed ({f})",
                    evidence,
                    method=method,
                )
    answered, base_failure = _baseline(keys)
    connects = keys.get("tcp_connect")
    if isinstance(connects, list) and any(
        isinstance(c, dict) and (c.get("status") or {}).get("success") for c in connects
    ):
        answered = True  # a TCP endpoint: its own connect shows the address answers
    if answered is False:
        method = TCP_METHOD.get(str(base_failure))
        evidence = [
            ev("/test_keys/x_didban_baseline/0", "TCP to the server's address", base_failure),
            *found,
        ]
        if method is not None:
            return Hit(
                rule("vpn.host_unreachable"),
                f"the server's address did not answer a TCP connect ({base_failure})",
                evidence,
                method=method,
            )
    if failure == TIMEOUT:
        if answered is True:
            evidence = [
                ev(
                    "/test_keys/x_didban_baseline/0",
                    "TCP to the server's address",
                    base_failure or "connected",
                ),
                *found,
            ]
            return Hit(
                rule("vpn.handshake"),
                "the handshake went unanswered while the server's address answered",
                evidence,
            )
        return Hit(
            rule("vpn.handshake.no_baseline"),
            "the handshake went unanswered; nothing shows whether the server is up",
            found,
        )
    return Hit(rule("vpn.failure.other"), f"the handshake failed ({failure})", found)


def riseupvpn(keys: dict[str, Any], _fps: Fingerprints) -> Hit:
    """riseupvpn (ts-026): the provider's API, then its gateways."""
    api = keys.get("api_failure") or keys.get("api_failures")
    if keys.get("api_status") == "blocked" or api or keys.get("ca_cert_status") is False:
        failure = api[0] if isinstance(api, list) and api else api
        for i, c in enumerate(keys.get("tcp_connect") or []):
            status = c.get("status") if isinstance(c, dict) else None
            f = status.get("failure") if isinstance(status, dict) else None
            if f is not None and TCP_METHOD.get(str(f)):
                return Hit(
                    rule("riseupvpn.api.blocked"),
                    f"the provider's API was unreachable ({f})",
                    [ev(f"/test_keys/tcp_connect/{i}", "a connect to the API", f)],
                    method=TCP_METHOD[str(f)],
                )
        hs = [h.get("failure") for h in keys.get("tls_handshakes") or [] if isinstance(h, dict)]
        failure = failure or next((f for f in hs if f), None)
        return Hit(
            rule("riseupvpn.api.failure"),
            f"the provider's API could not be used ({failure}): not a network failure "
            "a censor is known to cause (OONI disabled riseupvpn scoring for its false "
            "positives, ooni/backend#745)",
            [
                ev("/test_keys/api_status", "API status", keys.get("api_status")),
                ev("/test_keys/ca_cert_status", "CA certificate", keys.get("ca_cert_status")),
            ],
        )
    transports = keys.get("transport_status")
    if isinstance(transports, dict):
        blocked = sorted(str(k) for k, v in transports.items() if v == "blocked")
        if blocked:
            return Hit(
                rule("riseupvpn.gateways.blocked"),
                f"no gateway was reachable over {', '.join(blocked)}",
                [ev("/test_keys/transport_status", "transports", ", ".join(blocked))],
            )
    if "api_status" not in keys and "ca_cert_status" not in keys:
        return _missing("test keys api_status and ca_cert_status are missing")
    return Hit(
        rule("riseupvpn.ok"),
        "the provider's API and gateways were reachable",
        [ev("/test_keys/api_status", "API status", keys.get("api_status"))],
    )


# --- urlgetter through a proxy -----------------------------------------------------------------


def is_proxied(test_keys: Any) -> bool:
    """A urlgetter measurement through a proxy or Shadowsocks (didban's)."""
    return isinstance(test_keys, dict) and isinstance(test_keys.get("x_didban_proxy"), dict)


def protocol(test_keys: dict[str, Any]) -> str | None:
    info = test_keys.get("x_didban_proxy")
    value = info.get("protocol") if isinstance(info, dict) else None
    return str(value) if value else None


def proxied(keys: dict[str, Any], _fps: Fingerprints) -> Hit:
    """The proxy's verdict: reachable, refusing, or its tunnel blocked."""
    info = keys["x_didban_proxy"]
    name = info.get("protocol")
    failure = keys.get("failure")
    operation = keys.get("failed_operation")
    found = [ev("/test_keys/failure", f"the fetch through {name}", failure)]
    if failure is None:
        return Hit(rule("proxy.ok"), f"the fetch through {name} worked", found)
    answered, base_failure = _baseline(keys)
    if answered is False and TCP_METHOD.get(str(base_failure)):
        return Hit(
            rule("proxy.unreachable"),
            f"the {name} server's address did not answer a TCP connect ({base_failure})",
            [ev("/test_keys/x_didban_baseline/0", "TCP to the server", base_failure), *found],
            method=TCP_METHOD[str(base_failure)],
        )
    if operation == "connect" and info.get("failure") is None:
        method = TCP_METHOD.get(str(failure))
        if method is not None:
            return Hit(
                rule("proxy.unreachable"),
                f"the connect to the {name} proxy failed",
                [ev("/test_keys/tcp_connect/0", "TCP to the proxy", failure), *found],
                method=method,
            )
    if info.get("failure") is not None:
        return Hit(
            rule("proxy.refused"),
            f"the {name} proxy refused the tunnel ({info.get('failure')})",
            [
                ev("/test_keys/x_didban_proxy/failure", "the proxy's answer", info.get("failure")),
                *found,
            ],
        )
    if (
        answered is True
        and failure == TIMEOUT
        and operation in ("tls_handshake", "http_round_trip")
    ):
        return Hit(
            rule("proxy.tunnel.blocked"),
            f"nothing came back through {name} while its server's address answered",
            [ev("/test_keys/x_didban_baseline/0", "TCP to the server", "connected"), *found],
        )
    return Hit(
        rule("proxy.target.failure"),
        f"the proxy worked; the fetch beyond it failed ({operation}: {failure})",
        found,
    )
