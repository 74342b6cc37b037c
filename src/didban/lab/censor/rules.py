"""Compiled censor rules: for each technique, what the kernel queues (iptables), what it
shapes (tc), what the ISP resolver is told (resolver-policy.json), and what userspace
decides for each queued packet (verdict, injected packets, log line).

A profile compiles to a :class:`Plan`; the engine owns the process, the queue and the
kernel state and asks ``Plan.decide`` about every queued packet.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal

from didban.lab import plan as lab_plan
from didban.lab.censor import dissect, forge, wire
from didban.lab.profiles import Profile, Rule

QUEUE_NUM: Final = 7451
MARK_BLACKHOLE: Final = 0x1D1B0001  # drop this packet and every later one of its flow
MARK_REJECT: Final = 0x1D1B0002  # REJECT --reject-with tcp-reset
MARK_INJECTED: Final = 0x1D1B00FF  # SO_MARK of the raw socket: not tracked by conntrack
CHAIN: Final = "DIDBAN-FWD"
RAW_CHAIN: Final = "DIDBAN-RAW"
NAT_CHAIN: Final = "DIDBAN-NAT"  # PREROUTING: flows redirected to the censor's own listeners
MITM_PORT: Final = 8443  # the TLS-terminating listener of tls_mitm, in the isp namespace
IF_CLIENT: Final = "v-client"
IF_DOMESTIC: Final = "v-domestic"
IF_INTL: Final = "v-intl"
Q: Final = f"-j NFQUEUE --queue-num {QUEUE_NUM}"  # fail-closed: no --queue-bypass (P2)

_DOMESTIC_NETS: Final = tuple(
    ipaddress.ip_network(n) for n in (*lab_plan.DOMESTIC_PREFIXES, "192.0.2.0/29")
)

Verdict = Literal["accept", "drop", "blackhole", "reject", "hold", "continue"]


def is_domestic(addr: str) -> bool:
    """Inside Iran's national network (domestic side, client and ISP links)."""
    ip = ipaddress.ip_address(addr)
    return any(ip in n for n in _DOMESTIC_NETS)


@dataclass
class Decision:
    """What to do with one queued packet, and what to log about it."""

    verdict: Verdict
    action: str
    detail: str = ""
    inject: list[bytes] = field(default_factory=list)
    hold_s: float = 0.0
    log: bool = True


@dataclass
class State:
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


def _ports(ports: list[int]) -> str:
    return f"-m multiport --dports {','.join(map(str, ports))}" if ports else ""


class Technique:
    """One compiled rule. Subclasses fill in the kernel part and ``decide``."""

    name: ClassVar[str]
    priority: ClassVar[int] = 50  # lower runs first

    def __init__(self, rule: Rule) -> None:
        self.id = rule.id
        self.p: dict[str, Any] = rule.params

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

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        return None


