"""The lab's address plan and namespace roles: the contract every lab part builds on.

All addresses are TEST-NET (RFC 5737) or 10.10.34.0/24 and exist only inside lab
namespaces (DESIGN.md §4). Namespace names are ``<prefix><role>``; the prefix is unique
per lab (e.g. ``db3f2a-``) so several labs can coexist and cleanup removes only its own.

Topology (IPv4; IPv6 disabled in every lab namespace)::

    client ── isp (censor) ─┬─ domestic   ISP resolver, blockpage 10.10.34.34-36,
    192.0.2.2   192.0.2.1   │             domestic sites
                            └─ intl (border) ─┬─ inet     service hosts, public resolvers,
                                              │           bench virtual hosts
                                              └─ control  unfiltered vantage (test helper)

Traffic from the client crosses the isp namespace, whose FORWARD chain and NFQUEUE
censor see it; the control vantage reaches ``inet`` through ``intl`` only, unfiltered.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from didban.data import apps, catalog

# Roles, in creation order. Names are short: veth names are limited to 15 characters.
ROLES: Final = ("client", "isp", "domestic", "intl", "inet", "control")

# Point-to-point links: (role_a, role_b, addr_a, addr_b, prefix length), inside 192.0.2.0/24.
LINKS: Final = (
    ("client", "isp", "192.0.2.2", "192.0.2.1", 30),
    ("isp", "domestic", "192.0.2.5", "192.0.2.6", 30),
    ("isp", "intl", "192.0.2.9", "192.0.2.10", 30),
    ("intl", "inet", "192.0.2.13", "192.0.2.14", 30),
    ("intl", "control", "192.0.2.17", "192.0.2.18", 30),
)

CLIENT_ADDR: Final = "192.0.2.2"

# --- domestic (Iran's national network) -------------------------------------------------
ISP_RESOLVER: Final = "192.0.2.53"  # the ISP's recursive resolver (system resolver of client)
BLOCKPAGE_HOSTS: Final = ("10.10.34.34", "10.10.34.35", "10.10.34.36")
DOMESTIC_PREFIXES: Final = ("192.0.2.32/27", "10.10.34.0/24")
# Domestic sites: service id -> addresses (in 192.0.2.32/27).
DOMESTIC_SITES: Final[dict[str, tuple[str, ...]]] = {
    "digikala": ("192.0.2.40",),
    "aparat": ("192.0.2.41",),
}
# The ISP's sinkholes, where a lying resolver can send a name: an address where nothing
# listens (connections refused), and a portal that serves its own notice page and a
# certificate for its own name only (TLS for any other name fails verification).
SINKHOLE_REFUSE: Final = "192.0.2.50"
SINKHOLE_PORTAL: Final = "192.0.2.51"
PORTAL_NAME: Final = "portal.isp.didban.test"

# --- inet (the international internet) -------------------------------------------------
# Every catalog service gets its own addresses in 203.0.113.0/25.
SERVICE_ADDRS: Final[dict[str, tuple[str, ...]]] = {
    "instagram": ("203.0.113.10", "203.0.113.11"),
    "telegram": ("203.0.113.14", "203.0.113.15"),
    "signal": ("203.0.113.18",),
    "whatsapp": ("203.0.113.22", "203.0.113.23"),
    "facebook": ("203.0.113.26", "203.0.113.27"),
    "twitter": ("203.0.113.30",),
    "youtube": ("203.0.113.34", "203.0.113.35"),
    "flickr": ("203.0.113.38",),
    "cloob": ("203.0.113.42",),
    "gmail": ("203.0.113.46",),
    "yahoomail": ("203.0.113.50",),
    "tabnak": ("203.0.113.54",),
    "wikipedia": ("203.0.113.58",),
    "bbcpersian": ("203.0.113.62",),
}
# Hosts of the default test list (data/default-list.csv) that are not catalog services get
# one address each from 203.0.113.64/26, in the order the list first names them.
EXTRA_POOL: Final = tuple(f"203.0.113.{i}" for i in range(64, 128))
# App endpoints (data/apps.yaml) the catalog names by address (Telegram's data centres), and
# app host names no catalog service owns (the STUN servers), get one address each from
# 203.0.113.128/27, in catalog order: app_addresses(), app_hosts().
APP_POOL: Final = tuple(f"203.0.113.{i}" for i in range(128, 160))
# The circumvention tools' servers (lab/circumvention/): one address per server role, on
# inet's lo, started on demand (`didban lab circumvention`); 203.0.113.160/27.
CIRC_POOL: Final = tuple(f"203.0.113.{i}" for i in range(160, 192))
CIRCUMVENTION: Final[dict[str, str]] = {
    "tor-authority": "203.0.113.160",  # DirPort 80, ORPort 443
    "tor-relay": "203.0.113.161",  # ORPort 443
    "tor-exit": "203.0.113.162",  # ORPort 443
    "tor-bridge": "203.0.113.163",  # ORPort 9001 (plain, for Snowflake), obfs4 443
    "snowflake-broker": "203.0.113.164",  # HTTPS 443 (the broker and its front domain)
    "snowflake-relay": "203.0.113.165",  # WebSocket 80 (the Snowflake server stand-in)
    "openvpn": "203.0.113.166",  # udp 1194, tcp 1194
    "wireguard": "203.0.113.167",  # udp 51820
    "shadowsocks": "203.0.113.168",  # tcp 8388
    "http-proxy": "203.0.113.169",  # tcp 8080 (tinyproxy)
    "socks5-proxy": "203.0.113.170",  # tcp 1080 (microsocks)
}
# Groups a profile names with circumvention:<name> (besides each server's own name).
CIRCUMVENTION_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "tor": ("tor-authority", "tor-relay", "tor-exit"),  # the public relays (the consensus)
    "snowflake": ("snowflake-broker",),
}


def circumvention_groups() -> list[str]:
    return [*CIRCUMVENTION_GROUPS, *CIRCUMVENTION]


def circumvention_addresses(name: str) -> list[str]:
    """The lab addresses of a circumvention server (``tor-bridge``, ``openvpn``, ...) or
    group (``tor``: the relays a consensus lists; the bridge is not among them)."""
    roles = CIRCUMVENTION_GROUPS.get(name, (name,) if name in CIRCUMVENTION else ())
    return [CIRCUMVENTION[r] for r in roles]


# Sites the resolver and redirect techniques are checked on (the lab accuracy benchmark):
# one address each in 203.0.113.224/28, names <label>.cases.didban.test. ``redirect``
# answers /to/<host> with a redirect to https://<host>/; the hop-* sites are the
# destinations a censor blocks at the next hop.
CASE_DOMAIN: Final = "cases.didban.test"
CASE_SITES: Final[dict[str, str]] = {
    "isp-nxdomain": "203.0.113.224",
    "isp-noanswer": "203.0.113.225",
    "isp-localhost": "203.0.113.226",
    "isp-refused": "203.0.113.227",
    "isp-badtls": "203.0.113.228",
    "redirect": "203.0.113.229",
    "hop-nxdomain": "203.0.113.230",
    "hop-refused": "203.0.113.231",
    "hop-timeout": "203.0.113.232",
    "hop-reset": "203.0.113.233",
    "hop-eof": "203.0.113.234",
}
# Virtual hosts on demand (benchmarks: 1,000 distinct URLs), names site<N>.bench.didban.test.
BENCH_ADDRS: Final = tuple(f"203.0.113.{i}" for i in range(200, 216))
BENCH_DOMAIN: Final = "bench.didban.test"

# Public resolvers: name -> (addresses, hostnames served by DoT/DoH certificates).
# Plain DNS on udp/tcp 53, DoT on 853, DoH on 443 at /dns-query (RFC 8484).
PUBLIC_RESOLVERS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "google": (("198.51.100.8", "198.51.100.9"), ("dns.google",)),
    "cloudflare": (
        ("198.51.100.1", "198.51.100.2"),
        ("cloudflare-dns.com", "mozilla.cloudflare-dns.com", "one.one.one.one"),
    ),
    "quad9": (("198.51.100.19",), ("dns.quad9.net",)),
}
DEFAULT_UDP_RESOLVER: Final = "198.51.100.8"
DEFAULT_DOH_URL: Final = "https://dns.google/dns-query"

# --- control (unfiltered vantage) -------------------------------------------------------
CONTROL_ADDR: Final = "198.51.100.200"
CONTROL_URL: Final = "http://198.51.100.200/"

# --- who owns which address (the lab's own IP -> ASN/country mapping) ------------------
# Services: id -> (asn, cc, organisation), modelled on the real operators.
SERVICE_OWNERS: Final[dict[str, tuple[int, str, str]]] = {
    "instagram": (32934, "US", "Facebook, Inc."),
    "telegram": (62041, "GB", "Telegram Messenger Inc"),
    "signal": (16509, "US", "Amazon.com, Inc."),
    "whatsapp": (32934, "US", "Facebook, Inc."),
    "facebook": (32934, "US", "Facebook, Inc."),
    "twitter": (13414, "US", "Twitter Inc."),
    "youtube": (15169, "US", "Google LLC"),
    "flickr": (16509, "US", "Amazon.com, Inc."),
    "cloob": (24940, "DE", "Hetzner Online GmbH"),
    "gmail": (15169, "US", "Google LLC"),
    "yahoomail": (36646, "US", "Yahoo"),
    "tabnak": (24940, "DE", "Hetzner Online GmbH"),
    "wikipedia": (14907, "US", "Wikimedia Foundation Inc."),
    "bbcpersian": (2818, "GB", "BBC"),
    "digikala": (58224, "IR", "Iran Telecommunication Company PJS"),
    "aparat": (58224, "IR", "Iran Telecommunication Company PJS"),
}


# Organisations of the app endpoints' ASes that no catalog service owns.
_APP_ORGS: Final[dict[int, tuple[str, str]]] = {
    15169: ("US", "Google LLC"),
    59930: ("GB", "Telegram Messenger Inc"),
    62014: ("GB", "Telegram Messenger Inc"),
    62041: ("GB", "Telegram Messenger Inc"),
}
APP_HOSTING: Final = (64503, "NL", "didban lab app hosting")


@lru_cache(maxsize=1)
def _app_plan() -> tuple[dict[str, str], tuple[tuple[str, str, str], ...]]:
    """(catalog address -> lab address, ((host, lab address, app id), ...))."""
    pool = iter(APP_POOL)
    literal: dict[str, str] = {}
    for _, e in apps.literal_addresses():
        if e.address and e.address not in literal:
            literal[e.address] = next(pool)
    hosts: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for app, _, name in apps.hostnames():
        if name in seen or catalog.service_for_host(name) is not None:
            continue
        seen.add(name)
        hosts.append((name, next(pool), app.id))
    return literal, tuple(hosts)


def app_addresses() -> dict[str, str]:
    """Every catalog address of an app endpoint -> the lab address that stands in for it."""
    return dict(_app_plan()[0])


def app_hosts() -> tuple[tuple[str, str, str], ...]:
    """(host, lab address, app id) for the app host names no catalog service owns."""
    return _app_plan()[1]


def app_endpoint_addresses(app_id: str) -> tuple[str, ...]:
    """The lab addresses of an app's own endpoints (its literal addresses, its own hosts)."""
    literal, hosts = _app_plan()
    app = apps.by_id(app_id)
    out = [literal[e.address] for e in app.endpoints if e.address]
    out += [addr for _, addr, owner in hosts if owner == app_id]
    return tuple(dict.fromkeys(out))


