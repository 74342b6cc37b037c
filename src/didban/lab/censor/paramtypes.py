"""The value types of technique parameters that need more than a number or a fixed word:
DNS names, lab addresses, rates and durations.

Each is a ``str`` or ``float`` subclass whose ``parse`` checks and normalises one value
from a profile, raising ``ValueError`` with the sentence a user sees; ``decode_hook``
hands them to msgspec when a profile is decoded, and ``encode_hook`` turns them back into
plain values for ``profile.json``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar, Final

from didban.data import apps
from didban.lab import plan as address_plan

LAB_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "10.10.34.0/24")
)
_NAME_RE: Final = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?)+$")
_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_RATE_RE: Final = re.compile(r"^\d+(\.\d+)?(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$")
_DURATION_RE: Final = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


class Identifier(str):
    """A profile name or rule id: lowercase letters, digits, '.', '_' or '-'."""

    @classmethod
    def parse(cls, value: object) -> Identifier:
        text = _text(value)
        if not _ID_RE.match(text):
            raise ValueError(f"'{text}' must be lowercase letters, digits, '.', '_' or '-'")
        return cls(text)


class Text(str):
    """Free text that is not empty (a description, an HTTP keyword)."""

    @classmethod
    def parse(cls, value: object) -> Text:
        return cls(_text(value))


class DnsName(str):
    """A DNS name, lower-cased, without its final dot (rules match it as a suffix)."""

    @classmethod
    def parse(cls, value: object) -> DnsName:
        name = _text(value).lower().rstrip(".")
        if not _NAME_RE.match(name):
            raise ValueError(f"'{name}' is not a DNS name")
        return cls(name)


def addresses_of(ref: str) -> list[str]:
    """Expand an address parameter item: an IP/CIDR, ``service:<id>`` (its web addresses and
    its apps' endpoints), ``app:<id>`` (an app's own endpoints) or ``resolver:<name>``."""
    if ref.startswith("service:"):
        sid = ref.split(":", 1)[1]
        table = {**address_plan.SERVICE_ADDRS, **address_plan.DOMESTIC_SITES}
        if sid not in table:
            raise ValueError(f"unknown service '{sid}' (known: {', '.join(sorted(table))})")
        return list(address_plan.service_addresses(sid))
    if ref.startswith("app:"):
        app_id = ref.split(":", 1)[1]
        known_apps = [a.id for a in apps.apps()]
        if app_id not in known_apps:
            raise ValueError(f"unknown app '{app_id}' (known: {', '.join(known_apps)})")
        found = list(address_plan.app_endpoint_addresses(app_id))
        if not found:
            raise ValueError(f"app '{app_id}' has no endpoint of its own in the lab")
        return found
    if ref.startswith("resolver:"):
        rname = ref.split(":", 1)[1]
        if rname == "isp":
            return [address_plan.ISP_RESOLVER]
        if rname not in address_plan.PUBLIC_RESOLVERS:
            known = ", ".join(["isp", *sorted(address_plan.PUBLIC_RESOLVERS)])
            raise ValueError(f"unknown resolver '{rname}' (known: {known})")
        return list(address_plan.PUBLIC_RESOLVERS[rname][0])
    try:
        net = ipaddress.ip_network(ref, strict=True)
    except ValueError as e:
        raise ValueError(
            f"'{ref}' is not an IPv4 address, CIDR, service:<id>, app:<id> or resolver:<name>"
        ) from e
    if net.version != 4 or not any(net.subnet_of(lab) for lab in LAB_NETWORKS):  # type: ignore[arg-type]
        raise ValueError(
            f"'{ref}' is not a lab address (allowed: 192.0.2.0/24, 198.51.100.0/24, "
            "203.0.113.0/24, 10.10.34.0/24)"
        )
    return [str(net.network_address) if net.prefixlen == 32 else str(net)]


class LabAddresses(str):
    """One item of an address list: a lab IPv4 address or CIDR, ``service:<id>`` or
    ``resolver:<name>``; ``addresses`` is what it stands for."""

    addresses: tuple[str, ...]

    @classmethod
    def parse(cls, value: object) -> LabAddresses:
        text = _text(value)
        item = cls(text)
        item.addresses = tuple(addresses_of(text))
        return item


class LabAddress(str):
    """One lab IPv4 address (``service:<id>`` or ``resolver:<name>``: its first address)."""

    @classmethod
    def parse(cls, value: object) -> LabAddress:
        text = str(value)
        first = addresses_of(text)[0]
        if "/" in first:
            raise ValueError(f"'{text}' must be one address, not a network")
        return cls(first)


class Rate(str):
    """A tc rate such as ``1mbit`` or ``512kbit`` (lower-cased)."""

    @classmethod
    def parse(cls, value: object) -> Rate:
        text = str(value).strip().lower()
        if not _RATE_RE.match(text):
            raise ValueError(f"'{value}' is not a rate (e.g. 1mbit, 512kbit)")
        return cls(text)


def parse_duration(value: object) -> float:
    """Seconds from 3, 0.5, "3s", "500ms" or "2m"."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION_RE.match(str(value).strip())
    if not m:
        raise ValueError(f"'{value}' is not a duration (e.g. 3, 0.5, '3s', '500ms', '2m')")
    n = float(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60, None: n}[m.group(2)]


class Duration(float):
    """Seconds, written 3, 0.5, "3s", "500ms" or "2m"; subclasses bound it."""

    minimum: ClassVar[float | None] = None
    maximum: ClassVar[float | None] = None
    positive: ClassVar[bool] = False

    @classmethod
    def parse(cls, value: object) -> Duration:
        seconds = parse_duration(value)
        if cls.positive and seconds <= 0:
            raise ValueError("must be positive")
        if cls.minimum is not None and seconds < cls.minimum:
            raise ValueError(f"{seconds} is below the minimum {cls.minimum}")
        if cls.maximum is not None and seconds > cls.maximum:
            raise ValueError(f"{seconds} is above the maximum {cls.maximum}")
        return cls(seconds)


class Period(Duration):
    """A curfew's on or off time: more than zero seconds."""

    positive = True


class Penalty(Duration):
    """The protocol whitelister's penalty: 0.1 s to an hour."""

    minimum = 0.1
    maximum = 3600


_PARSED: Final = (Identifier, Text, DnsName, LabAddresses, LabAddress, Rate, Duration)


def decode_hook(kind: type, value: object) -> object:
    """msgspec's ``dec_hook``: the value types above parse themselves."""
    if issubclass(kind, _PARSED):
        return kind.parse(value)
    raise NotImplementedError(kind)


def encode_hook(value: object) -> object:
    """msgspec's ``enc_hook``: the plain value (an address item becomes its addresses)."""
    if isinstance(value, LabAddresses):
        return list(value.addresses)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value)
    raise NotImplementedError(type(value))
