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
