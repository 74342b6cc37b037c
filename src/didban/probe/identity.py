"""Where the probe is: country, ASN and network name from an offline table, never a service.

In lab mode the table is the lab descriptor's ``asn_map`` and the probe's own interface
address is looked up in it; ``--probe-cc``/``--probe-asn`` override; otherwise the probe
says ``ZZ``/``AS0`` (OONI's "unknown") and adds a note. No geolocation service is ever
contacted: asking one would reveal the probe to a third party.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

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


def resolve(
    *,
    addresses: Iterable[str] = (),
    table: Sequence[AsnRow] = (),
    cc: str | None = None,
    asn: str | None = None,
    network_name: str | None = None,
) -> ProbeIdentity:
    """The identity written in every envelope; overrides win over the table."""
    ident = ProbeIdentity()
    row = lookup(addresses, table) if table else None
    if row is not None:
        ident.probe_cc = row.cc.upper()
        ident.probe_asn = f"AS{row.asn}"
        ident.probe_network_name = row.org
    if cc is not None:
        ident.probe_cc = normalise_cc(cc)
    if asn is not None:
        ident.probe_asn = normalise_asn(asn)
    if network_name is not None:
        ident.probe_network_name = network_name
    if row is None and (cc is None or asn is None):
        ident.notes.append(
            "probe_cc/probe_asn unknown (ZZ/AS0 where not given): didban does not ask a "
            "geolocation service; pass --probe-cc and --probe-asn to set them"
        )
    return ident
