"""UDP protocol filtering: DPI on the first bytes of every client datagram, dropping the
protocols a profile names whatever port they use.

* ``quic``: a QUIC long-header packet of version 1 (first byte ``0b11xxxxxx``, bytes 1-4
  ``00 00 00 01``) of at least ``quic_min`` bytes (RFC 9000 §14.1 pads a client's Initial
  to 1,200) — the cheap "QUIC detector" Russia's TSPU used in 2022 (payload ≥ 1,001
  bytes, version 1; censorship-techniques.md §2.6), applied to any UDP port;
* ``stun``: a STUN message (RFC 5389 §6: two leading zero bits, the magic cookie
  ``0x2112A442`` at bytes 4-7, at least 20 bytes);
* ``wireguard``: a WireGuard handshake initiation (type 1, three zero bytes, 148 bytes).

Datagrams of other protocols pass (DNS included). Each drop is logged with the protocol.
"""

from __future__ import annotations

import struct
from typing import Final

from didban.lab import plan as address_plan
from didban.lab.censor import shapes, wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.censor.enforcers.base import IF_CLIENT, Enforcer, multiport
from didban.lab.profiles import Rule

STUN_COOKIE: Final = 0x2112A442


def is_quic_initial(payload: bytes, min_length: int) -> bool:
    """A QUIC v1 long-header packet of at least ``min_length`` bytes."""
    return (
        len(payload) >= min_length
        and payload[0] & 0xC0 == 0xC0
        and payload[1:5] == b"\x00\x00\x00\x01"
    )


def is_stun(payload: bytes) -> bool:
    """A STUN message: 20-byte header, leading bits 00, the magic cookie."""
    return (
        len(payload) >= 20
        and payload[0] & 0xC0 == 0
        and struct.unpack_from("!I", payload, 4)[0] == STUN_COOKIE
    )


class UDPProtocolFilter(Enforcer):
    name = "udp_protocol_filter"
    priority = 30

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.protocols = set(self.params["protocols"])

    def iptables(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -p udp {d} {multiport(self.params['ports'])}"
            for d in self.addrs.dst_args()
        ]

    def match(self, payload: bytes) -> str | None:
        if "quic" in self.protocols and is_quic_initial(payload, self.params["quic_min"]):
            return "quic"
        if "stun" in self.protocols and is_stun(payload):
            return "stun"
        if "wireguard" in self.protocols and shapes.is_wireguard_initiation(payload):
            return "wireguard"
        return None

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if (
            pkt.proto != wire.PROTO_UDP
            or pkt.src != address_plan.CLIENT_ADDR
            or not self.addrs.match(pkt.dst)
            or (self.params["ports"] and pkt.dport not in self.params["ports"])
        ):
            return None
        protocol = self.match(pkt.payload)
        if protocol is None:
            return None
        return Decision("drop", f"{protocol} datagram dropped", f"{len(pkt.payload)} bytes")