class DNSInjection(Technique):
    name = "dns_injection"
    priority = 40

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.resolvers = Nets(self.p.get("resolvers") or [])
        self.names: list[str] = self.p["names"]

    def answer(self) -> str | None:
        return str(self.p["answer"])

    def iptables(self) -> list[str]:
        specs = [f"-i {IF_CLIENT} -p udp --dport 53 {d}" for d in self.resolvers.dst_args()]
        if self.p.get("tcp", "inject") == "inject":
            specs += [
                f"-i {IF_CLIENT} -p tcp --dport 53 {d} -m length --length 53:65535"
                for d in self.resolvers.dst_args()
            ]
        if self.p.get("original") == "pass":
            specs.append(f"-o {IF_CLIENT} -p udp --sport 53")
        return specs

    def decide_tcp(self, pkt: wire.IPPacket) -> Decision | None:
        """DNS over TCP: answer in-stream "from the resolver" (seq/ack exact), drop the query,
        black-hole the flow (and clear the resolver's half-open connection)."""
        if (
            pkt.dport != 53
            or pkt.src != lab_plan.CLIENT_ADDR
            or len(pkt.payload) < 14
            or not self.resolvers.match(pkt.dst)
        ):
            return None
        q = dissect.dns_query(pkt.payload[2:])
        if q is None or dissect.name_matches(q.qname, self.names) is None:
            return None
        answer = self.answer()
        msg = forge.dns_message(q, answer, int(self.p.get("dns_ttl", 418)))
        seg = forge.tcp_data(pkt, len(msg).to_bytes(2, "big") + msg, int(self.p.get("ip_ttl", 187)))
        what = f"injected {answer}" if answer else "injected NXDOMAIN"
        return Decision("blackhole", f"{what} over tcp, query dropped", q.qname,
                        inject=[seg, forge.rst_to_server(pkt)])  # fmt: skip

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if pkt.proto == wire.PROTO_TCP and self.p.get("tcp", "inject") == "inject":
            return self.decide_tcp(pkt)
        if pkt.proto != wire.PROTO_UDP:
            return None
        if pkt.sport == 53 and pkt.dst == lab_plan.CLIENT_ADDR:
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
        ttl = int(self.p.get("ip_ttl", 187))
        reply = forge.dns_reply(pkt, q, answer, int(self.p.get("dns_ttl", 418)), ttl)
        what = f"injected {answer}" if answer else "injected NXDOMAIN"
        if self.p.get("original") == "pass":
            hold = int(self.p.get("hold_ms", 150)) / 1000
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
            {"id": self.id, "suffix": n, "action": "bogon", "answer": self.p["answer"], "ttl": 418}
            for n in self.names
        ]


class ResolverHijack(Technique):
    """The ISP resolver lies (resolver-policy.json); the resolver logs each answer it forges,
    so the censor queues nothing for this technique."""

    name = "resolver_hijack"
    priority = 45

    def resolver_policy(self) -> list[dict[str, Any]]:
        return [
            {
                "id": self.id,
                "suffix": n,
                "action": self.p["action"],
                "answer": self.p["answer"],
                "ttl": self.p["ttl"],
            }
            for n in self.p["names"]
        ]


class _TCPInspect(Technique):
    """Rules that look at the first data of client → server TCP flows on some ports."""

    def ports(self) -> list[int]:
        return list(self.p["ports"])

    def iptables(self) -> list[str]:
        # Only segments that can carry data (IP length >= 53: a pure ACK with timestamps is
        # 52): the client's pure ACKs of a download never reach userspace.
        return [f"-i {IF_CLIENT} -p tcp {_ports(self.ports())} -m length --length 53:65535"]

    def applies(self, pkt: wire.IPPacket) -> bool:
        return (
            pkt.proto == wire.PROTO_TCP
            and pkt.src == lab_plan.CLIENT_ADDR
            and pkt.dport in self.ports()
            and bool(pkt.payload)
        )


def client_hello(pkt: wire.IPPacket, st: State, now: float) -> str | None:
    """The SNI once the flow's ClientHello is complete (reassembled over segments, up to
    16 KB), "" for a ClientHello without SNI; None before that and for non-TLS flows.
    Each flow is dissected once: shared by every SNI rule."""
    flow = pkt.flow
    if flow in st.done:
        return None
    buf = st.tls.get(flow, b"") + pkt.payload
    st.memo["split"] = flow in st.tls  # the ClientHello spans more than one segment
    total = dissect.tls_record_length(buf)
    if total is None:
        st.done[flow] = now
        st.tls.pop(flow, None)
        return None
    sni = dissect.client_hello_sni(buf)
    if sni is None and len(buf) < total and len(buf) < 16384:
        st.tls[flow] = buf
        return None
    st.done[flow] = now
    st.tls.pop(flow, None)
    return sni


