"""What the censor does with one queued packet (a ``Decision``: its disposition, the
packets to inject, what to log) and the state the enforcers keep between packets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

# The fate of a queued packet: accepted, dropped, its flow black-holed or reset by the
# kernel (a connmark the censor's chain acts on), held for a delay, or left to the next
# enforcer ("continue": the rule fired but did not settle the packet).
Disposition = Literal["accept", "drop", "blackhole", "reject", "hold", "continue"]


@dataclass
class Decision:
    """What to do with one queued packet, and what to log about it."""

    disposition: Disposition
    action: str
    detail: str = ""
    inject: list[bytes] = field(default_factory=list)
    hold_s: float = 0.0
    log: bool = True


@dataclass
class CensorState:
    """Per-profile mutable state (reset on reload, pitfall P15)."""

    started: float = field(default_factory=time.monotonic)
    tls: dict[tuple[str, int, str, int, int], bytes] = field(default_factory=dict)
    done: dict[tuple[str, int, str, int, int], float] = field(default_factory=dict)
    wl_flows: dict[tuple[str, int, str, int, int], tuple[bytes, int]] = field(default_factory=dict)
    wl_judged: dict[tuple[str, int, str, int, int], tuple[bool, float]] = field(
        default_factory=dict
    )
    penalties: dict[str, float] = field(default_factory=dict)
    dns_holds: dict[tuple[str, int, str, int], tuple[float, str]] = field(default_factory=dict)
    memo: dict[str, object] = field(default_factory=dict)  # per-packet cache (SNI, request)

    def prune(self, now: float, idle: float = 120.0) -> None:
        for k in [k for k, t in self.done.items() if now - t > idle]:
            del self.done[k]
        for k in [k for k, (_, t) in self.wl_judged.items() if now - t > idle]:
            del self.wl_judged[k]
        for hk in [hk for hk, (t, _) in self.dns_holds.items() if t < now - 10]:
            del self.dns_holds[hk]
        if len(self.tls) > 10000:
            self.tls.clear()
        if len(self.wl_flows) > 10000:
            self.wl_flows.clear()
