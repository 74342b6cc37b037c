"""Test keys of OONI's circumvention experiments, as didban writes them (data format 0.2.0).

* ``vanilla_tor`` (ts-016, probe-cli 0.3.0) and ``torsf`` (ts-030, probe-cli 0.5.0): a tor
  bootstrap — ``bootstrap_time``, ``error`` (``timeout-reached``, ``unknown-error``),
  ``failure``, ``success``, ``timeout``, ``tor_logs`` (the ``Bootstrapped N%`` lines),
  ``tor_progress``, ``tor_progress_tag``, ``tor_progress_summary``, ``tor_version``,
  ``transport_name``; torsf adds ``persistent_datadir`` and ``rendezvous_method``;
* ``tor`` (ts-023, probe-cli 0.4.0): a ``targets`` map, one urlgetter-style record per
  directory authority, relay or bridge, and the per-protocol counters;
* ``openvpn`` (ts-040, probe-cli 0.1.1): ``success``, ``failure``, ``bootstrap_time``,
  ``tunnel``, ``network_events`` with minivpn's stages and packets, ``tcp_connect``,
  ``openvpn_handshake``;
* ``wireguard`` (probe-cli ``internal/experiment/wireguard`` 0.1.1): ``success``,
  ``failure``, ``network_events`` (``SEND_HANDSHAKE_INIT``, ``RECV_HANDSHAKE_RESP``,
  ``RECV_KEEPALIVE``), ``urlget``;
* the proxies and Shadowsocks: OONI ``urlgetter`` (ts-027) through the proxy, with OONI's
  ``socksproxy`` and ``tunnel`` keys.

Field names, types and initial values are OONI's (probe-cli; ooni/data
``oonidata.models.nettests`` for the models that load them); didban's additions are
``x_didban_*`` keys.
"""

from __future__ import annotations

import msgspec

from didban.model.ooni import DNSQuery, HTTPTransaction, NetworkEvent, TCPConnect, TLSHandshake
from didban.model.ooniapps import URLGetterKeys

TUNNEL_EXTENSIONS: dict[str, int] = {"tunnel": 0}


class TorBootstrapKeys(msgspec.Struct, kw_only=True):
    """vanilla_tor (ts-016): a tor bootstrap with tor's own (or the lab's) directory."""

    bootstrap_time: float = 0.0
    error: str | None = None
    failure: str | None = None
    success: bool = False
    timeout: float = 0.0
    tor_logs: list[str] = msgspec.field(default_factory=list)
    tor_progress: int = 0
    tor_progress_tag: str = ""
    tor_progress_summary: str = ""
    tor_version: str = ""
    transport_name: str = "vanilla"
    # didban: tor's "Problem bootstrapping" warnings (the step, the reason: TIMEOUT,
    # CONNECTREFUSED, ...), the pluggable transport's own log, and the lab's network
    x_didban_tor_warnings: list[str] = msgspec.field(default_factory=list)
    x_didban_pt_log: list[str] | None = None
    x_didban_testing_network: bool = False


class TorSnowflakeKeys(TorBootstrapKeys, kw_only=True):
    """torsf (ts-030): the same bootstrap over the Snowflake pluggable transport."""

    persistent_datadir: bool = False
    rendezvous_method: str = "domain_fronting"
    transport_name: str = "snowflake"
    # didban: the front domain's lookup and a TCP connect to it on 443 (is the rendezvous
    # reachable at all?), made beside the bootstrap
    x_didban_queries: list[DNSQuery] = msgspec.field(default_factory=list)
    x_didban_baseline: list[TCPConnect] = msgspec.field(default_factory=list)


class TorSummary(msgspec.Struct):
    failure: str | None = None


class TorTarget(msgspec.Struct, kw_only=True):
    """One target of the tor test (probe-cli ``TargetResults``)."""

    agent: str = "redirect"
    failure: str | None = None
    network_events: list[NetworkEvent] | None = None
    queries: list[DNSQuery] | None = None
    requests: list[HTTPTransaction] | None = None
    summary: dict[str, TorSummary] = msgspec.field(default_factory=dict)
    target_address: str = ""
    target_name: str | None = None
    target_protocol: str = ""
    target_source: str | None = None
    tcp_connect: list[TCPConnect] | None = None
    tls_handshakes: list[TLSHandshake] | None = None
    x_didban_pt_log: list[str] | None = None  # obfs4proxy's log for an obfs4 target


