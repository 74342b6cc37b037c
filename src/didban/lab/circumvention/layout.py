"""Where the lab's circumvention servers live: ports, names, tunnel addresses, the
Snowflake rendezvous names taken from the catalog (``data/circumvention.yaml``), and the
directory under the lab's state dir (``circ/``) that holds their keys, configs and logs."""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from didban.data import circumvention
from didban.lab import plan

DIR: Final = "circ"
TOR_READY: Final = "tor.ready"

OPENVPN_PORT: Final = 1194
OPENVPN_CIPHER: Final = "AES-256-GCM"
OPENVPN_AUTH: Final = "SHA512"
# the servers' tunnel subnets (TEST-NET, inside inet only; the probe's client uses dev null)
OPENVPN_SUBNETS: Final = {"udp": "198.51.100.224", "tcp": "198.51.100.240"}
WG_PORT: Final = 51820
WG_SERVER_TUNNEL: Final = "198.51.100.249"
WG_CLIENT_TUNNEL: Final = "198.51.100.250"
WG_PREFIXLEN: Final = 30
SHADOWSOCKS_PORT: Final = 8388
SHADOWSOCKS_METHOD: Final = "chacha20-ietf-poly1305"
HTTP_PROXY_PORT: Final = 8080
SOCKS5_PORT: Final = 1080
BRIDGE_OR_PORT: Final = 9001
STUN_HOST: Final = "stun.voipgate.com"  # ICE for Snowflake: a STUN server of the app catalog


def base(state_dir: Path) -> Path:
    return state_dir / DIR


def _rendezvous() -> circumvention.ToolEndpoint:
    return circumvention.by_id("torsf").endpoint("broker")


def broker_url() -> str:
    return _rendezvous().params["url"]


def front() -> str:
    return _rendezvous().params["front"]


def broker_names() -> list[str]:
    """The names the broker stand-in answers: the broker's own and its front domain."""
    return [str(urlsplit(broker_url()).hostname), front()]


def relay_host() -> str:
    return str(circumvention.by_id("torsf").endpoint("relay").host)


def relay_url() -> str:
    return f"ws://{relay_host()}/"


def snowflake_bridge_address() -> str:
    """The address tor is given for the Snowflake bridge (never dialled: the PT carries it)."""
    first = circumvention.by_id("torsf").of_kind("bridge")[0]
    return f"{first.address}:{first.port}"


def bridge_or_port() -> tuple[str, int]:
    """The bridge's plain ORPort, where the Snowflake server stand-in delivers streams."""
    return plan.CIRCUMVENTION["tor-bridge"], BRIDGE_OR_PORT


def hosts() -> dict[str, str]:
    """Name → lab address for the names the lab's DNS answers for these servers."""
    out = {n.lower(): plan.CIRCUMVENTION["snowflake-broker"] for n in broker_names()}
    out[relay_host().lower()] = plan.CIRCUMVENTION["snowflake-relay"]
    return out
