"""Step 1, DNS, in parallel (OONI LTE ``dnsresolvers.go``): the system resolver
(getaddrinfo, tags ``classic``, ``depth=0``; its failure is ``dns_experiment_failure``),
one UDP resolver (late and duplicate replies kept 500 ms, also under ``x_do53``) and DoH
over the run's shared connection (its records under ``x_doh``). Every query goes to
``queries``; the addresses join the state with their origin."""

from __future__ import annotations

from typing import Any

import msgspec

from didban.model import failures
from didban.model.ooni import DNSDuplicateResponse, DNSQuery
from didban.net import dns
from didban.net.stream import format_address
from didban.probe.config import ProbeConfig
from didban.probe.webconnectivity.state import DOH, SYSTEM, UDP, State, Target

TAGS = ["depth=0"]


def _plain(obj: Any) -> Any:
    return msgspec.to_builtins(obj)


async def system(target: Target, cfg: ProbeConfig, st: State) -> None:
    """The system resolver: the addresses a user of this network gets."""
    tracer = st.log.flow(["classic", *TAGS])
    r = await dns.System(cfg.dns_timeout).resolve(target.host, tracer=tracer)
    st.tk.queries.append(r.query)
    st.tk.dns_experiment_failure = r.failure
    st.system_done = True
    st.add_addresses(r.addrs, SYSTEM)


async def udp(target: Target, cfg: ProbeConfig, st: State) -> None:
    """The UDP resolver: its first reply is used at once, later ones are kept."""
    tk = st.tk
    answered: list[dns.DNSResult] = []
    duplicates: list[DNSDuplicateResponse] = []

    def answer(r: dns.DNSResult) -> None:  # the first reply (late ones may follow)
        answered.append(r)
        tk.queries.append(r.query)
        st.add_addresses(r.addrs, UDP)
        st.udp_answered.set()

    transport = dns.UDP(
        format_address(*cfg.udp_resolver),
        timeout=cfg.dns_timeout,
        wait_duplicates=cfg.duplicate_wait,
        on_answer=answer,
        on_duplicate=duplicates.append,
    )
    try:
        await transport.resolve(target.host, qtype="A", tracer=st.log.flow(TAGS))
    finally:
        # also when the URL's deadline cancels the lookup: its query (answered, or
        # generic_timeout_error) and the replies that came so far (an injected one
        # among them) are evidence
        st.udp_answered.set()
        tk.x_dns_duplicate_responses.extend(duplicates)
        if answered:
            tk.x_do53 = {
                "queries": [_plain(answered[0].query)],
                "duplicates": [_plain(d) for d in duplicates],
            }


async def doh(target: Target, cfg: ProbeConfig, session: dns.DoHSession | None, st: State) -> None:
    """DoH on the run's shared connection (``session``, for ``cfg``'s DoH server)."""
    tk = st.tk
    bootstrap = cfg.doh_address()
    if not cfg.doh_url:
        return
    if bootstrap is None:
        unreachable = DNSQuery(
            hostname=target.host,
            query_type="A",
            engine="doh",
            resolver_address=cfg.doh_url,
            failure=failures.unknown("no bootstrap address for the DoH server"),
            tags=list(TAGS),
        )
        st.doh["queries"].append(_plain(unreachable))
        tk.x_doh = st.doh
        return
    transport = dns.DoH(
        cfg.doh_url,
        bootstrap,
        ca_file=cfg.ca_file,
        timeout=cfg.dns_timeout,
        session=session,
    )
    r = await transport.resolve(target.host, qtype="A", tracer=st.log.flow(TAGS))
    tk.queries.append(r.query)
    st.doh["queries"].append(_plain(r.query))
    st.doh["tcp_connect"].extend(_plain(x) for x in r.tcp_connect)
    st.doh["tls_handshakes"].extend(_plain(x) for x in r.tls_handshakes)
    st.doh["requests"].extend(_plain(x) for x in r.requests)
    st.doh["x_didban_reused_connection"] = r.reused_connection
    tk.x_doh = st.doh
    st.add_addresses(r.addrs, DOH)
