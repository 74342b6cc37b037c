"""``whatsapp`` (OONI ts-018, probe-cli 0.11.0): WhatsApp's endpoints, registration server
and web client.

1. Every endpoint of the catalog (``e1`` … ``e16.whatsapp.net``) resolved, then a TCP
   connect on 443 and on 5222; an endpoint whose two ports both fail is listed in
   ``whatsapp_endpoints_blocked``; ``whatsapp_endpoints_status`` is ``ok`` when any
   connect succeeded.
2. ``GET https://v.whatsapp.net/v2/register``: ``registration_server_status`` is
   ``blocked`` on any DNS, TCP, TLS or I/O failure (the HTTP status is not judged).
3. ``GET https://web.whatsapp.com/``: ``whatsapp_web_status`` likewise.

``whatsapp_endpoints_dns_inconsistent`` is OONI's legacy key, always empty.
"""

from __future__ import annotations

import asyncio

from didban.data.apps import Endpoint
from didban.model.ooniapps import URLGetterKeys, WhatsAppTestKeys
from didban.probe.apps import flows
from didban.probe.apps.flows import Context, Outcome
from didban.probe.experiment import Experiment
from didban.probe.lists import ListEntry

PARALLEL = 16


class WhatsApp(Experiment):
    test_name = "whatsapp"
    test_version = "0.11.0-didban.1"
    app_id = "whatsapp"

    def new_keys(self) -> URLGetterKeys:
        return WhatsAppTestKeys()

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        app = self.app
        keys = ctx.keys
        assert isinstance(keys, WhatsAppTestKeys)
        endpoints = app.of_kind("endpoint")
        pages = [(e, "registration") for e in app.of_kind("registration")]
        pages += [(e, "web") for e in app.of_kind("web")]
        jobs = [self._endpoint(ctx, e) for e in endpoints]
        jobs += [
            flows.http_request(ctx, str(e.url), [f"x_didban_endpoint={e.id}"]) for e, _ in pages
        ]
        outcomes = await flows.gather(PARALLEL, jobs)
        reached = False
        for e, outcome in zip(endpoints, outcomes, strict=False):
            if outcome.ok:
                reached = True
            else:
                keys.whatsapp_endpoints_blocked.append(str(e.host))
        keys.whatsapp_endpoints_status = "ok" if reached else "blocked"
        for (_, role), outcome in zip(pages, outcomes[len(endpoints) :], strict=True):
            if outcome.ok:
                continue
            if role == "registration":
                keys.registration_server_status = "blocked"
                keys.registration_server_failure = outcome.failure
            else:
                keys.whatsapp_web_status = "blocked"
                keys.whatsapp_web_failure = outcome.failure

    async def _endpoint(self, ctx: Context, endpoint: Endpoint) -> Outcome:
        """One endpoint: its lookup, then each port; ok when any port connected."""
        tags = [f"x_didban_endpoint={endpoint.id}"]
        found = await flows.lookup(ctx, str(endpoint.host), tags)
        if not found.ok:
            return found
        results = await asyncio.gather(
            *(flows.connect(ctx, found.addresses, port, tags) for port in endpoint.ports)
        )
        return next((r for r in results if r.ok), results[-1] if results else found)