def service_addresses(service_id: str) -> tuple[str, ...]:
    """A service's addresses: its web addresses, then those of its apps' own endpoints
    (``service:telegram`` is Telegram's web servers and its data centres)."""
    own = {**SERVICE_ADDRS, **DOMESTIC_SITES}[service_id]
    extra = [a for app in apps.apps() if app.service == service_id
             for a in app_endpoint_addresses(app.id)]  # fmt: skip
    return tuple(dict.fromkeys([*own, *extra]))


def asn_map() -> tuple[tuple[str, int, str, str], ...]:
    """(cidr, asn, cc, org) rows: the lab's own IP -> ASN/country table for the probe."""
    rows: list[tuple[str, int, str, str]] = [
        ("192.0.2.0/30", 197207, "IR", "Mobile Communication Company of Iran PLC (lab)"),
        ("192.0.2.32/27", 58224, "IR", "Iran Telecommunication Company PJS (lab)"),
        ("10.10.34.0/24", 0, "IR", "Iranian national blockpage (lab)"),
        ("203.0.113.64/26", 64502, "NL", "didban lab hosting (lab)"),
        ("203.0.113.224/28", 64510, "NL", "didban lab cases hosting (lab)"),
        ("203.0.113.192/27", 64500, "NL", "didban bench hosting (lab)"),
        ("198.51.100.0/29", 13335, "US", "Cloudflare, Inc. (lab)"),
        ("198.51.100.8/30", 15169, "US", "Google LLC (lab)"),
        ("198.51.100.16/29", 19281, "CH", "Quad9 (lab)"),
        ("198.51.100.200/32", 64501, "NL", "didban control vantage (lab)"),
    ]
    for sid, addrs in {**SERVICE_ADDRS, **DOMESTIC_SITES}.items():
        asn, cc, org = SERVICE_OWNERS[sid]
        rows.extend((f"{a}/32", asn, cc, f"{org} (lab)") for a in addrs)
    literal, hosts = _app_plan()
    for app, e in apps.literal_addresses():
        rows.append((f"{literal[str(e.address)]}/32", *_app_owner(app.service, e.asn or app.asn)))
    for host, addr, app_id in hosts:
        app = apps.by_id(app_id)
        own = next((e.asn for e in app.endpoints if e.hostname == host), None)
        rows.append((f"{addr}/32", *_app_owner(app.service, own or app.asn)))
    return tuple(rows)


def _app_owner(service: str | None, asn: int | None) -> tuple[int, str, str]:
    """(asn, cc, org) of an app endpoint's lab address: its own AS, else the lab's."""
    if asn is None:
        asn_, cc, org = APP_HOSTING
        return asn_, cc, f"{org} (lab)"
    if service is not None and SERVICE_OWNERS[service][0] == asn:
        _, cc, org = SERVICE_OWNERS[service]
    else:
        cc, org = _APP_ORGS.get(asn, APP_HOSTING[1:])
    return asn, cc, f"{org} (lab)"


PROBE_CC: Final = "IR"
PROBE_ASN: Final = "AS197207"
PROBE_NETWORK_NAME: Final = "Mobile Communication Company of Iran PLC (lab)"

# Where a running lab keeps its state (descriptor, CA, pids, censor log).
RUN_DIR: Final = "/run/didban/labs"
CURRENT_LINK: Final = "/run/didban/current-lab"
