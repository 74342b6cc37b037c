"""Step 2, the endpoint flows (OONI LTE ``cleartextflow.go``, ``secureflow.go``): to every
resolved address, in parallel, TCP to the URL's port and for https a TLS handshake with
SNI = the URL host; for http URLs without an explicit port also TCP+TLS to :443, to check
the addresses are genuine (OONI extension E001, tag ``x_didban_ip_check``). Flows to
system-resolver addresses carry ``classic``. A working connection stays open for the
fetch until the fetch has started (it then uses the best one)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from didban.net import tcp, tls
from didban.probe.config import ProbeConfig
from didban.probe.webconnectivity.state import SYSTEM, Endpoint, State, Target


def start(target: Target, cfg: ProbeConfig, st: State) -> list[Coroutine[Any, Any, None]]:
    """Flows to every address that has none yet (registered in ``st``), to be awaited."""
    have = {e.ip for e in st.endpoints}
    new: list[Endpoint] = []
    for ip, origins in st.addrs.items():
        if ip in have:
            continue
        new.append(Endpoint(ip, target.port, origins, tls=target.scheme == "https"))
        if target.scheme == "http" and not target.explicit_port:
            new.append(Endpoint(ip, 443, origins, tls=True, ip_check=True))
    st.endpoints.extend(new)
    return [measure(e, target, cfg, st) for e in new]


def tags(endpoint: Endpoint) -> list[str]:
    out = ["depth=0", "fetch_body=false"]
    if SYSTEM in endpoint.origins and not endpoint.ip_check:
        out.insert(0, "classic")
    if endpoint.tls:
        out.append("tcptls_experiment")
    if endpoint.ip_check:
        out.append("x_didban_ip_check")
    return out


async def measure(endpoint: Endpoint, target: Target, cfg: ProbeConfig, st: State) -> None:
    """TCP (and TLS) to one endpoint, recorded in ``tcp_connect``/``tls_handshakes``."""
    endpoint.tracer = st.log.flow(tags(endpoint))
    connected = await tcp.connect(
        endpoint.ip, endpoint.port, tracer=endpoint.tracer, timeout=cfg.tcp_timeout
    )
    endpoint.tcp = connected.record
    st.tk.tcp_connect.append(connected.record)
    if connected.stream is None:
        return
    if not endpoint.tls:
        if endpoint.ip_check or st.http_started:
            connected.stream.close()
        else:
            endpoint.stream = connected.stream
        return
    hs = await tls.handshake(
        connected.stream, server_name=target.host, ca_file=cfg.ca_file, timeout=cfg.tls_timeout
    )
    endpoint.handshake = hs.record
    st.tk.tls_handshakes.append(hs.record)
    if hs.stream is not None:
        if endpoint.ip_check or st.http_started:
            hs.stream.close()
        else:
            endpoint.stream = hs.stream
