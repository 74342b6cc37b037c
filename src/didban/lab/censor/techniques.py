"""The censor's technique catalogue as one schema: every rule type a profile may use, as a
msgspec Struct whose fields are the technique's parameters (type, bounds, default), whose
docstring says what it does and whose ``source`` names what it emulates.

A profile's ``rules`` decode into these (tagged by ``technique``; unknown parameters are
refused); ``TechniqueRule.params`` is the normalised parameter table the censor reads.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Literal

import msgspec
from msgspec import Meta

from didban.lab.censor.paramtypes import (
    DnsName,
    Identifier,
    LabAddress,
    LabAddresses,
    Penalty,
    Period,
    Rate,
    Text,
    encode_hook,
)

IRAN_BOGON: Final = "10.10.34.36"

Port = Annotated[int, Meta(ge=1, le=65535, description="a port (1-65535)")]
_MULTIPORT: Final = {"too_long": "at most 15 ports (iptables multiport)"}
Ports = Annotated[list[Port], Meta(max_length=15, extra=_MULTIPORT)]
SomePorts = Annotated[list[Port], Meta(min_length=1, max_length=15, extra=_MULTIPORT)]
Names = Annotated[list[DnsName], Meta(min_length=1)]
Addresses = Annotated[list[LabAddresses], Meta(min_length=1)]
IpTtl = Annotated[int, Meta(ge=1, le=255)]
DnsTtl = Annotated[int, Meta(ge=0, le=2**31 - 1)]
Segments = Literal["all", "first"]


class TechniqueRule(
    msgspec.Struct, tag_field="technique", forbid_unknown_fields=True, kw_only=True
):
    """One rule of a profile: its id, an optional note, its technique's parameters."""

    id: Identifier
    note: str | None = None
    source: ClassVar[str]

    @classmethod
    def technique(cls) -> str:
        return str(cls.__struct_config__.tag)

    @classmethod
    def parameters(cls) -> tuple[str, ...]:
        return tuple(f for f in cls.__struct_fields__ if f not in ("id", "note"))

    def params(self) -> dict[str, Any]:
        """The parameters as plain values, address items expanded to their addresses."""
        out: dict[str, Any] = {}
        for name in self.parameters():
            value = getattr(self, name)
            if isinstance(value, list) and value and isinstance(value[0], LabAddresses):
                value = [a for item in value for a in item.addresses]
            out[name] = msgspec.to_builtins(value, enc_hook=encode_hook)
        return out


class DNSInjectionRule(TechniqueRule, tag="dns_injection"):
    """On-path DNS injector: answers queries for matching names (to any resolver) with a
    forged reply carrying Iran's fingerprint; the genuine query is dropped or passed (then
    the genuine reply is held so the forged one arrives first). Queries over TCP get the
    forged answer in-stream and the flow is black-holed."""

    source = (
        "UPB EchCensorshipResults pcap 2025 (IP TTL 187, flags 0x81a0, DNS TTL 418, "
        "10.10.34.36); Aryan et al. FOCI 2013; OONI 2017"
    )
    names: Names
    answer: LabAddress = LabAddress(IRAN_BOGON)
    original: Literal["drop", "pass"] = "drop"
    hold_ms: Annotated[int, Meta(ge=0, le=5000)] = 150
    ip_ttl: IpTtl = 187
    dns_ttl: DnsTtl = 418
    resolvers: list[LabAddresses] = []
    tcp: Literal["inject", "ignore"] = "inject"


class DNSNxdomainRule(TechniqueRule, tag="dns_nxdomain"):
    """On-path injector answering matching names with NXDOMAIN (flags 0x8183); the genuine
    query is dropped."""

    source = "OONI netemx dnsBlockingNXDOMAIN; reference §2.1 (other DNS outcomes)"
    names: Names
    ip_ttl: IpTtl = 187
    resolvers: list[LabAddresses] = []
    tcp: Literal["inject", "ignore"] = "inject"


class ResolverHijackRule(TechniqueRule, tag="resolver_hijack"):
    """The ISP resolver itself answers matching names with ``answer`` (a bogon, or the ISP's
    sinkhole: an address that refuses connections or fails TLS), with 127.0.0.1, with no
    address (NOERROR), or NXDOMAIN, SERVFAIL, REFUSED, or not at all; written to
    resolver-policy.json. The public resolvers still tell the truth."""

    source = (
        "OONI fingerprints ooni.ir_4/_5/_10dot10_ipv4_1; XTLS/Xray-core #6603; "
        "ooni/probe#2308 (ghost DNS); reference §2.1"
    )
    names: Names
    action: Literal["bogon", "localhost", "noanswer", "nxdomain", "servfail", "refused", "drop"] = (
        "bogon"
    )
    answer: LabAddress = LabAddress("10.10.34.34")
    ttl: DnsTtl = 418


