"""Enforcers that slow flows down: htb throttling per destination, and userspace delay and
loss (the lab's kernel has no netem)."""

from __future__ import annotations

import random

from didban.lab import plan as address_plan
from didban.lab.censor import wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.censor.enforcers.base import IF_CLIENT, IF_DOMESTIC, IF_INTL, Enforcer
from didban.lab.profiles import Rule


class Throttle(Enforcer):
    name = "throttle"
    priority = 20
    index: int = 0  # set by the policy: htb class number

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT} -p tcp --syn {d}" for d in self.addrs.dst_args()]

    def tc(self) -> list[list[str]]:
        cls = f"1d1b:{self.index + 16:x}"
        rate = self.params["rate"]
        out: list[list[str]] = []
        devs: list[tuple[str, str]] = []
        if self.params["direction"] in ("down", "both"):
            devs.append((IF_CLIENT, "src"))
        if self.params["direction"] in ("up", "both"):
            devs += [(IF_INTL, "dst"), (IF_DOMESTIC, "dst")]
        for dev, field_ in devs:
            htb = ["htb", "rate", rate, "ceil", rate, "burst", "15k", "cburst", "15k"]
            out.append(["class", "add", "dev", dev, "parent", "1d1b:", "classid", cls, *htb])
            for a in self.addrs.items:
                u32 = ["u32", "match", "ip", field_, a, "flowid", cls]
                out.append(["filter", "add", "dev", dev, "parent", "1d1b:", "protocol", "ip",
                            "prio", "1", *u32])  # fmt: skip
        return out

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if pkt.syn_only and pkt.src == address_plan.CLIENT_ADDR and pkt.dst in self.addrs:
            return Decision(
                "continue", f"flow shaped to {self.params['rate']} ({self.params['direction']})", ""
            )
        return None


class DelayLoss(Enforcer):
    name = "delay_loss"
    priority = 25

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.rng = random.Random()

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT} {d}" for d in self.addrs.dst_args()] + [
            f"-o {IF_CLIENT} {s}" for s in self.addrs.src_args()
        ]

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if pkt.dst not in self.addrs and pkt.src not in self.addrs:
            return None
        if self.rng.random() < float(self.params["loss"]):
            return Decision("drop", "lost", "")
        delay = int(self.params["delay_ms"]) / 1000
        return Decision("hold", f"delayed {self.params['delay_ms']} ms", "", hold_s=delay)
