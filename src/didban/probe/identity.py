"""Where the probe is: country, ASN and network name from offline tables, never a service.

In lab mode the table is the lab descriptor's ``asn_map`` and the probe's own interface
address is looked up in it. On a real network the probe's *public* addresses — a global
address on one of its interfaces, and the address didban's control helper reports seeing
(``GET /x-didban/whoami`` on a helper the probe contacts anyway) — are looked up in the
shipped IP → ASN snapshot and IP → country table (``didban.data.ipasn``). ``--probe-cc``/
``--probe-asn`` override; when nothing is known the probe says ``ZZ``/``AS0`` (OONI's
"unknown") and adds a note. No geolocation service is ever contacted: asking one would
reveal the probe to a third party. The public addresses themselves are never written:
the caller adds them to the scrubber.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from didban.data import ipasn
from didban.model.addresses import parse_ip
from didban.model.labinfo import AsnRow
from didban.probe.envelope import ProbeIdentity

_ASN = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)
_CC = re.compile(r"^[A-Za-z]{2}$")


class IdentityError(ValueError):
    """A bad ``--probe-cc`` / ``--probe-asn`` value."""


def normalise_asn(value: str) -> str:
    m = _ASN.match(value.strip())
    if not m:
        raise IdentityError(f"--probe-asn {value!r} is not an AS number (e.g. AS197207)")
    return f"AS{int(m.group(1))}"


def normalise_cc(value: str) -> str:
    if not _CC.match(value.strip()):
        raise IdentityError(f"--probe-cc {value!r} is not a two-letter country code (e.g. IR)")
    return value.strip().upper()


def lookup(addresses: Iterable[str], table: Sequence[AsnRow]) -> AsnRow | None:
    """The most specific row of ``table`` containing one of ``addresses``."""
    best: tuple[int, AsnRow] | None = None
    for a in addresses:
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            continue
        for row in table:
            net = ipaddress.ip_network(row.cidr, strict=False)
            if (
                ip.version == net.version
                and ip in net
                and (best is None or net.prefixlen > best[0])
            ):
                best = (net.prefixlen, row)
    return best[1] if best else None


def public_addresses(candidates: Iterable[str]) -> list[str]:
    """The global (public) addresses among ``candidates``, in order, without repeats
    (IPv4-mapped IPv6 addresses as IPv4)."""
    out: list[str] = []
    for a in candidates:
        ip = parse_ip(a)
        if ip is None:
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        text = str(ip)
        if ip.is_global and text not in out:
            out.append(text)
    return out


def asks_whoami(control_url: str | None) -> bool:
    """Whether ``control_url`` may be didban's helper (OONI's ``*.th.ooni.org`` helpers
    have no ``whoami`` resource: they are not asked)."""
    if not control_url:
        return False
    host = (urlsplit(control_url).hostname or "").lower()
    return not host.endswith(".th.ooni.org")


async def discover_public(
    local: Iterable[str], control_url: str | None, ca_file: str | None = None
) -> list[str]:
    """The probe's public addresses: its global interface addresses, then the address
    didban's control helper reports seeing (one GET to a helper every measurement
    contacts anyway)."""
    from didban.control import client as control_client

    found = public_addresses(local)
    if asks_whoami(control_url):
        assert control_url is not None
        seen = await control_client.whoami(control_url, ca_file=ca_file)
        if seen is not None:
            found = public_addresses([*found, seen])
    return found


def resolve(
    *,
    addresses: Iterable[str] = (),
    table: Sequence[AsnRow] = (),
    public: Iterable[str] = (),
    cc: str | None = None,
    asn: str | None = None,
    network_name: str | None = None,
) -> ProbeIdentity:
    """The identity written in every envelope: ``addresses`` looked up in ``table`` (a
    lab's), else the first of ``public`` the offline snapshot knows; overrides win."""
    ident = ProbeIdentity()
    row = lookup(addresses, table) if table else None
    known = row is not None
    if row is not None:
        ident.probe_cc = row.cc.upper()
        ident.probe_asn = f"AS{row.asn}"
        ident.probe_network_name = row.org
    else:
        for ip in public_addresses(public):
            info = ipasn.default_db().lookup(ip)
            if info is not None:
                ident.probe_asn = f"AS{info.asn}"
                ident.probe_network_name = info.org
                ident.probe_cc = info.cc or ident.probe_cc
                known = True
                if info.cc is None and cc is None:
                    ident.notes.append(
                        f"probe_cc unknown (ZZ): the offline table has no country for "
                        f"{ident.probe_asn}'s address; pass --probe-cc to set it"
                    )
                break
    if cc is not None:
        ident.probe_cc = normalise_cc(cc)
    if asn is not None:
        ident.probe_asn = normalise_asn(asn)
    if network_name is not None:
        ident.probe_network_name = network_name
    if not known and (cc is None or asn is None):
        ident.notes.append(
            "probe_cc/probe_asn unknown (ZZ/AS0 where not given): didban does not ask a "
            "geolocation service, and neither an interface nor the control helper gave a "
            "public address to look up offline; pass --probe-cc and --probe-asn to set them"
        )
    return ident
