"""Enforcers by destination address: the IP blackhole, RST on connect, the QUIC drop,
DoT blocking and TLS interception (the kernel redirects to the censor's listener)."""

from __future__ import annotations

from didban.lab import plan as address_plan
from didban.lab.censor import wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.censor.enforcers.base import IF_CLIENT, MITM_PORT, Enforcer, multiport
from didban.lab.profiles import Rule


class IPBlackhole(Enforcer):
    name = "ip_blackhole"
    priority = 30

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.protos = {"all": (wire.PROTO_TCP, wire.PROTO_UDP), "tcp": (6,), "udp": (17,)}[
            self.params["protocol"]
        ]

    def iptables(self) -> list[str]:
        out = []
        protos = ["tcp", "udp"] if self.params["protocol"] == "all" else [self.params["protocol"]]
        for proto in protos:
            for d in self.addrs.dst_args():
                out.append(f"-i {IF_CLIENT} -p {proto} {d} {multiport(self.params['ports'])}")
        return out

    def hit(self, pkt: wire.IPPacket) -> bool:
        return (
            pkt.src == address_plan.CLIENT_ADDR
            and pkt.proto in self.protos
            and pkt.dst in self.addrs
            and (not self.params["ports"] or pkt.dport in self.params["ports"])
        )

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        return Decision("drop", "dropped", "") if self.hit(pkt) else None


class RSTOnConnect(IPBlackhole):
    name = "rst_on_connect"

    def __init__(self, rule: Rule) -> None:
        rule = Rule(rule.id, rule.technique, {**rule.params, "protocol": "tcp"})
        super().__init__(rule)

    def iptables(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -p tcp --syn {d} {multiport(self.params['ports'])}"
            for d in self.addrs.dst_args()
        ]

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if self.hit(pkt) and pkt.syn_only:
            return Decision("reject", "rst on connect (REJECT tcp-reset)", "")
        return None


class QUICDrop(Enforcer):
    name = "quic_drop"
    priority = 30

    def iptables(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -p udp {d} {multiport(self.params['ports'])}"
            for d in self.addrs.dst_args()
        ]

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if (
            pkt.proto == wire.PROTO_UDP
            and pkt.src == address_plan.CLIENT_ADDR
            and pkt.dport in self.params["ports"]
            and self.addrs.match(pkt.dst)
        ):
            return Decision("drop", "udp dropped", f"{len(pkt.payload)} bytes")
        return None


class DoTBlock(Enforcer):
    name = "dot_block"
    priority = 30

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT} -p tcp --dport 853 {d}" for d in self.addrs.dst_args()]

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if not (
            pkt.proto == wire.PROTO_TCP
            and pkt.src == address_plan.CLIENT_ADDR
            and pkt.dport == 853
            and self.addrs.match(pkt.dst)
        ):
            return None
        if self.params["action"] == "reset":
            return Decision("reject", "rst on connect to :853", "") if pkt.syn_only else None
        if pkt.payload:  # the TCP handshake completes, the TLS handshake stalls (OONI 2020)
            return Decision("blackhole", "tls to :853 blackholed", "")
        return None


class TLSMitm(Enforcer):
    """TLS interception: TCP flows to the addresses are redirected (nat REDIRECT) to the
    censor's own listener, which completes the handshake with a certificate for the
    client's SNI issued by a CA nobody trusts (a national root the client never
    installed). Nothing is queued: the kernel redirects, ``censor.mitm`` answers."""

    name = "tls_mitm"
    priority = 20

    def nat(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -p tcp {d} {multiport(self.params['ports'])} "
            f"-j REDIRECT --to-ports {MITM_PORT}"
            for d in self.addrs.dst_args()
        ]

    def covers(self, addr: str, port: int) -> bool:
        return addr in self.addrs and port in self.params["ports"]
