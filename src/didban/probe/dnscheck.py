"""The ``dnscheck`` experiment: one domain against many resolvers and transports.

OONI's dnscheck (ts-028) measures one resolver URL per measurement; didban's puts every
resolver of the run into one measurement per domain so a reader sees at a glance which
transports return which answers. ``test_keys`` (documented in docs/probe.md):

* ``domain`` — the name queried;
* ``lookups`` — map ``"<transport>://<address>"`` (``udp://198.51.100.8:53``,
  ``tcp://…:53``, ``dot://…:853``, ``https://dns.google/dns-query``) → the lookup's
  ``queries`` (df-002; A and AAAA), ``x_dns_duplicate_responses`` (UDP replies after the
  first — DNS injection shows as two replies, the forged one first), the ``tcp_connect``,
  ``tls_handshakes`` and ``requests`` DoT/DoH made, and ``failure`` (the A query's);
* ``network_events`` — every event of the measurement (df-008);
* ``x_didban_resolvers`` — the resolver specifications, in order.

Like every experiment it records; it does not judge.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from didban.net import dns
from didban.net.trace import EventLog
from didban.probe import envelope
from didban.probe.envelope import ProbeIdentity

TEST_NAME = "dnscheck"
EXTENSIONS = {"dnst": 0, "netevents": 0, "tcpconnect": 0, "tlshandshake": 0, "httpt": 0}


@dataclass(frozen=True, slots=True)
class ResolverSpec:
    """One resolver to ask: transport, ``ip:port`` (or the DoH URL) and TLS server name."""

    transport: str
    address: str  # ip:port for udp/tcp/dot; the bootstrap ip:port for doh
    url: str = ""  # DoH URL
    server_name: str = ""  # DoT/DoH SNI

    @property
    def key(self) -> str:
        return self.url if self.transport == "doh" else f"{self.transport}://{self.address}"


class DNSCheck:
    test_name = TEST_NAME

    def __init__(
        self,
        resolvers: list[ResolverSpec],
        identity: ProbeIdentity,
        *,
        ca_file: str | None = None,
        timeout: float = 4.0,
        duplicate_wait: float = 0.5,
        qtypes: tuple[str, ...] = ("A", "AAAA"),
        lab_profile: str | None = None,
    ) -> None:
        self.resolvers = resolvers
        self.identity = identity
        self.ca_file = ca_file
        self.timeout = timeout
        self.duplicate_wait = duplicate_wait
        self.qtypes = qtypes
        self.lab_profile = lab_profile
        self.test_start = envelope.utcnow()
        self.report_id = envelope.new_report_id(
            TEST_NAME, identity.probe_cc, identity.probe_asn, self.test_start
        )

    def _transport(self, spec: ResolverSpec) -> dns.Transport:
        if spec.transport == "udp":
            return dns.UDP(spec.address, timeout=self.timeout, wait_duplicates=self.duplicate_wait)
        if spec.transport == "tcp":
            return dns.TCP(spec.address, timeout=self.timeout)
        if spec.transport == "dot":
            return dns.DoT(
                spec.address, spec.server_name, ca_file=self.ca_file, timeout=self.timeout
            )
        return dns.DoH(spec.url, spec.address, ca_file=self.ca_file, timeout=self.timeout)

    async def measure_domain(self, domain: str) -> msgspec.Struct:
        started = envelope.utcnow()
        t0 = time.monotonic()
        log = EventLog()

        async def one(spec: ResolverSpec) -> tuple[str, dict[str, Any]]:
            transport = self._transport(spec)
            tags = [f"x_didban_resolver={spec.key}"]
            results = await asyncio.gather(
                *(transport.resolve(domain, qtype=q, tracer=log.flow(tags)) for q in self.qtypes)
            )
            entry: dict[str, Any] = {
                "queries": [],
                "x_dns_duplicate_responses": [],
                "tcp_connect": [],
                "tls_handshakes": [],
                "requests": [],
                "failure": results[0].failure if results else None,
            }
            for r in results:
                entry["queries"].append(msgspec.to_builtins(r.query))
                entry["x_dns_duplicate_responses"].extend(
                    msgspec.to_builtins(d) for d in r.duplicates
                )
                entry["tcp_connect"].extend(msgspec.to_builtins(x) for x in r.tcp_connect)
                entry["tls_handshakes"].extend(msgspec.to_builtins(x) for x in r.tls_handshakes)
                entry["requests"].extend(msgspec.to_builtins(x) for x in r.requests)
            return spec.key, entry

        pairs = await asyncio.gather(*(one(s) for s in self.resolvers))
        tk = {
            "domain": domain,
            "lookups": dict(pairs),
            "network_events": [msgspec.to_builtins(e) for e in log.events],
            "x_didban_resolvers": [
                {
                    "transport": s.transport,
                    "address": s.address,
                    "url": s.url,
                    "server_name": s.server_name,
                }
                for s in self.resolvers
            ],
        }
        return envelope.envelope(
            test_name=TEST_NAME,
            test_version=envelope.DNSCHECK_VERSION,
            input_=domain,
            report_id=self.report_id,
            identity=self.identity,
            test_start=self.test_start,
            measurement_start=started,
            runtime=time.monotonic() - t0,
            test_keys=tk,
            extensions=EXTENSIONS,
            test_helpers={},
            options=[s.key for s in self.resolvers],
            lab_profile=self.lab_profile,
        )