def first_request(pkt: wire.IPPacket, st: State, now: float) -> dissect.HTTPRequest | None:
    """The HTTP request in the flow's first data segment (no reassembly); None after it."""
    if pkt.flow in st.done:
        return None
    st.done[pkt.flow] = now
    return dissect.http_request(pkt.payload)


class SNIFilter(_TCPInspect):
    name = "sni_reset"
    priority = 60

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if not self.applies(pkt):
            return None
        if "sni" not in st.memo:
            st.memo["sni"] = client_hello(pkt, st, now)
        sni = st.memo["sni"]
        if not isinstance(sni, str) or dissect.name_matches(sni, self.p["names"]) is None:
            return None
        if self.p.get("segments") == "first" and st.memo.get("split"):
            return None  # a filter without reassembly never sees a split ClientHello's SNI
        return self.act(pkt, sni)

    def act(self, pkt: wire.IPPacket, sni: str) -> Decision:
        rst = forge.rst_to_client(pkt, int(self.p["ip_ttl"]))
        if self.p["trigger"] == "pass":
            return Decision("accept", "rst to client, trigger passed", sni, inject=[rst])
        return Decision(
            "drop", "rst to client, trigger dropped", sni, inject=[rst, forge.rst_to_server(pkt)]
        )


class SNIBlackhole(SNIFilter):
    name = "sni_blackhole"

    def act(self, pkt: wire.IPPacket, sni: str) -> Decision:
        return Decision("blackhole", "flow blackholed", sni, inject=[forge.rst_to_server(pkt)])


class HTTPBlockpage(_TCPInspect):
    name = "http_blockpage"
    priority = 60

    def matches(self, req: dissect.HTTPRequest) -> str | None:
        if self.p["hosts"] and dissect.name_matches(req.host, self.p["hosts"]):
            return req.host
        line = req.request_line.lower()
        for k in self.p.get("keywords") or []:
            if k.lower() in line or k.lower() in req.host:
                return f"{req.host} keyword {k}"
        return None

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if not self.applies(pkt):
            return None
        if "http" not in st.memo:
            st.memo["http"] = first_request(pkt, st, now)
        req = st.memo["http"]
        if not isinstance(req, dissect.HTTPRequest):
            return None
        hit = self.matches(req)
        if hit is None:
            return None
        return self.act(pkt, hit)

    def act(self, pkt: wire.IPPacket, hit: str) -> Decision:
        page = forge.PAGES[self.p["page"]]
        inject = [*forge.blockpage(pkt, page, int(self.p["ip_ttl"])), forge.rst_to_server(pkt)]
        return Decision(
            "blackhole", f"blockpage {self.p['page']} injected, flow blackholed", hit, inject=inject
        )


class HTTPDrop(HTTPBlockpage):
    name = "http_drop"

    def act(self, pkt: wire.IPPacket, hit: str) -> Decision:
        return Decision(
            "blackhole", "request dropped, flow blackholed", hit, inject=[forge.rst_to_server(pkt)]
        )


class IPBlackhole(Technique):
    name = "ip_blackhole"
    priority = 30

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.addrs = Nets(self.p["addresses"])
        self.protos = {"all": (wire.PROTO_TCP, wire.PROTO_UDP), "tcp": (6,), "udp": (17,)}[
            self.p["protocol"]
        ]

    def iptables(self) -> list[str]:
        out = []
        protos = ["tcp", "udp"] if self.p["protocol"] == "all" else [self.p["protocol"]]
        for proto in protos:
            for d in self.addrs.dst_args():
                out.append(f"-i {IF_CLIENT} -p {proto} {d} {_ports(self.p['ports'])}")
        return out

    def hit(self, pkt: wire.IPPacket) -> bool:
        return (
            pkt.src == lab_plan.CLIENT_ADDR
            and pkt.proto in self.protos
            and pkt.dst in self.addrs
            and (not self.p["ports"] or pkt.dport in self.p["ports"])
        )

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        return Decision("drop", "dropped", "") if self.hit(pkt) else None


