"""What every experiment other than web_connectivity shares: one measurement per input
under a deadline, its event log and test keys, and the OONI envelope around them.

A subclass names its test (``test_name``, ``test_version``, the df-* ``extensions``),
makes its empty test keys (``new_keys``) and runs its flows (``run``), composing
:mod:`didban.probe.apps.flows` and :mod:`didban.net` primitives. Whatever the flows
recorded when the deadline passes is written, the unfinished steps marked by
``unfinished``; the runner (:mod:`didban.probe.runner`) calls ``measure`` per input and
``close`` at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from didban.data import apps
from didban.data.apps import App
from didban.model.ooni import Measurement
from didban.model.ooniapps import APP_EXTENSIONS, URLGetterKeys
from didban.net import dns
from didban.net.trace import EventLog
from didban.probe import envelope
from didban.probe.apps.flows import Context
from didban.probe.config import ProbeConfig
from didban.probe.envelope import ProbeIdentity
from didban.probe.lists import ListEntry


class Experiment:
    """One configured experiment, shared by every input of a run."""

    test_name: ClassVar[str]
    test_version: ClassVar[str]
    extensions: ClassVar[dict[str, int]] = APP_EXTENSIONS
    takes_input: ClassVar[bool] = False  # False: input is null (the IM tests)
    app_id: ClassVar[str | None] = None  # its row of the app catalog (data/apps.yaml)

    def __init__(
        self,
        config: ProbeConfig,
        identity: ProbeIdentity,
        *,
        resolver: dns.Transport | None = None,
        app: App | None = None,
        test_start: Any = None,
        report_id: str | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.resolver = resolver
        self._app = app
        self.test_start = test_start or envelope.utcnow()
        self.report_id = report_id or envelope.new_report_id(
            self.test_name, identity.probe_cc, identity.probe_asn, self.test_start
        )

    @property
    def app(self) -> App:
        """The app's catalog row (``app=`` replaces it: other endpoints, same test)."""
        if self._app is None:
            assert self.app_id is not None, f"{self.test_name} has no app"
            self._app = apps.by_id(self.app_id)
        return self._app

    def new_keys(self) -> Any:
        """The test keys before anything was measured (OONI's initial values). When they
        are not ``urlgetter`` keys, the flows record into a scratch set the experiment
        copies from (``ctx.keys``; the test's own keys are ``ctx.test_keys``)."""
        raise NotImplementedError

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        """The flows of one measurement, recording into ``ctx.keys``."""
        raise NotImplementedError

    def unfinished(self, ctx: Context) -> None:
        """Mark what the deadline cut short (default: nothing to mark)."""

    def options(self) -> list[str]:
        return []

    def close(self) -> None:
        """Release what the run shared between inputs."""

    async def measure(self, entry: ListEntry, deadline: float = 60.0) -> Measurement:
        """The measurement of ``entry``; never raises for network failures."""
        started_wall = envelope.utcnow()
        t_start = time.monotonic()
        log = EventLog()
        keys = self.new_keys()
        recorder = keys if isinstance(keys, URLGetterKeys) else URLGetterKeys()
        ctx = Context(self.config, recorder, log, resolver=self.resolver, test_keys=keys)
        work = asyncio.ensure_future(self.run(ctx, entry))
        try:
            async with asyncio.timeout(min(deadline, self.config.app_timeout)):
                await asyncio.shield(work)
        except TimeoutError:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            self.unfinished(ctx)
        except asyncio.CancelledError:
            work.cancel()
            raise
        keys.network_events = list(log.events)
        return envelope.envelope(
            test_name=self.test_name,
            test_version=self.test_version,
            input_=entry.url if self.takes_input else None,
            report_id=self.report_id,
            identity=self.identity,
            test_start=self.test_start,
            measurement_start=started_wall,
            runtime=time.monotonic() - t_start,
            test_keys=keys,
            extensions=self.extensions,
            test_helpers=self.test_helpers(),
            options=self.options(),
            lab_profile=self.config.lab_profile,
        )

    def test_helpers(self) -> dict[str, Any]:
        return {}


def control_helpers(config: ProbeConfig) -> dict[str, Any]:
    """OONI's ``test_helpers`` entry for the configured control helper."""
    url = config.control_url
    if not url:
        return {}
    return {"backend": {"address": url, "type": urlsplit(url).scheme}}
