"""``vanilla_tor`` (OONI ts-016) and ``torsf`` (ts-030): a tor bootstrap, plain or over
Snowflake, measured as OONI measures it — progress, time, failure — with Debian's ``tor``
and ``snowflake-client`` (:mod:`didban.probe.circumvention.torclient`).

torsf starts tor with ``UseBridges 1``, ``ClientTransportPlugin snowflake exec
/usr/bin/snowflake-client -url BROKER -front FRONT -ice ICE -log FILE`` and the Snowflake
bridge line (the catalog's Tor Browser defaults; in the lab, the lab's broker stand-in and
bridge). The rendezvous is domain-fronted (``rendezvous_method`` ``domain_fronting``).
Timeouts are OONI's (200 s, 600 s) unless the run sets a shorter one (the lab: 30 s).
"""

from __future__ import annotations

import asyncio
from typing import Final

from didban.data import circumvention
from didban.model.oonicircumvention import TorBootstrapKeys, TorSnowflakeKeys
from didban.net import tcp
from didban.probe.apps import flows
from didban.probe.apps.flows import Context
from didban.probe.circumvention import torclient
from didban.probe.circumvention.base import TunnelExperiment
from didban.probe.circumvention.process import ClientError, ClientProcess, check_addresses
from didban.probe.lists import ListEntry

SNOWFLAKE_CLIENT: Final = "/usr/bin/snowflake-client"


class VanillaTor(TunnelExperiment):
    test_name = "vanilla_tor"
    test_version = "0.3.0-didban.1"
    ooni_timeout = 200.0

    def new_keys(self) -> TorBootstrapKeys:
        return TorBootstrapKeys()

    def plan(self) -> torclient.Bootstrap:
        lab = self.config.circumvention
        return torclient.lab_network(lab.tor) if lab is not None else torclient.public_network()

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        keys = ctx.test_keys
        async with ClientProcess("tor", ctx.log.now) as client:
            await torclient.run(keys, self.plan(), self.timeout(self.deadline), client)

    def unfinished(self, ctx: Context) -> None:
        keys = ctx.test_keys
        if not keys.success and keys.failure is None:
            keys.failure = "generic_timeout_error"
            keys.error = "timeout-reached"


class TorSnowflake(VanillaTor):
    test_name = "torsf"
    test_version = "0.5.0-didban.1"
    ooni_timeout = 600.0

    def new_keys(self) -> TorSnowflakeKeys:
        return TorSnowflakeKeys()

    def plan(self) -> torclient.Bootstrap:
        plan = super().plan()
        lab = self.config.circumvention
        if lab is not None:
            url, front, ice, bridge = (
                lab.snowflake.broker_url,
                lab.snowflake.front,
                lab.snowflake.ice,
                lab.snowflake.bridge,
            )
        else:
            tool = circumvention.by_id("torsf")
            rendezvous = tool.endpoint("broker").params
            url, front, ice = rendezvous["url"], rendezvous["front"], rendezvous["ice"]
            bridge = tool.of_kind("bridge")[0].bridge_line()
        plan.pt_log = "snowflake.log"  # relative: resolved in the client's directory
        plan.torrc += [
            "UseBridges 1",
            f"ClientTransportPlugin snowflake exec {SNOWFLAKE_CLIENT} -url {url} "
            f"-front {front} -ice {ice} -log {{dir}}/snowflake.log"
            + (" -unsafe-logging" if plan.testing else ""),  # addresses only in the lab
            f"Bridge {bridge}",
        ]
        return plan

    def front(self) -> str:
        lab = self.config.circumvention
        if lab is not None:
            return lab.snowflake.front
        return circumvention.by_id("torsf").endpoint("broker").params["front"]

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        keys = ctx.test_keys
        async with ClientProcess("torsf", ctx.log.now) as client:
            plan = self.plan()
            plan.torrc = [line.replace("{dir}", str(client.dir)) for line in plan.torrc]
            plan.pt_log = str(client.dir / "snowflake.log")
            await asyncio.gather(
                torclient.run(keys, plan, self.timeout(self.deadline), client),
                self.baseline(ctx, keys),
            )

    async def baseline(self, ctx: Context, keys: TorSnowflakeKeys) -> None:
        """The front domain's lookup and a TCP connect to it on 443 (tag
        ``x_didban_baseline``): can the rendezvous be reached at all?"""
        tags = ["x_didban_baseline"]
        found = await flows.lookup(ctx, self.front(), tags)
        keys.x_didban_queries = list(ctx.keys.queries)
        if not found.ok or not found.addresses:
            return
        try:
            check_addresses(found.addresses[:1])
        except ClientError:
            return
        connected = await tcp.connect(
            found.addresses[0], 443, tracer=ctx.log.flow(tags), timeout=self.config.tcp_timeout
        )
        keys.x_didban_baseline.append(connected.record)
        if connected.stream is not None:
            connected.stream.close()
