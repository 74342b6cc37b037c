"""The lab descriptor: what a running lab tells the probe, the control helper and the demo.

``didban lab up`` writes it as JSON to ``/run/didban/labs/<prefix>/lab.json`` and points
``/run/didban/current-lab`` at it. The probe's ``--lab`` mode reads this file (it never
imports ``didban.lab``): it re-executes itself with ``ip netns exec <client_netns>`` so
getaddrinfo uses the lab's ISP resolver, trusts ``ca_file``, and takes its resolvers,
control URL and IP→ASN table from here.
"""

from __future__ import annotations

import msgspec


class AsnRow(msgspec.Struct, array_like=True):
    cidr: str
    asn: int
    cc: str
    org: str


class LabDescriptor(msgspec.Struct):
    prefix: str  # e.g. "db3f2a-"
    profile: str  # active profile name
    state_dir: str  # /run/didban/labs/<prefix>
    namespaces: dict[str, str]  # role -> netns name
    client_netns: str
    ca_file: str  # PEM of the lab root CA
    system_resolver: str  # the ISP resolver (written to /etc/netns/<client>/resolv.conf)
    udp_resolver: str  # "198.51.100.8:53"
    doh_url: str  # "https://dns.google/dns-query"
    doh_bootstrap: str  # address of the DoH server, e.g. "198.51.100.8"
    control_url: str  # the test helper, "http://198.51.100.200/"
    probe_cc: str
    probe_asn: str
    probe_network_name: str
    asn_map: list[AsnRow]
    censor_log: str  # JSONL, one line per fired rule
    created: str  # ISO 8601 UTC
    pids: dict[str, int] = msgspec.field(default_factory=dict)  # process name -> pid
    bench_domain: str = ""
    # The app catalog's literal addresses (data/apps.yaml: Telegram's data centres) and the
    # lab address that stands in for each; the app experiments connect to the latter.
    app_addresses: dict[str, str] = msgspec.field(default_factory=dict)
    # app id -> the lab's stand-in for the CA that app pins (e.g. the lab "Signal CA").
    pinned_cas: dict[str, str] = msgspec.field(default_factory=dict)
    # The circumvention servers, once started (``didban lab circumvention``); else None.
    circumvention: LabCircumvention | None = None


# --- the circumvention tools' servers (lab/circumvention/, started on demand) ------------


class TorRelay(msgspec.Struct):
    """One relay of the lab's private Tor network."""

    nickname: str
    role: str  # "authority", "relay", "exit", "bridge"
    address: str
    or_port: int
    fingerprint: str
    dir_port: int | None = None


class LabTor(msgspec.Struct):
    """The private Tor network (tor in TestingTorNetwork mode): what a client needs to use
    it instead of the public one, and the file that exists once its consensus is usable."""

    dir_authorities: list[str]  # torrc "DirAuthority ..." arguments
    relays: list[TorRelay]
    obfs4_bridge: str  # torrc "Bridge" argument: "obfs4 IP:PORT FP cert=... iat-mode=0"
    ready_file: str


class LabSnowflake(msgspec.Struct):
    broker_url: str
    front: str
    ice: str  # comma-separated ICE servers (stun:HOST:PORT)
    bridge: str  # torrc "Bridge" argument: "snowflake 192.0.2.3:80 FP"


class LabOpenVPN(msgspec.Struct):
    inputs: list[str]  # openvpn://lab.corp/?address=IP:PORT&transport=udp|tcp
    ca_file: str
    cert_file: str
    key_file: str
    cipher: str
    auth: str


class LabWireGuard(msgspec.Struct):
    input: str  # wireguard://lab.corp/?address=IP:PORT
    server_public_key: str
    client_private_key: str
    client_address: str  # the client's address inside the tunnel
    server_address: str  # the peer's address inside the tunnel


class LabShadowsocks(msgspec.Struct):
    address: str
    port: int
    password: str
    method: str


class LabCircumvention(msgspec.Struct):
    """Every circumvention server of a lab (``didban lab circumvention``)."""

    tor: LabTor
    snowflake: LabSnowflake
    openvpn: LabOpenVPN
    wireguard: LabWireGuard
    shadowsocks: LabShadowsocks
    socks5: str  # "IP:PORT"
    http_connect: str  # "IP:PORT"