class TorKeys(msgspec.Struct, kw_only=True):
    """tor (ts-023): per-protocol totals and the targets map."""

    dir_port_total: int = 0
    dir_port_accessible: int = 0
    obfs4_total: int = 0
    obfs4_accessible: int = 0
    or_port_dirauth_total: int = 0
    or_port_dirauth_accessible: int = 0
    or_port_total: int = 0
    or_port_accessible: int = 0
    targets: dict[str, TorTarget] = msgspec.field(default_factory=dict)


# ---------------------------------------------------------------- openvpn (ts-040)


class OpenVPNPacket(msgspec.Struct, kw_only=True):
    operation: str  # "read", "write"
    opcode: str
    id: int
    acks: list[int] = msgspec.field(default_factory=list)
    payload_size: int = 0
    send_attempts: int | None = None
    stage: str = ""  # ooni/data's model reads the stage here too


class OpenVPNEvent(msgspec.Struct, kw_only=True):
    operation: str  # "state", "packet_in", "packet_out", "packet_dropped"
    stage: str
    t: float
    tags: list[str] = msgspec.field(default_factory=list)
    packet: OpenVPNPacket | None = None
    transaction_id: int = 1


class OpenVPNStatus(msgspec.Struct):
    success: bool
    failure: str | None = None


class OpenVPNHandshake(msgspec.Struct, kw_only=True):
    bootstrap_time: float = 0.0
    handshake_time: float = 0.0
    endpoint: str  # openvpn://IP:PORT/transport
    failure: str | None = None
    ip: str
    port: int
    transport: str
    provider: str
    openvpn_options: dict[str, str] = msgspec.field(default_factory=dict)
    status: OpenVPNStatus
    t0: float = 0.0
    t: float = 0.0
    tags: list[str] = msgspec.field(default_factory=list)
    transaction_id: int = 1


class OpenVPNKeys(msgspec.Struct, kw_only=True):
    success: bool = False
    failure: str | None = None
    bootstrap_time: float = 0.0
    tunnel: str = "openvpn"
    network_events: list[OpenVPNEvent] = msgspec.field(default_factory=list)
    tcp_connect: list[TCPConnect] = msgspec.field(default_factory=list)
    openvpn_handshake: list[OpenVPNHandshake] = msgspec.field(default_factory=list)
    # didban: a TCP connect to the endpoint's address (tag x_didban_baseline) for UDP
    # endpoints: is the host reachable at all?
    x_didban_baseline: list[TCPConnect] = msgspec.field(default_factory=list)


# ---------------------------------------------------------------- wireguard


class WireGuardEvent(msgspec.Struct):
    operation: str  # SEND_HANDSHAKE_INIT, RECV_HANDSHAKE_RESP, RECV_KEEPALIVE
    t: float


class URLGetResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    bytes: int = 0
    error: str = ""
    failure: str | None = None
    status_code: int = 0
    t0: float = 0.0
    t: float = 0.0
    url: str = ""


class WireGuardKeys(msgspec.Struct, kw_only=True):
    success: bool = False
    failure: str | None = None
    network_events: list[WireGuardEvent] = msgspec.field(default_factory=list)
    urlget: list[URLGetResult] = msgspec.field(default_factory=list)
    x_didban_endpoint: str = ""
    x_didban_baseline: list[TCPConnect] = msgspec.field(default_factory=list)


# ---------------------------------------------------------------- proxies (urlgetter)


class ProxyInfo(msgspec.Struct, kw_only=True):
    """The proxy a urlgetter measurement went through: ``protocol`` (``shadowsocks``,
    ``socks5``, ``http_connect``), its address, and how its negotiation ended."""

    protocol: str
    address: str
    failure: str | None = None  # the proxy's own step (ss-local, SOCKS or CONNECT reply)
    method: str | None = None  # Shadowsocks' cipher


class ProxiedURLGetterKeys(URLGetterKeys, kw_only=True):
    """OONI urlgetter (ts-027) through a proxy: ``socksproxy`` names the SOCKS5 proxy the
    connection went through (the proxy itself, or ss-local's), ``tunnel`` the tunnel
    (``shadowsocks``) when there is one."""

    socksproxy: str | None = None
    tunnel: str | None = None
    bootstrap_time: float | None = None
    x_didban_proxy: ProxyInfo | None = None
    x_didban_baseline: list[TCPConnect] = msgspec.field(default_factory=list)