class DoHPoisonRule(TechniqueRule, tag="doh_poison"):
    """DoH blocked by DNS poisoning: DoH hostnames get bogon answers both on-path (any
    resolver, original dropped) and from the ISP resolver."""

    source = "OONI report 2022-09-25 (DoH hostnames bogon since 2022-09-20); UPB pcap 2025"
    names: Names
    answer: LabAddress = LabAddress(IRAN_BOGON)


class HTTPBlockpageRule(TechniqueRule, tag="http_blockpage"):
    """HTTP blockpage injection: on a request whose Host (or request line keyword) matches,
    the request is dropped, Iran's 403 iframe page is injected toward the client (seq/ack
    exact, IP TTL 187), then a FIN+ACK, and the flow is black-holed."""

    source = (
        "UPB pcap 2025 (443-byte 403 page, title NTE1, iframe 10.10.34.36); "
        "getlantern/detour fixtures (legacy HTTP/1.0 form)"
    )
    hosts: list[DnsName] = []
    keywords: list[Text] = []
    page: Literal["iran-2025", "iran-legacy"] = "iran-2025"
    ports: Ports = msgspec.field(default_factory=lambda: [80])
    ip_ttl: IpTtl = 187

    def __post_init__(self) -> None:
        if not self.hosts and not self.keywords:
            raise ValueError("http_blockpage needs 'hosts' or 'keywords'")


class HTTPDropRule(TechniqueRule, tag="http_drop"):
    """HTTP silent drop: requests whose Host matches are dropped, the flow black-holed."""

    source = "UPB pcap 2025 (GET to firefox.dns.nextdns.io retransmitted, unanswered)"
    hosts: Names
    ports: Ports = msgspec.field(default_factory=lambda: [80])


class SNIResetRule(TechniqueRule, tag="sni_reset"):
    """SNI filter, reset variant: a ClientHello whose SNI matches gets one RST+ACK toward the
    client (seq exact, IP TTL 54 or 188, window 0, 6 zero bytes of padding)."""

    source = "OONI 2020-04-28 (MCI); UPB pcaps 2025"
    names: Names
    ports: Ports = msgspec.field(default_factory=lambda: [443])
    ip_ttl: IpTtl = 54
    trigger: Literal["drop", "pass"] = "drop"
    segments: Segments = "all"


class SNIEOFRule(TechniqueRule, tag="sni_eof"):
    """SNI filter, FIN variant: a ClientHello whose SNI matches is dropped, the client gets a
    FIN+ACK "from the server" (seq exact, window 0; the connection ends during the TLS
    handshake: EOF) and the flow is black-holed."""

    source = "OONI 2020 DoT report (Shatel: eof_error during the handshake); reference §2.3"
    names: Names
    ports: Ports = msgspec.field(default_factory=lambda: [443])
    ip_ttl: IpTtl = 54
    segments: Segments = "all"


class SNIBlackholeRule(TechniqueRule, tag="sni_blackhole"):
    """SNI filter, blackhole variant: a ClientHello whose SNI matches is dropped and the flow
    black-holed (handshake timeout)."""

    source = "OONI 2020-04-28 (TCI, ITC); net4people #489"
    names: Names
    ports: Ports = msgspec.field(default_factory=lambda: [443])
    segments: Segments = "all"


class IPBlackholeRule(TechniqueRule, tag="ip_blackhole"):
    """IP blackhole: every packet to the addresses (optionally only some ports) is dropped;
    TCP connects time out."""

    source = "OONI 2022 (static.whatsapp.net, edge-chat.instagram.com: TCP timeouts)"
    addresses: Addresses
    ports: Ports = []
    protocol: Literal["all", "tcp", "udp"] = "all"


class RSTOnConnectRule(TechniqueRule, tag="rst_on_connect"):
    """RST on connect: SYNs to the addresses are answered with a RST (iptables REJECT
    --reject-with tcp-reset); connect() is refused."""

    source = "OONI 2018 (Telegram 'TCP blocking'); netemx tcpBlockingConnectionRefused"
    addresses: Addresses
    ports: Ports = []


