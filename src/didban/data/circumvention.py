"""The circumvention catalog (``circumvention.yaml``): the tools the circumvention
experiments measure and, for a real network, what each contacts — Tor's directory
authorities and Tor Browser's built-in bridges, the Snowflake rendezvous — each row with
its source. Tools with no public endpoint (a VPN or proxy needs its operator's keys) have
none: they are measured against the lab's servers (the lab descriptor's
``circumvention`` section).
"""

from __future__ import annotations

from functools import lru_cache

import msgspec
import yaml

from didban.data import path


class ToolEndpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One thing a tool contacts: a directory authority, a bridge, a rendezvous, a relay."""

    id: str
    kind: str
    source: str
    address: str | None = None
    host: str | None = None
    or_port: int | None = None
    dir_port: int | None = None
    port: int | None = None
    transport: str | None = None
    fingerprint: str | None = None
    v3ident: str | None = None
    params: dict[str, str] = msgspec.field(default_factory=dict)

    def bridge_line(self) -> str:
        """The torrc ``Bridge`` argument: ``TRANSPORT IP:PORT FINGERPRINT k=v ...``."""
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return " ".join(
            p for p in (self.transport, f"{self.address}:{self.port}", self.fingerprint, args) if p
        )


class Tool(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    name: str
    source: str
    endpoints: tuple[ToolEndpoint, ...]
    note: str | None = None
    url: str | None = None

    def of_kind(self, *kinds: str) -> tuple[ToolEndpoint, ...]:
        return tuple(e for e in self.endpoints if e.kind in kinds)

    def endpoint(self, endpoint_id: str) -> ToolEndpoint:
        for e in self.endpoints:
            if e.id == endpoint_id:
                return e
        raise KeyError(f"tool '{self.id}' has no endpoint '{endpoint_id}'")


class _Catalog(msgspec.Struct, forbid_unknown_fields=True):
    tools: list[Tool]


@lru_cache(maxsize=1)
def tools() -> tuple[Tool, ...]:
    """Every tool of the catalog, in file order."""
    raw = yaml.safe_load(path("circumvention.yaml").read_text(encoding="utf-8"))
    return tuple(msgspec.convert(raw, _Catalog).tools)


def by_id(tool_id: str) -> Tool:
    for t in tools():
        if t.id == tool_id:
            return t
    raise KeyError(f"no tool '{tool_id}' in the circumvention catalog")


def hostnames() -> tuple[tuple[str, str], ...]:
    """(name, endpoint id) of every name the tools' endpoints are reached by: the Snowflake
    broker, its front domain, the relay; the lab answers each with its stand-in."""
    out: list[tuple[str, str]] = []
    for t in tools():
        for e in t.endpoints:
            if e.host:
                out.append((e.host.lower(), e.id))
            front = e.params.get("front")
            if front:
                out.append((front.lower(), e.id))
    return tuple(out)
