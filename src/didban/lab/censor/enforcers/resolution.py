"""DNS enforcers: on-path injection (a forged answer or NXDOMAIN, over UDP and in-stream
over TCP), DoH poisoning and the ISP resolver's hijack policy."""

from __future__ import annotations

from typing import Any

from didban.lab import plan as address_plan
from didban.lab.censor import dissect, forge, wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.censor.enforcers.base import IF_CLIENT, Enforcer, Nets
from didban.lab.profiles import Rule


class DNSInjection(Enforcer):
    name = "dns_injection"
    priority = 40

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.resolvers = Nets(self.params.get("resolvers") or [])
        self.names: list[str] = self.params["names"]

    def answer(self) -> str | None:
        return str(self.params["answer"])

    def iptables(self) -> list[str]:
        specs = [f"-i {IF_CLIENT} -p udp --dport 53 {d}" for d in self.resolvers.dst_args()]
        if self.params.get("tcp", "inject") == "inject":
            specs += [
                f"-i {IF_CLIENT} -p tcp --dport 53 {d} -m length --length 53:65535"
                for d in self.resolvers.dst_args()
            ]
        if self.params.get("original") == "pass":
            specs.append(f"-o {IF_CLIENT} -p udp --sport 53")
        return specs

    def decide_tcp(self, pkt: wire.IPPacket) -> Decision | None:
        """DNS over TCP: answer in-stream "from the resolver" (seq/ack exact), drop the query,
        black-hole the flow (and clear the resolver's half-open connection)."""
        if (
            pkt.dport != 53
            or pkt.src != address_plan.CLIENT_ADDR
            or len(pkt.payload) < 14
            or not self.resolvers.match(pkt.dst)
        ):
            return None
        q = dissect.dns_query(pkt.payload[2:])
        if q is None or dissect.name_matches(q.qname, self.names) is None:
            return None
        answer = self.answer()
        msg = forge.dns_message(q, answer, int(self.params.get("dns_ttl", 418)))
        seg = forge.tcp_data(
            pkt, len(msg).to_bytes(2, "big") + msg, int(self.params.get("ip_ttl", 187))
        )
        what = f"injected {answer}" if answer else "injected NXDOMAIN"
        return Decision("blackhole", f"{what} over tcp, query dropped", q.qname,
                        inject=[seg, forge.rst_to_server(pkt)])  # fmt: skip

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if pkt.proto == wire.PROTO_TCP and self.params.get("tcp", "inject") == "inject":
            return self.decide_tcp(pkt)
        if pkt.proto != wire.PROTO_UDP:
            return None
        if pkt.sport == 53 and pkt.dst == address_plan.CLIENT_ADDR:
            q = dissect.dns_query(pkt.payload, responses=True)
            key = (pkt.dst, pkt.dport, pkt.src, q.ident if q else -1)
            release, owner = st.dns_holds.get(key, (0.0, ""))
            if owner != self.id:
                return None
            del st.dns_holds[key]
            return Decision(
                "hold", "held genuine reply", q.qname if q else "", hold_s=max(0.0, release - now)
            )
        if pkt.dport != 53 or not self.resolvers.match(pkt.dst):
            return None
        q = dissect.dns_query(pkt.payload)
        if q is None or dissect.name_matches(q.qname, self.names) is None:
            return None
        answer = self.answer()
        ttl = int(self.params.get("ip_ttl", 187))
        reply = forge.dns_reply(pkt, q, answer, int(self.params.get("dns_ttl", 418)), ttl)
        what = f"injected {answer}" if answer else "injected NXDOMAIN"
        if self.params.get("original") == "pass":
            hold = int(self.params.get("hold_ms", 150)) / 1000
            st.dns_holds[(pkt.src, pkt.sport, pkt.dst, q.ident)] = (now + hold, self.id)
            return Decision("accept", f"{what}, query passed", q.qname, inject=[reply])
        return Decision("drop", f"{what}, query dropped", q.qname, inject=[reply])


class DNSNxdomain(DNSInjection):
    name = "dns_nxdomain"

    def answer(self) -> str | None:
        return None


class DoHPoison(DNSInjection):
    name = "doh_poison"

    def __init__(self, rule: Rule) -> None:
        rule = Rule(rule.id, rule.technique, {**rule.params, "original": "drop"})
        super().__init__(rule)

    def resolver_policy(self) -> list[dict[str, Any]]:
        return [
            {
                "id": self.id,
                "suffix": n,
                "action": "bogon",
                "answer": self.params["answer"],
                "ttl": 418,
            }
            for n in self.names
        ]


class ResolverHijack(Enforcer):
    """The ISP resolver lies (resolver-policy.json); the resolver logs each answer it forges,
    so the censor queues nothing for this technique."""

    name = "resolver_hijack"
    priority = 45

    def resolver_policy(self) -> list[dict[str, Any]]:
        return [
            {
                "id": self.id,
                "suffix": n,
                "action": self.params["action"],
                "answer": self.params["answer"],
                "ttl": self.params["ttl"],
            }
            for n in self.params["names"]
        ]