class QUICDropRule(TechniqueRule, tag="quic_drop"):
    """QUIC / UDP-443 drop (all destinations unless addresses are given)."""

    source = "Elmenhorst et al. IMC 2021; OONI 2022 (HTTP/3 share ~0); net4people #489"
    addresses: list[LabAddresses] = []
    ports: Ports = msgspec.field(default_factory=lambda: [443])


class UDPProtocolFilterRule(TechniqueRule, tag="udp_protocol_filter"):
    """UDP protocol filter: client datagrams whose first bytes are QUIC (a version-1 long
    header of at least ``quic_min`` bytes), STUN (the RFC 5389 magic cookie) or a WireGuard
    handshake initiation are dropped, on any port (or the given ones), to any destination
    (or the given ones); other UDP (DNS) passes. The handshakes and transactions time out."""

    source = (
        "OONI 2022 and net4people #489 (QUIC disabled on all Iranian ISPs since 2025); "
        "TSPU's QUIC template (reference §2.6: >= 1001 bytes, version 1); RFC 5389 §6; "
        "WireGuard blocked by protocol in Iran (net4people reports 2023-2025)"
    )
    protocols: Annotated[list[Literal["quic", "stun", "wireguard"]], Meta(min_length=1)]
    addresses: list[LabAddresses] = []
    ports: Ports = []
    quic_min: Annotated[int, Meta(ge=1, le=1500)] = 1001


class TorTLSRule(TechniqueRule, tag="tor_tls"):
    """Tor's TLS: a ClientHello naming a random ``www.<base32>.com`` host without ALPN (tor's
    own handshake) is dropped and the flow black-holed (``action: drop``) or reset
    (``reset``); tor stalls while handshaking with its first relay."""

    source = (
        "Tor blog 2011-09-14 (Iran's DPI on Tor's TLS handshake); tor 0.4.9's ClientHello "
        "(random www.<base32>.com SNI, no ALPN)"
    )
    addresses: list[LabAddresses] = []
    ports: Ports = []
    action: Literal["drop", "reset"] = "drop"


class OpenVPNDPIRule(TechniqueRule, tag="openvpn_dpi"):
    """OpenVPN by its first packet: the client's hard reset (opcode 7 or 10, key id 0,
    packet id 0) as a UDP datagram is dropped; as the first TCP payload it black-holes the
    flow (``drop``) or resets it (``reset``). The handshake never completes."""

    source = (
        "Xue et al., OpenVPN is Open to VPN Fingerprinting, USENIX Security 2022 (opcode "
        "fingerprinting); Iran blocks OpenVPN (OONI, net4people)"
    )
    transports: Annotated[list[Literal["tcp", "udp"]], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["tcp", "udp"]
    )
    addresses: list[LabAddresses] = []
    ports: Ports = []
    action: Literal["drop", "reset"] = "drop"


class FullyEncryptedRule(TechniqueRule, tag="fully_encrypted"):
    """The GFW's heuristic for fully encrypted traffic: a client's first TCP payload to an
    international address that no exemption covers (bits per byte 3.4-4.6, no printable
    prefix or run, not TLS or HTTP) black-holes the flow; then every later client packet
    to that server and port except SYNs is dropped for ``penalty``. obfs4 and Shadowsocks
    look like this; TLS, HTTP, SOCKS and OpenVPN do not."""

    source = (
        "Wu et al., How the Great Firewall of China Detects and Blocks Fully Encrypted "
        "Traffic, USENIX Security 2023 (exemptions Ex1-Ex5, 180 s residual blocking)"
    )
    addresses: list[LabAddresses] = []
    ports: Ports = []
    penalty: Penalty = Penalty(180.0)


class DoTBlockRule(TechniqueRule, tag="dot_block"):
    """DoT blocking: TCP to port 853 (of the given resolvers, or any) dropped or reset."""

    source = "OONI 2020 DoT report (1.1.1.1:853 blocked, :443 not)"
    addresses: list[LabAddresses] = []
    action: Literal["drop", "reset"] = "drop"


class ThrottleRule(TechniqueRule, tag="throttle"):
    """Throttling per destination with htb (downloads on v-client, uploads on v-intl)."""

    source = "Anderson 2013; net4people #171 #181 #185 #277 (~1 Mbit/s uploads)"
    addresses: Addresses
    rate: Rate = Rate("1mbit")
    direction: Literal["down", "up", "both"] = "down"


