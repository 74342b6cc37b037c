"""``telegram`` (OONI ts-020, probe-cli 0.3.1): Telegram's data centres and Telegram Web.

1. For every data centre of the catalog (``apps.yaml``: the addresses Telegram Desktop
   uses), an HTTP ``POST /`` on port 80 and a plain-HTTP ``POST /`` on port 443 — the
   data centres speak HTTP there, not TLS.
2. ``GET https://web.telegram.org/`` (TLS verified, redirects followed).

Test keys as OONI defines them: ``telegram_tcp_blocking`` and ``telegram_http_blocking``
start true; a data centre that answers clears both, one that failed after connecting
clears ``telegram_tcp_blocking``; a failed web fetch sets ``telegram_web_status`` to
``blocked`` and ``telegram_web_failure`` to its failure.
"""

from __future__ import annotations

from didban.model.ooniapps import TelegramTestKeys, URLGetterKeys
from didban.probe.apps import flows
from didban.probe.apps.flows import Context, Outcome
from didban.probe.experiment import Experiment
from didban.probe.lists import ListEntry

PARALLEL = 8


def dc_url(address: str, port: int) -> str:
    return f"http://{address}/" if port == 80 else f"http://{address}:{port}/"


class Telegram(Experiment):
    test_name = "telegram"
    test_version = "0.3.1-didban.1"
    app_id = "telegram"

    def new_keys(self) -> URLGetterKeys:
        return TelegramTestKeys()

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        app = self.app
        keys = ctx.keys
        assert isinstance(keys, TelegramTestKeys)
        dcs = [(dc, port) for dc in app.of_kind("datacenter") for port in dc.ports if dc.address]
        web = app.of_kind("web")
        jobs = [
            flows.http_request(
                ctx, dc_url(str(dc.address), port), [f"x_didban_endpoint={dc.id}"], method="POST"
            )
            for dc, port in dcs
        ]
        jobs += [flows.http_request(ctx, str(w.url), [f"x_didban_endpoint={w.id}"]) for w in web]
        outcomes = await flows.gather(PARALLEL, jobs)
        for outcome in outcomes[: len(dcs)]:
            dc_result(keys, outcome)
        for outcome in outcomes[len(dcs) :]:
            if not outcome.ok:
                keys.telegram_web_status = "blocked"
                keys.telegram_web_failure = outcome.failure


def dc_result(keys: TelegramTestKeys, outcome: Outcome) -> None:
    """OONI's update for one data-centre POST."""
    if outcome.ok:
        keys.telegram_http_blocking = False
        keys.telegram_tcp_blocking = False
    elif outcome.failed_operation != flows.CONNECT:
        keys.telegram_tcp_blocking = False
