"""``tor`` (OONI ts-023, probe-cli 0.4.0): can Tor's directory authorities, relays and
bridges be reached from here?

Targets: every directory authority's ORPort (``or_port_dirauth``: a TLS handshake, no
verification, no SNI — OONI's handshake, not tor's own) and DirPort (``dir_port``: ``GET
/tor/status-vote/current/consensus.z``), every relay's ORPort (``or_port``), every obfs4
bridge (``obfs4``: a TCP connect to it, then the obfs4 handshake through Debian's
obfs4proxy, :mod:`didban.probe.circumvention.obfs4`). On a real network: the catalog's
directory authorities and Tor Browser's built-in bridges (OONI gets its list from its API);
in the lab: the lab network's authority, relay, exit and bridge. Each target is a
urlgetter-style record keyed by its address (a bridge by the SHA-256 of its line), with
OONI's ``summary`` and the per-protocol totals. Four targets at a time (OONI: two), so the
lab's five fit within a run's deadline even when all of them time out.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import ClassVar, Final

from didban.data import circumvention
from didban.model.labinfo import LabCircumvention
from didban.model.ooniapps import APP_EXTENSIONS, URLGetterKeys
from didban.model.oonicircumvention import TorKeys, TorSummary, TorTarget
from didban.net import http, tcp, tls
from didban.net.trace import EventLog
from didban.probe.apps.flows import Context
from didban.probe.circumvention import obfs4
from didban.probe.circumvention.base import TunnelExperiment
from didban.probe.circumvention.process import ClientError, check_addresses
from didban.probe.lists import ListEntry

PARALLEL: Final = 4
DIR_PATH: Final = "/tor/status-vote/current/consensus.z"
DIR_TIMEOUT: Final = 15.0
OBFS4_TIMEOUT: Final = 15.0
COUNTERS: Final = {
    "dir_port": ("dir_port_total", "dir_port_accessible"),
    "obfs4": ("obfs4_total", "obfs4_accessible"),
    "or_port_dirauth": ("or_port_dirauth_total", "or_port_dirauth_accessible"),
    "or_port": ("or_port_total", "or_port_accessible"),
}


@dataclass(frozen=True)
class Target:
    key: str
    protocol: str  # or_port_dirauth, dir_port, or_port, obfs4
    address: str
    port: int
    name: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


def _bridge(line: str, name: str | None) -> Target:
    """A target from a bridge line ``obfs4 IP:PORT FINGERPRINT k=v ...``."""
    _transport, endpoint, _fingerprint, *args = line.split()
    address, _, port = endpoint.rpartition(":")
    params = dict(a.split("=", 1) for a in args)
    key = hashlib.sha256(line.encode()).hexdigest()
    return Target(key, "obfs4", address, int(port), name, params)


def targets(lab: LabCircumvention | None) -> list[Target]:
    """The targets of this run: the lab network's, else the catalog's."""
    out: list[Target] = []
    if lab is not None:
        cfg_lab = lab
        for r in cfg_lab.tor.relays:
            if r.role == "authority":
                out.append(
                    Target(
                        f"{r.address}:{r.or_port}",
                        "or_port_dirauth",
                        r.address,
                        r.or_port,
                        r.nickname,
                    )
                )
                if r.dir_port:
                    out.append(
                        Target(
                            f"{r.address}:{r.dir_port}",
                            "dir_port",
                            r.address,
                            r.dir_port,
                            r.nickname,
                        )
                    )
            elif r.role in ("relay", "exit"):
                out.append(
                    Target(f"{r.address}:{r.or_port}", "or_port", r.address, r.or_port, r.nickname)
                )
        out.append(_bridge(cfg_lab.tor.obfs4_bridge, "bridge0"))
        return out
    tool = circumvention.by_id("tor")
    for a in tool.of_kind("dir_authority"):
        ip = str(a.address)
        out.append(Target(f"{ip}:{a.or_port}", "or_port_dirauth", ip, int(a.or_port or 0), a.id))
        out.append(Target(f"{ip}:{a.dir_port}", "dir_port", ip, int(a.dir_port or 0), a.id))
    for b in tool.of_kind("bridge"):
        if b.transport == "obfs4":
            out.append(_bridge(b.bridge_line(), b.id))
    return out


class Tor(TunnelExperiment):
    test_name = "tor"
    test_version = "0.4.0-didban.1"
    extensions: ClassVar[dict[str, int]] = dict(APP_EXTENSIONS)

    def new_keys(self) -> TorKeys:
        return TorKeys()

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        keys = ctx.test_keys
        assert isinstance(keys, TorKeys)
        chosen = targets(self.config.circumvention)
        sem = asyncio.Semaphore(PARALLEL)

        async def one(t: Target) -> None:
            async with sem:
                keys.targets[t.key] = await self.measure_target(ctx, t)

        await asyncio.gather(*(one(t) for t in chosen))
        keys.targets = {t.key: keys.targets[t.key] for t in chosen if t.key in keys.targets}
        totals(keys)

    async def measure_target(self, ctx: Context, t: Target) -> TorTarget:
        log = EventLog()
        log.origin = ctx.log.origin  # times from the measurement's start, as OONI's
        rec = URLGetterKeys()
        result = TorTarget(
            target_address=t.endpoint, target_name=t.name, target_protocol=t.protocol
        )
        try:
            check_addresses([t.address])
        except ClientError as exc:
            result.failure = f"unknown_failure: {exc}"
            return result
        flow = log.flow()
        if t.protocol in ("or_port", "or_port_dirauth"):
            connected, shook = await tls.connect_tls(
                t.address, t.port, server_name="", tracer=flow, alpn=(), verify_peer=False,
                tcp_timeout=self.config.tcp_timeout, tls_timeout=self.config.tls_timeout,
            )  # fmt: skip
            rec.tcp_connect.append(connected.record)
            if shook is not None:
                rec.tls_handshakes.append(shook.record)
                if shook.stream is not None:
                    shook.stream.close()
            result.failure = shook.failure if shook is not None else connected.failure
        elif t.protocol == "dir_port":
            options = http.FetchOptions(
                body_cap=256, timeout=DIR_TIMEOUT, tcp_timeout=self.config.tcp_timeout,
                max_redirects=0,
            )  # fmt: skip
            res = await http.fetch(
                f"http://{t.endpoint}{DIR_PATH}",
                resolver=_no_names,
                tracer=log.tagged(),
                options=options,
            )
            rec.requests, rec.tcp_connect = res.requests, res.tcp_connect
            result.failure = res.failure
        else:
            connected = await tcp.connect(
                t.address, t.port, tracer=flow, timeout=self.config.tcp_timeout
            )
            rec.tcp_connect.append(connected.record)
            if connected.stream is not None:
                connected.stream.close()
                done = await obfs4.handshake(t.address, t.port, t.params, OBFS4_TIMEOUT, flow)
                result.failure = done.failure
                result.x_didban_pt_log = done.log
            else:
                result.failure = connected.failure
        result.network_events = list(log.events)
        result.tcp_connect = rec.tcp_connect
        result.tls_handshakes = rec.tls_handshakes or None
        result.requests = rec.requests or None
        result.summary = summary(result)
        return result

    def unfinished(self, ctx: Context) -> None:
        totals(ctx.test_keys)


async def _no_names(name: str) -> list[str] | str:
    return "dns_no_answer"  # every target is an address


def summary(t: TorTarget) -> dict[str, TorSummary]:
    """OONI's ``summary`` (probe-cli ``fillSummary``): the connect's failure, and the
    handshake's for ORPorts and obfs4."""
    if not t.tcp_connect:
        return {}
    out = {"connect": TorSummary(t.tcp_connect[0].status.failure)}
    if t.target_protocol == "obfs4":
        out["handshake"] = TorSummary(t.failure)
    elif t.target_protocol in ("or_port", "or_port_dirauth") and t.tls_handshakes:
        out["handshake"] = TorSummary(t.tls_handshakes[0].failure)
    return out


def totals(keys: TorKeys) -> None:
    for name in COUNTERS.values():
        setattr(keys, name[0], 0)
        setattr(keys, name[1], 0)
    for t in keys.targets.values():
        counters = COUNTERS.get(t.target_protocol)
        if counters is None:
            continue
        total, accessible = counters
        setattr(keys, total, getattr(keys, total) + 1)
        if t.failure is None:
            setattr(keys, accessible, getattr(keys, accessible) + 1)
