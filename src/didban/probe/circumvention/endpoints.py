"""What each circumvention experiment measures, and the VPN input URIs.

Tools with public endpoints take them from the catalog (``data/circumvention.yaml``); the
others (OpenVPN, WireGuard, Shadowsocks, the proxies) have none outside the lab, where the
descriptor's ``circumvention`` section names the lab's servers. VPN inputs follow OONI's
URI (ts-040): ``openvpn://PROVIDER.corp/?address=IP:PORT&transport=udp|tcp``, and the same
shape for WireGuard: ``wireguard://PROVIDER.corp/?address=IP:PORT``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from didban.data import circumvention
from didban.net.stream import split_address
from didban.probe.config import ProbeConfig


def inputs(tool: str, cfg: ProbeConfig) -> list[str]:
    """The inputs of ``tool`` in this run (empty: nothing to measure here)."""
    lab = cfg.circumvention
    if lab is None:
        return []
    if tool == "openvpn":
        return list(lab.openvpn.inputs)
    if tool == "wireguard":
        return [lab.wireguard.input]
    url = circumvention.by_id(tool).url
    return [url] if url else []


@dataclass(frozen=True)
class VPNEndpoint:
    protocol: str  # "openvpn", "wireguard"
    provider: str
    ip: str
    port: int
    transport: str  # "udp", "tcp"

    @property
    def endpoint(self) -> str:
        """OONI's ``openvpn_handshake.endpoint``: ``openvpn://IP:PORT/transport``."""
        return f"{self.protocol}://{self.ip}:{self.port}/{self.transport}"


def parse_vpn_input(text: str) -> VPNEndpoint:
    """The endpoint of an OONI-style VPN input; ValueError with one sentence if bad."""
    parts = urlsplit(text)
    query = parse_qs(parts.query)
    address = (query.get("address") or [""])[0]
    transport = (query.get("transport") or ["udp"])[0]
    host = parts.hostname or ""
    if parts.scheme not in ("openvpn", "wireguard") or not host.endswith(".corp"):
        raise ValueError(
            f"bad VPN input {text!r}: expected SCHEME://PROVIDER.corp/?address=IP:PORT"
        )
    try:
        ip, port = split_address(address, 0)
        ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"bad VPN input {text!r}: address must be IP:PORT") from None
    if not 0 < port < 65536 or transport not in ("udp", "tcp"):
        raise ValueError(f"bad VPN input {text!r}: port 1-65535, transport udp or tcp")
    return VPNEndpoint(parts.scheme, host.removesuffix(".corp"), ip, port, transport)
