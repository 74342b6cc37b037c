"""Enforcers that read the client's first data on a flow: the SNI filters (reset, FIN and
blackhole), the HTTP blockpage and drop, and the protocol whitelister."""

from __future__ import annotations

from didban.lab import plan as address_plan
from didban.lab.censor import dissect, forge, wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.censor.enforcers.base import (
    IF_CLIENT,
    IF_INTL,
    Enforcer,
    is_domestic,
    multiport,
)


class _TCPInspect(Enforcer):
    """Rules that look at the first data of client → server TCP flows on some ports."""

    def ports(self) -> list[int]:
        return list(self.params["ports"])

    def iptables(self) -> list[str]:
        # Only segments that can carry data (IP length >= 53: a pure ACK with timestamps is
        # 52): the client's pure ACKs of a download never reach userspace.
        return [f"-i {IF_CLIENT} -p tcp {multiport(self.ports())} -m length --length 53:65535"]

    def applies(self, pkt: wire.IPPacket) -> bool:
        return (
            pkt.proto == wire.PROTO_TCP
            and pkt.src == address_plan.CLIENT_ADDR
            and pkt.dport in self.ports()
            and bool(pkt.payload)
        )


def client_hello(pkt: wire.IPPacket, st: CensorState, now: float) -> str | None:
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
    st.memo["hello"] = bytes(buf)  # the whole ClientHello, for rules reading more than SNI
    return sni


def first_request(pkt: wire.IPPacket, st: CensorState, now: float) -> dissect.HTTPRequest | None:
    """The HTTP request in the flow's first data segment (no reassembly); None after it."""
    if pkt.flow in st.done:
        return None
    st.done[pkt.flow] = now
    return dissect.http_request(pkt.payload)


class SNIFilter(_TCPInspect):
    name = "sni_reset"
    priority = 60

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if not self.applies(pkt):
            return None
        if "sni" not in st.memo:
            st.memo["sni"] = client_hello(pkt, st, now)
        sni = st.memo["sni"]
        if not isinstance(sni, str) or dissect.name_matches(sni, self.params["names"]) is None:
            return None
        if self.params.get("segments") == "first" and st.memo.get("split"):
            return None  # a filter without reassembly never sees a split ClientHello's SNI
        return self.act(pkt, sni)

    def act(self, pkt: wire.IPPacket, sni: str) -> Decision:
        rst = forge.rst_to_client(pkt, int(self.params["ip_ttl"]))
        if self.params["trigger"] == "pass":
            return Decision("accept", "rst to client, trigger passed", sni, inject=[rst])
        return Decision(
            "drop", "rst to client, trigger dropped", sni, inject=[rst, forge.rst_to_server(pkt)]
        )


class SNIEOF(SNIFilter):
    name = "sni_eof"

    def act(self, pkt: wire.IPPacket, sni: str) -> Decision:
        fin = forge.fin_to_client(pkt, int(self.params["ip_ttl"]))
        return Decision(
            "blackhole",
            "fin to client, trigger dropped, flow blackholed",
            sni,
            inject=[fin, forge.rst_to_server(pkt)],
        )


class SNIBlackhole(SNIFilter):
    name = "sni_blackhole"

    def act(self, pkt: wire.IPPacket, sni: str) -> Decision:
        return Decision("blackhole", "flow blackholed", sni, inject=[forge.rst_to_server(pkt)])


class HTTPBlockpage(_TCPInspect):
    name = "http_blockpage"
    priority = 60

    def matches(self, req: dissect.HTTPRequest) -> str | None:
        if self.params["hosts"] and dissect.name_matches(req.host, self.params["hosts"]):
            return req.host
        line = req.request_line.lower()
        for k in self.params.get("keywords") or []:
            if k.lower() in line or k.lower() in req.host:
                return f"{req.host} keyword {k}"
        return None

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
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
        page = forge.PAGES[self.params["page"]]
        inject = [*forge.blockpage(pkt, page, int(self.params["ip_ttl"])), forge.rst_to_server(pkt)]
        return Decision(
            "blackhole",
            f"blockpage {self.params['page']} injected, flow blackholed",
            hit,
            inject=inject,
        )


class HTTPDrop(HTTPBlockpage):
    name = "http_drop"

    def act(self, pkt: wire.IPPacket, hit: str) -> Decision:
        return Decision(
            "blackhole", "request dropped, flow blackholed", hit, inject=[forge.rst_to_server(pkt)]
        )


class ProtocolWhitelist(Enforcer):
    name = "protocol_whitelist"
    priority = 10

    def iptables(self) -> list[str]:
        return [
            f"-i {IF_CLIENT} -o {IF_INTL} -p tcp {d} {multiport(self.params['ports'])}"
            for d in self.addrs.dst_args()
        ]

    def decide(self, pkt: wire.IPPacket, st: CensorState, now: float) -> Decision | None:
        if (
            pkt.proto != wire.PROTO_TCP
            or pkt.src != address_plan.CLIENT_ADDR
            or pkt.dport not in self.params["ports"]
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
            verdict = dissect.whitelist_verdict(seen, count, int(self.params["packets"]))
            if verdict is None:
                st.wl_flows[flow] = (seen, count)
            else:
                st.wl_flows.pop(flow, None)
                st.wl_judged[flow] = (verdict, now)
                if not verdict:
                    # a new offending flow (re)starts the destination's penalty
                    penalty = float(self.params["penalty"])
                    st.penalties[pkt.dst] = now + penalty
                    action = f"non-conforming flow, {pkt.dst} penalised {penalty:g} s"
                    return Decision("drop", action, seen[:16].hex())
        elif judged is not None and not judged[0]:
            return Decision("drop", "non-conforming flow drop", "")
        if st.penalties.get(pkt.dst, 0.0) > now and not pkt.syn_only:
            return Decision("drop", "penalty drop", f"until +{st.penalties[pkt.dst] - now:.1f} s")
        return None
