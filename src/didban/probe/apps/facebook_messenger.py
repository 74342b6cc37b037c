"""``facebook_messenger`` (OONI ts-019, probe-cli 0.2.1): Messenger's endpoints resolve
inside Facebook's AS, and accept TCP connections.

For every endpoint of the catalog (``stun``, ``b_api``, ``b_graph``, ``edge``,
``external_cdn``, ``scontent_cdn``, ``star``): a lookup with the system resolver, every
address answer annotated with its AS; the endpoint is DNS-consistent when the lookup
succeeded and every address belongs to the catalog's AS (AS32934 — in the lab the lab's
"Facebook ASN" rows of its table). Then, for a consistent endpoint other than ``stun``
(a UDP service), a TCP connect on 443. A failed or inconsistent lookup sets
``facebook_<id>_dns_consistent`` false and ``facebook_dns_blocking`` true; a failed
connect sets ``facebook_<id>_reachable`` false and ``facebook_tcp_blocking`` true; both
blocking keys end false when nothing set them. ``facebook_stun_reachable`` stays null.
"""

from __future__ import annotations

from didban.data.apps import Endpoint
from didban.model import failures
from didban.model.ooni import DNSQuery
from didban.model.ooniapps import FacebookMessengerTestKeys, URLGetterKeys
from didban.probe.apps import flows
from didban.probe.apps.flows import Context, Outcome
from didban.probe.experiment import Experiment
from didban.probe.lists import ListEntry

PARALLEL = 8


def consistent(query: DNSQuery, asn: int) -> bool:
    """Every address answer of ``query`` is in ``asn`` (and there is one)."""
    addrs = [a for a in query.answers or () if a.ipv4 or a.ipv6]
    return bool(addrs) and all(a.asn == asn for a in addrs)


class FacebookMessenger(Experiment):
    test_name = "facebook_messenger"
    test_version = "0.2.1-didban.1"
    app_id = "facebook_messenger"

    def new_keys(self) -> URLGetterKeys:
        return FacebookMessengerTestKeys()

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        app = self.app
        keys = ctx.keys
        assert isinstance(keys, FacebookMessengerTestKeys)
        endpoints = app.of_kind("dns", "endpoint")
        await flows.gather(PARALLEL, [self._endpoint(ctx, keys, e, app.asn) for e in endpoints])
        if keys.facebook_dns_blocking is None:
            keys.facebook_dns_blocking = False
        if keys.facebook_tcp_blocking is None:
            keys.facebook_tcp_blocking = False

    async def _endpoint(
        self, ctx: Context, keys: FacebookMessengerTestKeys, e: Endpoint, asn: int | None
    ) -> Outcome:
        tags = [f"x_didban_endpoint={e.id}"]
        found = await flows.lookup(ctx, str(e.host), tags)
        query = found.query  # not keys.queries[-1]: the endpoints resolve side by side
        if not found.ok or query is None or asn is None or not consistent(query, asn):
            setattr(keys, f"facebook_{e.id}_dns_consistent", False)
            keys.facebook_dns_blocking = True
            return found
        setattr(keys, f"facebook_{e.id}_dns_consistent", True)
        if e.kind != "endpoint":
            return found
        reached = Outcome(failures.DNS_NO_ANSWER, flows.CONNECT)
        for port in e.ports:
            reached = await flows.connect(ctx, found.addresses, port, tags)
        setattr(keys, f"facebook_{e.id}_reachable", reached.ok)
        if not reached.ok:
            keys.facebook_tcp_blocking = True
        return reached