class DelayLossRule(TechniqueRule, tag="delay_loss"):
    """Userspace delay and loss for flows to the addresses (netem is unavailable)."""

    source = "netemx throttlingWithHTTP(S) (300 ms, 10 % loss); reference §7"
    addresses: Addresses
    delay_ms: Annotated[int, Meta(ge=0, le=10000)] = 300
    loss: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.0


class ProtocolWhitelistRule(TechniqueRule, tag="protocol_whitelist"):
    """Protocol whitelister: on TCP flows to the ports, the first two data packets must look
    like DNS, HTTP or TLS; otherwise the destination's later client packets are dropped for
    the penalty time (renewed by each new offending flow)."""

    source = "Bock et al. FOCI 2020 (net4people #49)"
    ports: Ports = msgspec.field(default_factory=lambda: [53, 80, 443])
    addresses: list[LabAddresses] = []
    penalty: Penalty = Penalty(60.0)
    packets: Annotated[int, Meta(ge=1, le=10)] = 2


class TLSMitmRule(TechniqueRule, tag="tls_mitm"):
    """TLS interception with an untrusted root: TCP flows to the addresses are redirected to
    the censor, which completes the handshake with a certificate for the client's SNI from
    its own CA (never installed on the client), so verification fails; a client that
    ignores the error gets the censor's page."""

    source = (
        "Kazakhstan 2019 national root (Censored Planet; reference §2.10); Iran 2011 "
        "DigiNotar MITM (a *trusted* root: not emulated)"
    )
    addresses: Addresses
    ports: SomePorts = msgspec.field(default_factory=lambda: [443])  # empty: every port


class ShutdownRule(TechniqueRule, tag="shutdown"):
    """Total shutdown: every packet the client sends through the ISP is dropped."""

    source = "OONI/IODA November 2019; 2025-2026 blackouts"


class NINIsolationRule(TechniqueRule, tag="nin_isolation"):
    """NIN isolation: international traffic cut, the national network (domestic resolver,
    blockpage host, domestic sites) stays up; optional allowlist."""

    source = "OONI 2019 Iran blackout report (domestic services reachable)"
    allow: list[LabAddresses] = []


class Schedule(msgspec.Struct, forbid_unknown_fields=True):
    """A curfew's rhythm: so long on, so long off."""

    on: Period
    off: Period


class CurfewRule(TechniqueRule, tag="curfew"):
    """Curfew switch: turns a shutdown or NIN isolation on and off while the lab runs."""

    source = "OONI 2022 (mobile curfews 12:00-22:00 UTC)"
    schedule: Schedule
    mode: Literal["shutdown", "nin_isolation"] = "nin_isolation"
    start: Literal["on", "off"] = "on"


TECHNIQUES: Final[dict[str, type[TechniqueRule]]] = {
    cls.technique(): cls
    for cls in (
        DNSInjectionRule,
        DNSNxdomainRule,
        ResolverHijackRule,
        DoHPoisonRule,
        HTTPBlockpageRule,
        HTTPDropRule,
        SNIResetRule,
        SNIEOFRule,
        SNIBlackholeRule,
        IPBlackholeRule,
        RSTOnConnectRule,
        QUICDropRule,
        UDPProtocolFilterRule,
        TorTLSRule,
        OpenVPNDPIRule,
        FullyEncryptedRule,
        DoTBlockRule,
        ThrottleRule,
        DelayLossRule,
        ProtocolWhitelistRule,
        TLSMitmRule,
        ShutdownRule,
        NINIsolationRule,
        CurfewRule,
    )
}
AnyRule = (
    DNSInjectionRule
    | DNSNxdomainRule
    | ResolverHijackRule
    | DoHPoisonRule
    | HTTPBlockpageRule
    | HTTPDropRule
    | SNIResetRule
    | SNIEOFRule
    | SNIBlackholeRule
    | IPBlackholeRule
    | RSTOnConnectRule
    | QUICDropRule
    | UDPProtocolFilterRule
    | TorTLSRule
    | OpenVPNDPIRule
    | FullyEncryptedRule
    | DoTBlockRule
    | ThrottleRule
    | DelayLossRule
    | ProtocolWhitelistRule
    | TLSMitmRule
    | ShutdownRule
    | NINIsolationRule
    | CurfewRule
)


def known() -> str:
    """The technique names, comma-separated, for error messages."""
    return ", ".join(sorted(TECHNIQUES))
