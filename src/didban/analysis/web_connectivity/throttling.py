"""Throttling against the control (censorship-techniques.md §2.7; docs/methodology.md
"Throttling"): a large page that arrived far slower than the control's copy of it."""

from __future__ import annotations

from typing import Final

from didban.analysis.outcome import Hit
from didban.analysis.web_connectivity.evidence import hit
from didban.analysis.web_connectivity.facts import WebFacts, ctrl_http_ok
from didban.model.verdict import Evidence

# A body must be this large on both sides for its rate to mean anything (slow start and the
# shaper's burst dominate small transfers) ...
THROTTLE_MIN_BODY: Final = 32 * 1024

# ... the probe's rate must be under this share of the control's (a cut of at least 75 %,
# as Iran's 2011-12 throttling: NDT throughput -69 to -77 %; a stricter 10 % missed the lab's
# 1 Mbit/s shaper whenever the control's own read was slowed by shared CPU) ...
THROTTLE_RATIO: Final = 0.25

# ... and under this absolute ceiling in bytes/s (2 Mbit/s): a fast link that is merely
# slower than a data-centre control is not throttled.
THROTTLE_CEILING: Final = 250_000


def r_throttled(f: WebFacts) -> Hit | None:
    rate = f.keys.x_didban_http_throughput
    if rate is None or not f.final_ok or f.ctrl is None:
        return None
    ch = f.ctrl.http_request
    if ch is None or ch.x_didban_throughput is None or not ctrl_http_ok(ch):
        return None
    ctrl_rate = ch.x_didban_throughput
    if not 0 <= rate < THROTTLE_CEILING or rate >= THROTTLE_RATIO * ctrl_rate:
        return None
    resp = f.requests[0].response
    assert resp is not None
    size = resp.x_didban_body_length
    if size is None:
        size = f.final_length_title()[0]
    if size < THROTTLE_MIN_BODY or (ch.body_length or 0) < THROTTLE_MIN_BODY:
        return None
    share = rate / ctrl_rate if ctrl_rate > 0 else 0.0
    return hit(
        f,
        "wc.throttled",
        f"the page ({size} bytes) arrived at {rate * 8 / 1e6:.2f} Mbit/s, {share:.1%} of the "
        f"control's {ctrl_rate * 8 / 1e6:.2f} Mbit/s for {ch.body_length} bytes: throttled",
        [
            Evidence(
                "/test_keys/x_didban_http_throughput",
                "body bytes/s of the final response (probe vs control)",
                f"{rate:.0f}",
                f"{ctrl_rate:.0f}",
            ),
            Evidence(
                "/test_keys/control/http_request/x_didban_throughput",
                f"probe rate / control rate (throttled below {THROTTLE_RATIO})",
                f"{share:.3f}",
                f"< {THROTTLE_RATIO}",
            ),
        ],
    )
