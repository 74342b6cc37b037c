"""``stunreachability`` (OONI ts-025, probe-cli 0.4.0): one STUN Binding request (RFC 5389)
over UDP to ``stun://host:port``.

The host is resolved with the system resolver (``queries``), the request sent to its
first address (``didban.net.stun``: resent after 0.5, 1 and 2 s). ``failure`` is null
when a Binding success response came back; the response itself — it names the probe's
public address — is never recorded, only its size and time in ``network_events`` and,
as didban extensions, the round-trip time and the response type. At the same time the
test helper makes the same transaction (didban's ``POST /x-didban/stun``), recorded as
``x_didban_control``: a server that answers the control but not the probe is blocked.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from didban.control import client as control
from didban.data import apps
from didban.model import failures
from didban.model.ooniapps import (
    STUN_EXTENSIONS,
    STUNControlResponse,
    StunReachabilityTestKeys,
)
from didban.net import stun
from didban.net.stream import format_address
from didban.probe.apps import flows
from didban.probe.apps.flows import Context
from didban.probe.experiment import Experiment, control_helpers
from didban.probe.lists import ListEntry

DEFAULT_PORT = 3478


def parse_input(text: str) -> tuple[str, int]:
    """(host, port) of ``stun://host[:port]``; ValueError with one sentence if not."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad STUN input {text!r}: {exc}") from None
    if parts.scheme != "stun" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"bad STUN input {text!r}: expected stun://host[:port]")
    return parts.hostname, port or DEFAULT_PORT


def default_inputs() -> list[str]:
    """``stun://host:port`` for every STUN server of the catalog."""
    app = apps.by_id("stunreachability")
    return [f"stun://{e.host}:{port}" for e in app.of_kind("stun") for port in e.ports[:1]]


class StunReachability(Experiment):
    test_name = "stunreachability"
    test_version = "0.4.0-didban.1"
    app_id = "stunreachability"
    extensions = STUN_EXTENSIONS
    takes_input = True

    def new_keys(self) -> StunReachabilityTestKeys:
        return StunReachabilityTestKeys()

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        keys = ctx.test_keys
        assert isinstance(keys, StunReachabilityTestKeys)
        host, port = parse_input(entry.url)
        keys.endpoint = format_address(host, port)
        if flows.is_ip(host):
            addresses = [ctx.address(host)]
        else:
            found = await flows.lookup(ctx, host, [])
            keys.queries = list(ctx.keys.queries)
            if not found.ok:
                keys.failure = found.failure
                await self._control(ctx, keys)
                return
            addresses = found.addresses
        result, _ = await asyncio.gather(
            stun.binding(addresses[0], port, tracer=ctx.log.flow([]), timeout=ctx.cfg.stun_timeout),
            self._control(ctx, keys),
        )
        keys.failure = result.failure
        keys.x_didban_rtt = result.rtt
        keys.x_didban_response_type = result.response.kind if result.response else None

    async def _control(self, ctx: Context, keys: StunReachabilityTestKeys) -> None:
        """The same transaction from the test helper (didban's ``/x-didban/stun``)."""
        if not ctx.cfg.control_url:
            keys.x_didban_control_failure = failures.unknown("no control helper configured")
            return
        res = await control.stun(
            ctx.cfg.control_url, keys.endpoint, ctx.cfg.control_timeout, ca_file=ctx.cfg.ca_file
        )
        if isinstance(res, STUNControlResponse):
            keys.x_didban_control = res
        else:
            keys.x_didban_control_failure = res

    def test_helpers(self) -> dict[str, Any]:
        return control_helpers(self.config)

    def unfinished(self, ctx: Context) -> None:
        keys = ctx.test_keys
        keys.queries = list(ctx.keys.queries)
        if keys.failure is None:
            keys.failure = failures.GENERIC_TIMEOUT
        if keys.x_didban_control is None and keys.x_didban_control_failure is None:
            keys.x_didban_control_failure = failures.GENERIC_TIMEOUT
