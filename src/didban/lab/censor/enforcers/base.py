"""The enforcer base class and what every enforcer matches with: address sets, the lab's
domestic networks, the censor's interfaces and iptables port matches."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, ClassVar, Final

from didban.lab import plan as address_plan
from didban.lab.censor import wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.profiles import Rule

MITM_PORT: Final = 8443  # the TLS-terminating listener of tls_mitm, in the isp namespace
IF_CLIENT: Final = "v-client"
IF_DOMESTIC: Final = "v-domestic"
IF_INTL: Final = "v-intl"

_DOMESTIC_NETS: Final = tuple(
    ipaddress.ip_network(n) for n in (*address_plan.DOMESTIC_PREFIXES, "192.0.2.0/29")
)


def is_domestic(addr: str) -> bool:
    """Inside Iran's national network (domestic side, client and ISP links)."""
    ip = ipaddress.ip_address(addr)
    return any(ip in n for n in _DOMESTIC_NETS)


class Nets:
    """A set of addresses/CIDRs from a rule parameter (empty = any)."""

    def __init__(self, items: Iterable[str]) -> None:
        self.items = list(items)
        self.nets = [ipaddress.ip_network(i) for i in self.items]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __contains__(self, addr: str) -> bool:
        ip = ipaddress.ip_address(addr)
        return any(ip in n for n in self.nets)

    def match(self, addr: str) -> bool:
        """True if empty (any) or ``addr`` is in the set."""
        return not self.items or addr in self

    def dst_args(self) -> list[str]:
        return [f"-d {a}" for a in self.items] or [""]

    def src_args(self) -> list[str]:
        return [f"-s {a}" for a in self.items] or [""]


def multiport(ports: list[int]) -> str:
    return f"-m multiport --dports {','.join(map(str, ports))}" if ports else ""


class Enforcer:
    """One compiled profile rule. Subclasses fill in the kernel part and ``decide``."""

    name: ClassVar[str]
    priority: ClassVar[int] = 50  # lower runs first

    def __init__(self, rule: Rule) -> None:
        self.id = rule.id
        self.params: dict[str, Any] = rule.params
        # the destinations the rule is about, for the techniques that take ``addresses``
        self.addrs = Nets(self.params.get("addresses") or [])

    def iptables(self) -> list[str]:
        """Match specs (without ``-A CHAIN`` and target) of packets to queue."""
        return []

    def nat(self) -> list[str]:
        """Full rule specs (match and target) for the nat PREROUTING chain."""
        return []

    def tc(self) -> list[list[str]]:
        return []

    def resolver_policy(self) -> list[dict[str, Any]]:
        return []

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        return None
