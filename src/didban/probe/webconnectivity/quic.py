"""Step 5, QUIC/HTTP3 (``x_didban_quic``): for https hosts the catalog marks ``http3``
(reason ``catalog``) or whose final response advertised ``h3`` in Alt-Svc (reason
``alt-svc``), a QUIC handshake and HTTP/3 GET to the best-ranked address on UDP 443."""

from __future__ import annotations

from typing import Any

import msgspec

from didban.data import catalog
from didban.model.ooni import HTTPTransaction
from didban.net import quic
from didban.net.stream import format_address
from didban.probe.config import ProbeConfig
from didban.probe.webconnectivity.state import State, Target


def _catalog_h3(host: str) -> bool:
    sid = catalog.service_for_host(host)
    return bool(sid and catalog.by_id(sid).http3)


def _alt_svc_h3(tx: HTTPTransaction | None) -> bool:
    if tx is None or tx.response is None:
        return False
    return any(k.lower() == "alt-svc" and "h3" in v for k, v in tx.response.headers_list or [])


def reason(target: Target, final: HTTPTransaction | None) -> str | None:
    """Why HTTP/3 is tried for ``target`` (``catalog``, ``alt-svc``), or None."""
    if target.scheme != "https":
        return None
    if _catalog_h3(target.host):
        return "catalog"
    return "alt-svc" if _alt_svc_h3(final) else None


async def attempt(target: Target, cfg: ProbeConfig, st: State, why: str) -> None:
    """The HTTP/3 attempt, recorded in ``x_didban_quic``."""
    ranked = [e.ip for e in sorted(st.endpoints, key=lambda e: e.rank) if not e.ip_check]
    out: list[dict[str, Any]] = []
    for ip in list(dict.fromkeys(ranked))[:1]:
        address = format_address(ip, 443)
        r = await quic.http3_get(
            target.url,
            address=address,
            tracer=st.log.flow(["depth=0", "x_didban_quic"]),
            server_name=target.host,
            ca_file=cfg.ca_file,
            timeout=cfg.quic_timeout,
        )
        out.append(
            {
                "address": address,
                "reason": why,
                "failure": r.failure,
                "handshake": msgspec.to_builtins(r.handshake),
                "request": msgspec.to_builtins(r.request) if r.request is not None else None,
                "throughput": r.throughput,
            }
        )
    st.tk.x_didban_quic = out
