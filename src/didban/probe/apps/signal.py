"""``signal`` (OONI ts-029, probe-cli 0.2.5): Signal's backends over verified HTTPS.

A ``GET`` of every backend URL of the catalog (cdsi, chat, sfu.voip, storage), the
certificate verified against the configured roots *and* the CA Signal pins
(``data/pins/signal.pem``; in the lab, the lab's "Signal CA"), and a lookup of
``uptime.signal.org`` that OONI records but does not judge. Any backend failing sets
``signal_backend_status`` to ``blocked`` and ``signal_backend_failure`` to the failure (the
first failing backend in catalog order, so that a run is reproducible).
"""

from __future__ import annotations

from didban.model.ooniapps import SignalTestKeys, URLGetterKeys
from didban.probe.apps import flows
from didban.probe.apps.flows import Context
from didban.probe.apps.roots import Roots
from didban.probe.experiment import Experiment
from didban.probe.lists import ListEntry

PARALLEL = 8


class Signal(Experiment):
    test_name = "signal"
    test_version = "0.2.5-didban.1"
    app_id = "signal"

    _roots: Roots | None = None

    def new_keys(self) -> URLGetterKeys:
        return SignalTestKeys()

    def roots(self) -> Roots:
        if self._roots is None:
            self._roots = Roots(self.app, self.config)
        return self._roots

    def close(self) -> None:
        if self._roots is not None:
            self._roots.close()

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        app = self.app
        keys = ctx.keys
        assert isinstance(keys, SignalTestKeys)
        ca_file = self.roots().ca_file()
        backends = app.of_kind("backend")
        jobs = [
            flows.http_request(ctx, str(b.url), [f"x_didban_endpoint={b.id}"], ca_file=ca_file)
            for b in backends
        ]
        jobs += [
            flows.lookup(ctx, str(d.host), [f"x_didban_endpoint={d.id}"])
            for d in app.of_kind("dns")
        ]
        outcomes = await flows.gather(PARALLEL, jobs)
        for outcome in outcomes[: len(backends)]:
            if not outcome.ok:
                keys.signal_backend_status = "blocked"
                keys.signal_backend_failure = outcome.failure
                break