class RSTOnConnect(IPBlackhole):
    name = "rst_on_connect"

    def __init__(self, rule: Rule) -> None:
        rule = Rule(rule.id, rule.technique, {**rule.params, "protocol": "tcp"})
        super().__init__(rule)

    def iptables(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -p tcp --syn {d} {_ports(self.p['ports'])}"
            for d in self.addrs.dst_args()
        ]

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if self.hit(pkt) and pkt.syn_only:
            return Decision("reject", "rst on connect (REJECT tcp-reset)", "")
        return None


class QUICDrop(Technique):
    name = "quic_drop"
    priority = 30

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.addrs = Nets(self.p["addresses"])

    def iptables(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -p udp {d} {_ports(self.p['ports'])}" for d in self.addrs.dst_args()
        ]

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if (
            pkt.proto == wire.PROTO_UDP
            and pkt.src == lab_plan.CLIENT_ADDR
            and pkt.dport in self.p["ports"]
            and self.addrs.match(pkt.dst)
        ):
            return Decision("drop", "udp dropped", f"{len(pkt.payload)} bytes")
        return None


class DoTBlock(Technique):
    name = "dot_block"
    priority = 30

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.addrs = Nets(self.p["addresses"])

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT} -p tcp --dport 853 {d}" for d in self.addrs.dst_args()]

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if not (
            pkt.proto == wire.PROTO_TCP
            and pkt.src == lab_plan.CLIENT_ADDR
            and pkt.dport == 853
            and self.addrs.match(pkt.dst)
        ):
            return None
        if self.p["action"] == "reset":
            return Decision("reject", "rst on connect to :853", "") if pkt.syn_only else None
        if pkt.payload:  # the TCP handshake completes, the TLS handshake stalls (OONI 2020)
            return Decision("blackhole", "tls to :853 blackholed", "")
        return None


class Throttle(Technique):
    name = "throttle"
    priority = 20
    index: int = 0  # set by the plan: htb class number

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.addrs = Nets(self.p["addresses"])

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT} -p tcp --syn {d}" for d in self.addrs.dst_args()]

    def tc(self) -> list[list[str]]:
        cls = f"1d1b:{self.index + 16:x}"
        rate = self.p["rate"]
        out: list[list[str]] = []
        devs: list[tuple[str, str]] = []
        if self.p["direction"] in ("down", "both"):
            devs.append((IF_CLIENT, "src"))
        if self.p["direction"] in ("up", "both"):
            devs += [(IF_INTL, "dst"), (IF_DOMESTIC, "dst")]
        for dev, field_ in devs:
            htb = ["htb", "rate", rate, "ceil", rate, "burst", "15k", "cburst", "15k"]
            out.append(["class", "add", "dev", dev, "parent", "1d1b:", "classid", cls, *htb])
            for a in self.addrs.items:
                u32 = ["u32", "match", "ip", field_, a, "flowid", cls]
                out.append(["filter", "add", "dev", dev, "parent", "1d1b:", "protocol", "ip",
                            "prio", "1", *u32])  # fmt: skip
        return out

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if pkt.syn_only and pkt.src == lab_plan.CLIENT_ADDR and pkt.dst in self.addrs:
            return Decision(
                "continue", f"flow shaped to {self.p['rate']} ({self.p['direction']})", ""
            )
        return None


class DelayLoss(Technique):
    name = "delay_loss"
    priority = 25

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.addrs = Nets(self.p["addresses"])
        self.rng = random.Random()

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT} {d}" for d in self.addrs.dst_args()] + [
            f"-o {IF_CLIENT} {s}" for s in self.addrs.src_args()
        ]

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if pkt.dst not in self.addrs and pkt.src not in self.addrs:
            return None
        if self.rng.random() < float(self.p["loss"]):
            return Decision("drop", "lost", "")
        delay = int(self.p["delay_ms"]) / 1000
        return Decision("hold", f"delayed {self.p['delay_ms']} ms", "", hold_s=delay)


