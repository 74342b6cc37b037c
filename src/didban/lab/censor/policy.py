"""A profile compiled for the censor (``Policy``): its enforcers in priority order, the
iptables-restore text of the censor's chains, its tc commands, the ISP resolver's policy,
and ``Policy.decide`` for each queued packet.

The engine owns the process, the queue and the kernel state and asks ``Policy.decide``
about every queued packet.
"""

from __future__ import annotations

from typing import Any, Final

from didban.lab.censor import wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.censor.enforcers.addresses import (
    DoTBlock,
    IPBlackhole,
    QUICDrop,
    RSTOnConnect,
    TLSMitm,
)
from didban.lab.censor.enforcers.base import Enforcer
from didban.lab.censor.enforcers.inspection import (
    SNIEOF,
    HTTPBlockpage,
    HTTPDrop,
    ProtocolWhitelist,
    SNIBlackhole,
    SNIFilter,
)
from didban.lab.censor.enforcers.protocols import UDPProtocolFilter
from didban.lab.censor.enforcers.resolution import (
    DNSInjection,
    DNSNxdomain,
    DoHPoison,
    ResolverHijack,
)
from didban.lab.censor.enforcers.shaping import DelayLoss, Throttle
from didban.lab.censor.enforcers.shutdown import Curfew, NINIsolation, Shutdown
from didban.lab.censor.enforcers.tunnels import FullyEncrypted, OpenVPNDPI, TorTLS
from didban.lab.profiles import Profile

QUEUE_NUM: Final = 7451
MARK_BLACKHOLE: Final = 0x1D1B0001  # drop this packet and every later one of its flow
MARK_REJECT: Final = 0x1D1B0002  # REJECT --reject-with tcp-reset
MARK_INJECTED: Final = 0x1D1B00FF  # SO_MARK of the raw socket: not tracked by conntrack
CHAIN: Final = "DIDBAN-FWD"
RAW_CHAIN: Final = "DIDBAN-RAW"
NAT_CHAIN: Final = "DIDBAN-NAT"  # PREROUTING: flows redirected to the censor's own listeners
QUEUE_TARGET: Final = f"-j NFQUEUE --queue-num {QUEUE_NUM}"  # fail-closed: no --queue-bypass (P2)

ENFORCERS: Final[dict[str, type[Enforcer]]] = {
    c.name: c
    for c in (
        DNSInjection,
        DNSNxdomain,
        DoHPoison,
        ResolverHijack,
        SNIFilter,
        SNIEOF,
        SNIBlackhole,
        HTTPBlockpage,
        HTTPDrop,
        IPBlackhole,
        RSTOnConnect,
        QUICDrop,
        UDPProtocolFilter,
        TorTLS,
        OpenVPNDPI,
        FullyEncrypted,
        DoTBlock,
        Throttle,
        DelayLoss,
        ProtocolWhitelist,
        Shutdown,
        NINIsolation,
        Curfew,
        TLSMitm,
    )
}


class Policy:
    """A profile compiled for the censor: its enforcers, what they install, what they decide."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.enforcers: list[Enforcer] = []
        for r in profile.rules:
            self.enforcers.append(ENFORCERS[r.technique](r))
        throttles = [e for e in self.enforcers if isinstance(e, Throttle)]
        for i, throttle in enumerate(throttles):
            throttle.index = i
        self.ordered = sorted(self.enforcers, key=lambda e: e.priority)
        self.curfews = [e for e in self.enforcers if isinstance(e, Curfew)]
        self.mitm = [e for e in self.enforcers if isinstance(e, TLSMitm)]

    def iptables_restore(self) -> str:
        """iptables-restore input (use with --noflush) that atomically replaces our chains."""
        bh = f"{MARK_BLACKHOLE:#x}"
        lines = [
            "*filter",
            f":{CHAIN} - [0:0]",
            f"-A {CHAIN} -m connmark --mark {MARK_BLACKHOLE:#x} -j DROP",
            f"-A {CHAIN} -m mark --mark {bh} -j CONNMARK --set-mark {bh}",
            f"-A {CHAIN} -m mark --mark {MARK_BLACKHOLE:#x} -j DROP",
            f"-A {CHAIN} -p tcp -m mark --mark {MARK_REJECT:#x} -j REJECT --reject-with tcp-reset",
        ]
        seen: set[str] = set()
        for enforcer in self.ordered:
            for spec in enforcer.iptables():
                spec = " ".join(spec.split())
                if spec not in seen:
                    seen.add(spec)
                    lines.append(f"-A {CHAIN} {spec} {QUEUE_TARGET}")
        lines += [
            "COMMIT",
            "*raw",
            f":{RAW_CHAIN} - [0:0]",
            f"-A {RAW_CHAIN} -m mark --mark {MARK_INJECTED:#x} -j CT --notrack",
            "COMMIT",
            "*nat",
            f":{NAT_CHAIN} - [0:0]",
        ]
        for enforcer in self.ordered:
            lines += [f"-A {NAT_CHAIN} {' '.join(spec.split())}" for spec in enforcer.nat()]
        lines += ["COMMIT", ""]
        return "\n".join(lines)

    def tc_devices(self) -> list[str]:
        devs: list[str] = []
        for enforcer in self.enforcers:
            for cmd in enforcer.tc():
                if cmd[3] not in devs:
                    devs.append(cmd[3])
        return devs

    def tc_commands(self) -> list[list[str]]:
        out: list[list[str]] = [
            ["qdisc", "add", "dev", d, "root", "handle", "1d1b:", "htb"] for d in self.tc_devices()
        ]
        for enforcer in self.enforcers:
            out.extend(enforcer.tc())
        return out

    def resolver_policy(self) -> dict[str, Any]:
        rules: list[dict[str, Any]] = []
        for enforcer in self.enforcers:
            rules.extend(enforcer.resolver_policy())
        return {"rules": rules}

    def decide(
        self, pkt: wire.IPPacket, st: CensorState, now: float
    ) -> list[tuple[Enforcer, Decision]]:
        """Every rule that fired on ``pkt``, ending with the one that settled it (if any)."""
        fired: list[tuple[Enforcer, Decision]] = []
        st.memo.clear()
        for enforcer in self.ordered:
            d = enforcer.decide(pkt, st, now)
            if d is None:
                continue
            fired.append((enforcer, d))
            if d.disposition != "continue":
                break
        return fired
