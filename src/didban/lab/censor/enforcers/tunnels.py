"""Enforcers that recognise circumvention tools by their own bytes
(:mod:`didban.lab.censor.shapes`): Tor's TLS ClientHello, OpenVPN's first packet over TCP
and UDP, and fully encrypted first payloads (obfs4, Shadowsocks) with a residual penalty."""

from __future__ import annotations

from typing import Final

from didban.lab import plan as address_plan
from didban.lab.censor import forge, shapes, wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.censor.enforcers.base import (
    IF_CLIENT,
    IF_INTL,
    Enforcer,
    is_domestic,
    multiport,
)
from didban.lab.censor.enforcers.inspection import client_hello
from didban.lab.profiles import Rule

Flow = tuple[str, int, str, int, int]
_DATA: Final = "-m length --length 53:65535"  # may carry data (a pure ACK is 52 bytes)


class _FirstData(Enforcer):
    """Looks at the first data segment of client → server TCP flows to the rule's
    addresses and ports (any when empty)."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.ports: list[int] = list(self.params["ports"])

    def iptables(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -p tcp {d} {multiport(self.ports)} {_DATA}"
            for d in self.addrs.dst_args()
        ]

    def applies(self, pkt: wire.IPPacket) -> bool:
        return (
            pkt.proto == wire.PROTO_TCP
            and pkt.src == address_plan.CLIENT_ADDR
            and (not self.ports or pkt.dport in self.ports)
            and self.addrs.match(pkt.dst)
        )

    def act(self, pkt: wire.IPPacket, action: str, detail: str) -> Decision:
        """Drop the trigger: black-hole the flow (the client's handshake times out) or
        reset it toward the client; either way clear the server's half-open state."""
        if self.params.get("action") == "reset":
            rst = forge.rst_to_client(pkt, 54)
            return Decision(
                "drop", f"{action}, rst to client", detail, inject=[rst, forge.rst_to_server(pkt)]
            )
        return Decision(
            "blackhole", f"{action}, flow blackholed", detail, inject=[forge.rst_to_server(pkt)]
        )


class TorTLS(_FirstData):
    """Tor's ClientHello (random ``www.<base32>.com`` name, no ALPN), on any port."""

    name = "tor_tls"
    priority = 55

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if not self.applies(pkt) or not pkt.payload:
            return None
        if "sni" not in st.memo:
            st.memo["sni"] = client_hello(pkt, st, now)
        sni, hello = st.memo["sni"], st.memo.get("hello")
        if not isinstance(sni, str) or not isinstance(hello, bytes):
            return None
        if not shapes.is_tor_client_hello(sni, hello):
            return None
        return self.act(pkt, "tor clienthello", sni)


class OpenVPNDPI(_FirstData):
    """OpenVPN's P_CONTROL_HARD_RESET_CLIENT as the first TCP payload or a UDP datagram."""

    name = "openvpn_dpi"
    priority = 55

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.transports = set(self.params["transports"])
        self.seen: dict[Flow, float] = {}

    def iptables(self) -> list[str]:
        out = []
        for d in self.addrs.dst_args():
            if "tcp" in self.transports:
                out.append(f"-i {IF_CLIENT} -p tcp {d} {multiport(self.ports)} {_DATA}")
            if "udp" in self.transports:
                out.append(f"-i {IF_CLIENT} -p udp {d} {multiport(self.ports)}")
        return out

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if pkt.src != address_plan.CLIENT_ADDR or not self.addrs.match(pkt.dst):
            return None
        if self.ports and pkt.dport not in self.ports:
            return None
        if pkt.proto == wire.PROTO_UDP and "udp" in self.transports:
            if shapes.is_openvpn_reset(pkt.payload, tcp=False):
                return Decision(
                    "drop", "openvpn hard reset dropped (udp)", f"{pkt.dst}:{pkt.dport}"
                )
            return None
        if pkt.proto != wire.PROTO_TCP or "tcp" not in self.transports or not pkt.payload:
            return None
        if pkt.flow in self.seen:
            return None
        self.seen[pkt.flow] = now
        _prune(self.seen, now)
        if shapes.is_openvpn_reset(pkt.payload, tcp=True):
            return self.act(pkt, "openvpn hard reset (tcp)", f"{pkt.dst}:{pkt.dport}")
        return None


class FullyEncrypted(_FirstData):
    """The first payload of a client's TCP flow to an international address, when no
    exemption of the GFW's heuristic covers it; then, for ``penalty`` seconds, every later
    client packet to the same server and port except SYNs is dropped (the GFW's residual
    censorship: connects succeed, data never arrives)."""

    name = "fully_encrypted"
    priority = 15

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.seen: dict[Flow, float] = {}
        self.penalties: dict[tuple[str, int], float] = {}

    def iptables(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -o {IF_INTL} -p tcp {d} {multiport(self.ports)} {_DATA}"
            for d in self.addrs.dst_args()
        ]

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if not self.applies(pkt) or is_domestic(pkt.dst) or not pkt.payload:
            return None
        key = (pkt.dst, pkt.dport)
        until = self.penalties.get(key, 0.0)
        if pkt.flow not in self.seen:
            self.seen[pkt.flow] = now
            _prune(self.seen, now)
            if until <= now and shapes.fet_exemption(pkt.payload) is None:
                penalty = float(self.params["penalty"])
                self.penalties[key] = now + penalty
                detail = f"{len(pkt.payload)} bytes, {pkt.dst}:{pkt.dport} penalised {penalty:g} s"
                return self.act(pkt, "fully encrypted first payload", detail)
        if until > now:
            return Decision("drop", "residual penalty drop", f"until +{until - now:.1f} s")
        return None


def _prune(seen: dict[Flow, float], now: float, idle: float = 300.0) -> None:
    if len(seen) > 20000:
        for flow in [f for f, t in seen.items() if now - t > idle]:
            del seen[flow]