class ProtocolWhitelist(Technique):
    name = "protocol_whitelist"
    priority = 10

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.addrs = Nets(self.p["addresses"])

    def iptables(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -o {IF_INTL} -p tcp {d} {_ports(self.p['ports'])}"
            for d in self.addrs.dst_args()
        ]

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if (
            pkt.proto != wire.PROTO_TCP
            or pkt.src != lab_plan.CLIENT_ADDR
            or pkt.dport not in self.p["ports"]
            or is_domestic(pkt.dst)
            or not self.addrs.match(pkt.dst)
        ):
            return None
        flow = pkt.flow
        if pkt.syn_only:  # a new flow (also on a reused 4-tuple)
            st.wl_judged.pop(flow, None)
            st.wl_flows.pop(flow, None)
        judged = st.wl_judged.get(flow)
        if judged is None and pkt.payload:
            seen, count = st.wl_flows.get(flow, (b"", 0))
            seen, count = seen + pkt.payload, count + 1
            verdict = dissect.whitelist_verdict(seen, count, int(self.p["packets"]))
            if verdict is None:
                st.wl_flows[flow] = (seen, count)
            else:
                st.wl_flows.pop(flow, None)
                st.wl_judged[flow] = (verdict, now)
                if not verdict:
                    # a new offending flow (re)starts the destination's penalty
                    st.penalties[pkt.dst] = now + float(self.p["penalty"])
                    return Decision(
                        "drop", f"non-conforming flow, {pkt.dst} penalised {self.p['penalty']:g} s",
                        seen[:16].hex(),
                    )  # fmt: skip
        elif judged is not None and not judged[0]:
            return Decision("drop", "non-conforming flow drop", "")
        if st.penalties.get(pkt.dst, 0.0) > now and not pkt.syn_only:
            return Decision("drop", "penalty drop", f"until +{st.penalties[pkt.dst] - now:.1f} s")
        return None


class Shutdown(Technique):
    name = "shutdown"
    priority = 0

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT}"]

    def active(self, now: float, st: State) -> bool:
        return True

    def cut(self, pkt: wire.IPPacket) -> bool:
        return pkt.src == lab_plan.CLIENT_ADDR

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> Decision | None:
        if self.cut(pkt) and self.active(now, st):
            return Decision("drop", f"{self.name} drop", "")
        return None


class NINIsolation(Shutdown):
    name = "nin_isolation"

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.allow = Nets(self.p.get("allow") or [])

    def iptables(self) -> list[str]:
        return [f"-i {IF_CLIENT} -o {IF_INTL}"]

    def cut(self, pkt: wire.IPPacket) -> bool:
        return (
            pkt.src == lab_plan.CLIENT_ADDR
            and not is_domestic(pkt.dst)
            and not (self.allow and pkt.dst in self.allow)
        )


class Curfew(Shutdown):
    name = "curfew"

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.on = float(self.p["schedule"]["on"])
        self.off = float(self.p["schedule"]["off"])

    def iptables(self) -> list[str]:
        if self.p["mode"] == "shutdown":
            return [f"-i {IF_CLIENT}"]
        return [f"-i {IF_CLIENT} -o {IF_INTL}"]

    def active(self, now: float, st: State) -> bool:
        phase = (now - st.started) % (self.on + self.off)
        first_on = self.p["start"] == "on"
        return (phase < self.on) if first_on else (phase >= self.off)

    def next_toggle(self, now: float, st: State) -> float:
        """Monotonic time of the next on/off switch."""
        period = self.on + self.off
        elapsed = now - st.started
        phase = elapsed % period
        first = self.on if self.p["start"] == "on" else self.off
        edge = first if phase < first else period
        return st.started + elapsed - phase + edge

    def cut(self, pkt: wire.IPPacket) -> bool:
        if self.p["mode"] == "shutdown":
            return pkt.src == lab_plan.CLIENT_ADDR
        return pkt.src == lab_plan.CLIENT_ADDR and not is_domestic(pkt.dst)


