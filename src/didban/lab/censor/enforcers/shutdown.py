"""Enforcers that cut the client off: a total shutdown, the national network's isolation
from the internet, and a curfew switching either on and off."""

from __future__ import annotations

from didban.lab import plan as address_plan
from didban.lab.censor import wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.censor.enforcers.base import IF_CLIENT, IF_INTL, Enforcer, Nets, is_domestic
from didban.lab.profiles import Rule


class Shutdown(Enforcer):
    name = "shutdown"
    priority = 0

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT}"]

    def active(self, now: float, st: CensorState) -> bool:
        return True

    def cut(self, pkt: wire.IPPacket) -> bool:
        return pkt.src == address_plan.CLIENT_ADDR

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if self.cut(pkt) and self.active(now, st):
            return Decision("drop", f"{self.name} drop", "")
        return None


class NINIsolation(Shutdown):
    name = "nin_isolation"

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.allow = Nets(self.params.get("allow") or [])

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT} -o {IF_INTL}"]

    def cut(self, pkt: wire.IPPacket) -> bool:
        return (
            pkt.src == address_plan.CLIENT_ADDR
            and not is_domestic(pkt.dst)
            and not (self.allow and pkt.dst in self.allow)
        )


class Curfew(Shutdown):
    name = "curfew"

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.on = float(self.params["schedule"]["on"])
        self.off = float(self.params["schedule"]["off"])

    def iptables(self) -> list[str]:
        if self.params["mode"] == "shutdown":
            return [f"-i {IF_CLIENT}"]
        return [f"-i {IF_CLIENT} -o {IF_INTL}"]

    def active(self, now: float, st: CensorState) -> bool:
        phase = (now - st.started) % (self.on + self.off)
        first_on = self.params["start"] == "on"
        return (phase < self.on) if first_on else (phase >= self.off)

    def next_toggle(self, now: float, st: CensorState) -> float:
        """Monotonic time of the next on/off switch."""
        period = self.on + self.off
        elapsed = now - st.started
        phase = elapsed % period
        first = self.on if self.params["start"] == "on" else self.off
        edge = first if phase < first else period
        return st.started + elapsed - phase + edge

    def cut(self, pkt: wire.IPPacket) -> bool:
        if self.params["mode"] == "shutdown":
            return pkt.src == address_plan.CLIENT_ADDR
        return pkt.src == address_plan.CLIENT_ADDR and not is_domestic(pkt.dst)
