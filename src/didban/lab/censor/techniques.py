"""The censor's technique catalogue: every rule type a profile may use, its parameters
(name, type, default) and the source it emulates. Profiles are validated against this table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

ParamKind = Literal[
    "names",  # list of DNS names (suffix match: "instagram.com" matches "www.instagram.com")
    "strings",  # list of free strings (HTTP keywords)
    "addresses",  # list of lab IPv4 addresses / CIDRs, or "service:<id>" / "resolver:<name>"
    "ports",  # list of TCP/UDP ports
    "int",
    "float",
    "ipv4",  # one lab IPv4 address
    "rate",  # tc rate, e.g. "1mbit", "512kbit"
    "duration",  # seconds: 3, 0.5, "3s", "500ms", "2m"
    "schedule",  # {on: duration, off: duration}
    "choice",
]


@dataclass(frozen=True)
class Param:
    kind: ParamKind
    required: bool = False
    default: object = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # numbers: the least value; lists: at least one item
    maximum: float | None = None


@dataclass(frozen=True)
class Technique:
    name: str
    summary: str
    source: str
    params: dict[str, Param] = field(default_factory=dict)


def _t(name: str, summary: str, source: str, **params: Param) -> Technique:
    return Technique(name, summary, source, params)


IRAN_BOGON: Final = "10.10.34.36"

TECHNIQUES: Final[dict[str, Technique]] = {
    t.name: t
    for t in (
        _t(
            "dns_injection",
            "On-path DNS injector: answers queries for matching names (to any resolver) with a "
            "forged reply carrying Iran's fingerprint; the genuine query is dropped or passed "
            "(then the genuine reply is held so the forged one arrives first). Queries over "
            "TCP get the forged answer in-stream and the flow is black-holed.",
            "UPB EchCensorshipResults pcap 2025 (IP TTL 187, flags 0x81a0, DNS TTL 418, "
            "10.10.34.36); Aryan et al. FOCI 2013; OONI 2017",
            names=Param("names", required=True),
            answer=Param("ipv4", default=IRAN_BOGON),
            original=Param("choice", default="drop", choices=("drop", "pass")),
            hold_ms=Param("int", default=150, minimum=0, maximum=5000),
            ip_ttl=Param("int", default=187, minimum=1, maximum=255),
            dns_ttl=Param("int", default=418, minimum=0, maximum=2**31 - 1),
            resolvers=Param("addresses", default=[]),
            tcp=Param("choice", default="inject", choices=("inject", "ignore")),
        ),
        _t(
            "dns_nxdomain",
            "On-path injector answering matching names with NXDOMAIN (flags 0x8183); the "
            "genuine query is dropped.",
            "OONI netemx dnsBlockingNXDOMAIN; reference §2.1 (other DNS outcomes)",
            names=Param("names", required=True),
            ip_ttl=Param("int", default=187, minimum=1, maximum=255),
            resolvers=Param("addresses", default=[]),
            tcp=Param("choice", default="inject", choices=("inject", "ignore")),
        ),
        _t(
            "resolver_hijack",
            "The ISP resolver itself answers matching names with a bogon (or NXDOMAIN, "
            "SERVFAIL, REFUSED, no answer); written to resolver-policy.json.",
            "OONI fingerprints ooni.ir_4/_5/_10dot10_ipv4_1; XTLS/Xray-core #6603",
            names=Param("names", required=True),
            action=Param(
                "choice",
                default="bogon",
                choices=("bogon", "nxdomain", "servfail", "refused", "drop"),
            ),
            answer=Param("ipv4", default="10.10.34.34"),
            ttl=Param("int", default=418, minimum=0, maximum=2**31 - 1),
        ),
        _t(
            "doh_poison",
            "DoH blocked by DNS poisoning: DoH hostnames get bogon answers both on-path "
            "(any resolver, original dropped) and from the ISP resolver.",
            "OONI report 2022-09-25 (DoH hostnames bogon since 2022-09-20); UPB pcap 2025",
            names=Param("names", required=True),
            answer=Param("ipv4", default=IRAN_BOGON),
        ),
        _t(
            "http_blockpage",
            "HTTP blockpage injection: on a request whose Host (or request line keyword) "
            "matches, the request is dropped, Iran's 403 iframe page is injected toward the "
            "client (seq/ack exact, IP TTL 187), then a FIN+ACK, and the flow is black-holed.",
            "UPB pcap 2025 (443-byte 403 page, title NTE1, iframe 10.10.34.36); "
            "getlantern/detour fixtures (legacy HTTP/1.0 form)",
            hosts=Param("names", default=[]),
            keywords=Param("strings", default=[]),
            page=Param("choice", default="iran-2025", choices=("iran-2025", "iran-legacy")),
            ports=Param("ports", default=[80]),
            ip_ttl=Param("int", default=187, minimum=1, maximum=255),
        ),
        _t(
            "http_drop",
            "HTTP silent drop: requests whose Host matches are dropped, the flow black-holed.",
            "UPB pcap 2025 (GET to firefox.dns.nextdns.io retransmitted, unanswered)",
            hosts=Param("names", required=True),
            ports=Param("ports", default=[80]),
        ),
        _t(
            "sni_reset",
            "SNI filter, reset variant: a ClientHello whose SNI matches gets one RST+ACK toward "
            "the client (seq exact, IP TTL 54 or 188, window 0, 6 zero bytes of padding).",
            "OONI 2020-04-28 (MCI); UPB pcaps 2025",
            names=Param("names", required=True),
            ports=Param("ports", default=[443]),
            ip_ttl=Param("int", default=54, minimum=1, maximum=255),
            trigger=Param("choice", default="drop", choices=("drop", "pass")),
            segments=Param("choice", default="all", choices=("all", "first")),
        ),
        _t(
            "sni_blackhole",
            "SNI filter, blackhole variant: a ClientHello whose SNI matches is dropped and the "
            "flow black-holed (handshake timeout).",
            "OONI 2020-04-28 (TCI, ITC); net4people #489",
            names=Param("names", required=True),
            ports=Param("ports", default=[443]),
            segments=Param("choice", default="all", choices=("all", "first")),
        ),
        _t(
            "ip_blackhole",
            "IP blackhole: every packet to the addresses (optionally only some ports) is "
            "dropped; TCP connects time out.",
            "OONI 2022 (static.whatsapp.net, edge-chat.instagram.com: TCP timeouts)",
            addresses=Param("addresses", required=True),
            ports=Param("ports", default=[]),
            protocol=Param("choice", default="all", choices=("all", "tcp", "udp")),
        ),
        _t(
            "rst_on_connect",
            "RST on connect: SYNs to the addresses are answered with a RST (iptables REJECT "
            "--reject-with tcp-reset); connect() is refused.",
            "OONI 2018 (Telegram 'TCP blocking'); netemx tcpBlockingConnectionRefused",
            addresses=Param("addresses", required=True),
            ports=Param("ports", default=[]),
        ),
        _t(
            "quic_drop",
            "QUIC / UDP-443 drop (all destinations unless addresses are given).",
            "Elmenhorst et al. IMC 2021; OONI 2022 (HTTP/3 share ~0); net4people #489",
            addresses=Param("addresses", default=[]),
            ports=Param("ports", default=[443]),
        ),
        _t(
            "dot_block",
            "DoT blocking: TCP to port 853 (of the given resolvers, or any) dropped or reset.",
            "OONI 2020 DoT report (1.1.1.1:853 blocked, :443 not)",
            addresses=Param("addresses", default=[]),
            action=Param("choice", default="drop", choices=("drop", "reset")),
        ),
        _t(
            "throttle",
            "Throttling per destination with htb (downloads on v-client, uploads on v-intl).",
            "Anderson 2013; net4people #171 #181 #185 #277 (~1 Mbit/s uploads)",
            addresses=Param("addresses", required=True),
            rate=Param("rate", default="1mbit"),
            direction=Param("choice", default="down", choices=("down", "up", "both")),
        ),
        _t(
            "delay_loss",
            "Userspace delay and loss for flows to the addresses (netem is unavailable).",
            "netemx throttlingWithHTTP(S) (300 ms, 10 % loss); reference §7",
            addresses=Param("addresses", required=True),
            delay_ms=Param("int", default=300, minimum=0, maximum=10000),
            loss=Param("float", default=0.0, minimum=0.0, maximum=1.0),
        ),
        _t(
            "protocol_whitelist",
            "Protocol whitelister: on TCP flows to the ports, the first two data packets must "
            "look like DNS, HTTP or TLS; otherwise the destination's later client packets are "
            "dropped for the penalty time (renewed by each new offending flow).",
            "Bock et al. FOCI 2020 (net4people #49)",
            ports=Param("ports", default=[53, 80, 443]),
            addresses=Param("addresses", default=[]),
            penalty=Param("duration", default=60.0, minimum=0.1, maximum=3600),
            packets=Param("int", default=2, minimum=1, maximum=10),
        ),
        _t(
            "tls_mitm",
            "TLS interception with an untrusted root: TCP flows to the addresses are "
            "redirected to the censor, which completes the handshake with a certificate for "
            "the client's SNI from its own CA (never installed on the client), so "
            "verification fails; a client that ignores the error gets the censor's page.",
            "Kazakhstan 2019 national root (Censored Planet; reference §2.10); Iran 2011 "
            "DigiNotar MITM (a *trusted* root: not emulated)",
            addresses=Param("addresses", required=True),
            ports=Param("ports", default=[443], minimum=1),  # empty would mean every port
        ),
        _t(
            "shutdown",
            "Total shutdown: every packet the client sends through the ISP is dropped.",
            "OONI/IODA November 2019; 2025-2026 blackouts",
        ),
        _t(
            "nin_isolation",
            "NIN isolation: international traffic cut, the national network (domestic "
            "resolver, blockpage host, domestic sites) stays up; optional allowlist.",
            "OONI 2019 Iran blackout report (domestic services reachable)",
            allow=Param("addresses", default=[]),
        ),
        _t(
            "curfew",
            "Curfew switch: turns a shutdown or NIN isolation on and off while the lab runs.",
            "OONI 2022 (mobile curfews 12:00-22:00 UTC)",
            mode=Param("choice", default="nin_isolation", choices=("shutdown", "nin_isolation")),
            schedule=Param("schedule", required=True),
            start=Param("choice", default="on", choices=("on", "off")),
        ),
    )
}


def known() -> str:
    """The technique names, comma-separated, for error messages."""
    return ", ".join(sorted(TECHNIQUES))