class TLSMitm(Technique):
    """TLS interception: TCP flows to the addresses are redirected (nat REDIRECT) to the
    censor's own listener, which completes the handshake with a certificate for the
    client's SNI issued by a CA nobody trusts (a national root the client never
    installed). Nothing is queued: the kernel redirects, ``censor.mitm`` answers."""

    name = "tls_mitm"
    priority = 20

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.addrs = Nets(self.p["addresses"])

    def nat(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -p tcp {d} {_ports(self.p['ports'])} "
            f"-j REDIRECT --to-ports {MITM_PORT}"
            for d in self.addrs.dst_args()
        ]

    def covers(self, addr: str, port: int) -> bool:
        return addr in self.addrs and port in self.p["ports"]


TECHNIQUE_CLASSES: Final[dict[str, type[Technique]]] = {
    c.name: c
    for c in (
        DNSInjection,
        DNSNxdomain,
        DoHPoison,
        ResolverHijack,
        SNIFilter,
        SNIBlackhole,
        HTTPBlockpage,
        HTTPDrop,
        IPBlackhole,
        RSTOnConnect,
        QUICDrop,
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


class Plan:
    """A profile compiled for the censor."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.rules: list[Technique] = []
        for r in profile.rules:
            cls = TECHNIQUE_CLASSES[r.technique]
            self.rules.append(cls(r))
        throttles = [t for t in self.rules if isinstance(t, Throttle)]
        for i, t in enumerate(throttles):
            t.index = i
        self.ordered = sorted(self.rules, key=lambda t: t.priority)
        self.curfews = [t for t in self.rules if isinstance(t, Curfew)]
        self.mitm = [t for t in self.rules if isinstance(t, TLSMitm)]

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
        for t in self.ordered:
            for spec in t.iptables():
                spec = " ".join(spec.split())
                if spec not in seen:
                    seen.add(spec)
                    lines.append(f"-A {CHAIN} {spec} {Q}")
        lines += [
            "COMMIT",
            "*raw",
            f":{RAW_CHAIN} - [0:0]",
            f"-A {RAW_CHAIN} -m mark --mark {MARK_INJECTED:#x} -j CT --notrack",
            "COMMIT",
            "*nat",
            f":{NAT_CHAIN} - [0:0]",
        ]
        for t in self.ordered:
            lines += [f"-A {NAT_CHAIN} {' '.join(spec.split())}" for spec in t.nat()]
        lines += ["COMMIT", ""]
        return "\n".join(lines)

    def tc_devices(self) -> list[str]:
        devs: list[str] = []
        for t in self.rules:
            for cmd in t.tc():
                if cmd[3] not in devs:
                    devs.append(cmd[3])
        return devs

    def tc_commands(self) -> list[list[str]]:
        out: list[list[str]] = [
            ["qdisc", "add", "dev", d, "root", "handle", "1d1b:", "htb"] for d in self.tc_devices()
        ]
        for t in self.rules:
            out.extend(t.tc())
        return out

    def resolver_policy(self) -> dict[str, Any]:
        rules: list[dict[str, Any]] = []
        for t in self.rules:
            rules.extend(t.resolver_policy())
        return {"rules": rules}

    def decide(self, pkt: wire.IPPacket, st: State, now: float) -> list[tuple[Technique, Decision]]:
        """Every rule that fired on ``pkt``, ending with the one that settled it (if any)."""
        fired: list[tuple[Technique, Decision]] = []
        st.memo.clear()
        for t in self.ordered:
            d = t.decide(pkt, st, now)
            if d is None:
                continue
            fired.append((t, d))
            if d.verdict != "continue":
                break
        return fired
