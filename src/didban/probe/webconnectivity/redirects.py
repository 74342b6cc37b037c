"""The hops after the first (OONI LTE ``redirects.go``): each redirect is a hop of its own
that resolves its host with the system resolver, connects to the first address that works
and sends the request. Every record of hop N — its lookup (in ``queries`` at once), its
connects, handshakes, request and network events — is tagged ``depth=N`` (and
``fetch_body=true``, ``x_didban_redirect``; ``classic`` when the chain started on a
system-resolver address; ``tcptls_experiment`` for an https hop), as OONI LTE tags them.
Which URL comes next, with which cookies, and when the chain stops, is
:mod:`didban.net.redirects`'s decision, the same as ``fetch``'s."""

from __future__ import annotations

from didban.net import dns, http, redirects
from didban.net.trace import Tracer
from didban.probe.config import ProbeConfig
from didban.probe.webconnectivity.state import State


class RedirectHops:
    """Makes hop N ≥ 1 of one measurement's chain. ``classic``: the chain started on a
    system-resolver address (its records then carry ``classic``)."""

    def __init__(self, cfg: ProbeConfig, st: State, options: http.FetchOptions, classic: bool):
        self.cfg = cfg
        self.st = st
        self.options = options
        self.depth = 0
        self.prefix = ["classic"] if classic else []

    def tracer(self, depth: int, https: bool = False) -> Tracer:
        """The tracer of hop ``depth``'s connections and request."""
        tags = [*self.prefix, f"depth={depth}", "fetch_body=true"]
        if https:
            tags.append("tcptls_experiment")
        return self.st.log.tagged([*tags, "x_didban_redirect"])

    async def _resolve(self, name: str) -> list[str] | str:
        tracer = self.st.log.flow(["classic", f"depth={self.depth}"])
        r = await dns.System(self.cfg.dns_timeout).resolve(name, tracer=tracer)
        self.st.tk.queries.append(r.query)
        return r.failure if r.failure else r.addrs

    async def hop(self, request: redirects.Request, headers: list[tuple[str, str]]) -> http.Hop:
        self.depth = request.hop
        return await http.fetch_hop(
            request,
            tracer=self.tracer(request.hop, request.url[:8].lower() == "https://"),
            resolver=self._resolve,
            options=self.options,
            headers=headers,
        )
