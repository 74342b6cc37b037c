"""Rules for ``stunreachability`` (OONI ts-025): did the STUN server answer the Binding
request, and did it answer didban's test helper (``x_didban_control``, the same
transaction from the unfiltered vantage point)?

Rules, in order: ``app.missing_keys``; ``stun.ok`` (a response came); ``stun.dns`` (the
name did not resolve here, or resolved to a censor's address, while the control resolved
it: blocked, method from the lookup); ``stun.down`` (the name resolves nowhere, or the
server answered neither); ``stun.blocked`` (no answer here, an answer for the control);
``stun.blocked.no_control`` (no answer and no control to ask — OONI's own measurements, or
a vantage point cut off from the helper: OONI's reading of the test, a failure is a block,
at confidence 0.5).
"""

from __future__ import annotations

from typing import Any

from didban.analysis.fingerprints import Fingerprints
from didban.analysis.outcome import Hit
from didban.analysis.rules import rule
from didban.analysis.steps import blocked, dns_step, ev


def stunreachability(keys: dict[str, Any], fps: Fingerprints) -> Hit:
    if "failure" not in keys:
        return Hit(
            rule("app.missing_keys"),
            "test key failure is missing",
            [ev("/test_keys", "missing keys", "failure")],
        )
    failure = keys.get("failure")
    endpoint = keys.get("endpoint")
    found = [ev("/test_keys/failure", "the binding transaction", failure)]
    if failure is None:
        return Hit(rule("stun.ok"), f"{endpoint} answered the binding request", found)
    raw = keys.get("x_didban_control")
    control = raw if isinstance(raw, dict) else None
    step = dns_step(keys, None, fps)
    if step is not None:
        if control is not None and control.get("addresses"):
            reason = f"{endpoint}'s name did not resolve here but did for the control"
            return blocked(rule("stun.dns"), reason, found, step)
        if control is not None:
            return Hit(rule("stun.down"), f"{endpoint}'s name resolves nowhere", found)
    ctrl_failure = control.get("failure") if control else keys.get("x_didban_control_failure")
    found.append(ev("/test_keys/x_didban_control", "the control's transaction", ctrl_failure))
    if control is not None and ctrl_failure is None:
        return Hit(
            rule("stun.blocked"),
            f"{endpoint} did not answer ({failure}); it answered the control",
            found,
        )
    if control is not None:
        return Hit(
            rule("stun.down"),
            f"{endpoint} answered neither the probe ({failure}) nor the control ({ctrl_failure})",
            found,
        )
    return Hit(
        rule("stun.blocked.no_control"),
        f"{endpoint} did not answer ({failure}); the control could not be asked ({ctrl_failure})",
        found,
    )
