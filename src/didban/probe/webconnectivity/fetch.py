"""Step 4, the HTTP fetch, cleartext or secure (OONI LTE ``priority.go``): the page is
fetched on the connection of the first working endpoint flow, preferring system-resolver
addresses, then UDP, then DoH; that flow's records are re-tagged ``fetch_body=true`` and
the request is recorded with its transaction id (``depth=0``). Redirects follow
(``redirects.py``), each hop's records tagged with its depth. ``requests`` is newest first
and, as in OONI LTE, holds only the hops that sent a request: a hop that failed at DNS, TCP
or TLS leaves its lookup, connects and handshakes, and its failure in
``http_experiment_failure`` (also why a chain stopped: too many redirects, a ``Location``
didban cannot follow). When no flow worked no fetch is made (as in LTE): the failure is
then the best-ranked flow's and ``requests`` stays empty.
"""

from __future__ import annotations

from didban.model import failures
from didban.model.ooni import HTTPTransaction
from didban.net import http, redirects
from didban.net.stream import Stream
from didban.probe.config import ProbeConfig
from didban.probe.webconnectivity.redirects import RedirectHops
from didban.probe.webconnectivity.state import SYSTEM, Endpoint, State, Target


def options(cfg: ProbeConfig) -> http.FetchOptions:
    """How the probe fetches (every hop): OONI's headers, the run's roots and limits."""
    return http.FetchOptions(
        ca_file=cfg.ca_file,
        max_redirects=cfg.max_redirects,
        body_cap=cfg.body_cap,
        tcp_timeout=cfg.tcp_timeout,
        tls_timeout=cfg.tls_timeout,
        timeout=cfg.http_timeout,
    )


def _choose(target: Target, st: State) -> tuple[Endpoint, Stream] | None:
    """The best working flow and its connection (the others are closed), or None with
    the HTTP failure recorded."""
    tk = st.tk
    candidates = [e for e in st.endpoints if not e.ip_check]
    if not candidates:
        tk.http_experiment_failure = tk.dns_experiment_failure or failures.DNS_NO_ANSWER
        return None
    working = sorted((e for e in candidates if e.ok and e.stream is not None), key=lambda e: e.rank)
    if not working:
        # Like OONI LTE: no flow works, so no connection fetches the page; the failure
        # of the best-ranked flow (system-resolver addresses first) is the HTTP failure.
        best = min(candidates, key=lambda e: e.rank)
        tk.http_experiment_failure = best.failure or failures.unknown("no endpoint was measured")
        return None
    chosen = working[0]
    stream, chosen.stream = chosen.stream, None
    for e in st.endpoints:  # the other connections are not needed any more
        if e.stream is not None:
            e.stream.close()
            e.stream = None
    assert stream is not None
    return chosen, stream


async def fetch(target: Target, cfg: ProbeConfig, st: State) -> HTTPTransaction | None:
    """Fetch the page and follow its redirects; the final transaction (None: no fetch)."""
    tk = st.tk
    st.http_started = True
    picked = _choose(target, st)
    if picked is None:
        return None
    chosen, stream = picked
    classic = SYSTEM in chosen.origins
    for rec in (chosen.tcp, chosen.handshake):
        if rec is not None and rec.tags:
            rec.tags = ["fetch_body=true" if t == "fetch_body=false" else t for t in rec.tags]
    opts = options(cfg)
    later = RedirectHops(cfg, st, opts, classic)
    assert chosen.tracer is not None
    first_tracer = chosen.tracer.with_tags(
        [*(["classic"] if classic else []), "depth=0", "fetch_body=true"]
    )

    async def hop(request: redirects.Request, headers: list[tuple[str, str]]) -> http.Hop:
        if request.hop > 0:
            return await later.hop(request, headers)
        # the first hop, on the flow's own connection (as OONI LTE does), is recorded at
        # once: a deadline during the redirects keeps it
        tx, raw = await http.exchange(stream, target.url, tracer=first_tracer, options=opts)
        tk.requests = [tx]
        tk.http_experiment_failure = tx.failure
        if raw is not None:
            tk.x_didban_http_throughput = _rate(raw.throughput)
        return http.Hop(tx, raw)

    chain = await http.follow_redirects(redirects.Request(target.url), hop, options=opts)
    if len(chain.hops) > 1:
        tk.requests = [h.transaction for h in reversed(chain.hops) if h.sent]
        for h in chain.hops:
            tk.tcp_connect.extend(h.tcp_connect)
            tk.tls_handshakes.extend(h.tls_handshakes)
        # the rate of the last response after the first hop (None if none came)
        rest = http.Chain(hops=chain.hops[1:]).last_response
        tk.x_didban_http_throughput = _rate(rest.throughput if rest is not None else None)
    tk.http_experiment_failure = chain.failure
    return tk.requests[0] if tk.requests else None


def _rate(throughput: float | None) -> float | None:
    return round(throughput, 1) if throughput is not None else None
