"""Rules for the IM apps' tests (telegram, signal, whatsapp, facebook_messenger): OONI's
summary keys decide whether the app is blocked (``analysis.apps``, as OONI's probe does);
didban's tagged records name how — the failing step of the first endpoint that failed,
as precisely as a web verdict (``analysis.steps``): the data centres' connects refused
(``tcp.reset``), Signal's handshakes stalled (``tls.sni.timeout``), Messenger's names
answered with Iran's blockpage address (``dns.hijack``, confirmed). A verdict of OONI's own
measurements (no tags) keeps the coarse ``app`` layer with no method.

Also the table of every non-web test's rule function (``APP_TESTS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from didban.analysis import apps, steps, stun
from didban.analysis.fingerprints import Fingerprints
from didban.analysis.outcome import Hit


def telegram(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    """The data centres' failing step when they decided the block, else the web's."""
    hit = apps.telegram(keys)
    if hit.rule.state != "blocked":
        return hit
    if keys.get("telegram_tcp_blocking") is True or keys.get("telegram_http_blocking") is True:
        dcs = [e for e in steps.endpoints(keys) if e != "web"]
        step = steps.first(keys, dcs, fps)
    else:
        step = steps.flow_step(keys, "web", fps)
    return steps.blocked(hit.rule, hit.reason, hit.evidence, step)


def signal(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    hit = apps.signal(keys)
    if hit.rule.state != "blocked":
        return hit
    backends = [e for e in steps.endpoints(keys) if e != "uptime"]
    return steps.blocked(hit.rule, hit.reason, hit.evidence, steps.first(keys, backends, fps))


def whatsapp(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    """The endpoints' failing step when none was reachable, else the registration
    server's, else the web's."""
    hit = apps.whatsapp(keys)
    if hit.rule.state != "blocked":
        return hit
    step = None
    if keys.get("whatsapp_endpoints_status") == "blocked":
        ids = [e for e in steps.endpoints(keys, "e") if e[1:].isdigit()]
        step = steps.first(keys, ids, fps)
    if step is None and keys.get("registration_server_status") == "blocked":
        step = steps.flow_step(keys, "registration", fps)
    if step is None:
        step = steps.flow_step(keys, "web", fps)
    return steps.blocked(hit.rule, hit.reason, hit.evidence, step)


def facebook_messenger(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    """DNS first — a censor's answer is ``dns.hijack`` (confirmed), a failed lookup
    ``dns.*``, an answer outside Facebook's AS stays ``dns.inconsistent`` — then TCP."""
    hit = apps.facebook_messenger(keys)
    if hit.rule.id == "app.facebook_messenger.dns":
        step = steps.dns_step(keys, None, fps)
        if step is None or step.method is None:
            return hit
        return Hit(
            hit.rule,
            f"{hit.reason}: {step.method}",
            [steps.ev(step.pointer, "the lookup", step.failure), *hit.evidence],
            step.fingerprint,
            method=step.method,
            layer="dns",
        )
    if hit.rule.id == "app.facebook_messenger.tcp":
        bad = [
            k[len("facebook_") : -len("_reachable")]
            for k, v in keys.items()
            if k.endswith("_reachable") and v is False
        ]
        step = steps.first(keys, bad, fps) if bad else None
        if step is not None and step.layer == "tcp" and step.method is not None:
            return Hit(
                hit.rule,
                f"{hit.reason}: {step.method}",
                [steps.ev(step.pointer, "a failed connect", step.failure), *hit.evidence],
                method=step.method,
                layer="tcp",
            )
    return hit


def _keys_only(
    fn: Callable[[dict[str, Any]], Hit],
) -> Callable[[dict[str, Any], Fingerprints], Hit]:
    return lambda keys, _fps: fn(keys)


# Every non-web test with rules of its own (dnscheck and urlgetter are dispatched apart:
# their keys are decoded into Structs, and a urlgetter is judged only as an HTTP/3 test).
APP_TESTS: Final[dict[str, Callable[[dict[str, Any], Fingerprints], Hit]]] = {
    "whatsapp": whatsapp,
    "telegram": telegram,
    "signal": signal,
    "facebook_messenger": facebook_messenger,
    "stunreachability": stun.stunreachability,
    "tor": _keys_only(apps.tor),
    "vanilla_tor": _keys_only(apps.tunnel),
    "torsf": _keys_only(apps.tunnel),
}
