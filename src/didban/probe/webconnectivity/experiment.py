"""The ``web_connectivity`` experiment: every DNS, TCP, TLS and HTTP step for one URL.

Follows OONI Web Connectivity v0.5 "LTE" (ooni-methodology.md §3.4); each step is a flow
of its own in this package, composing ``didban.net`` primitives:

1. ``dnsresolvers`` — the system resolver, one UDP resolver, DoH, in parallel;
2. ``endpoints`` — TCP (and TLS) to every address, as soon as its resolver answered;
3. ``control`` — the test helper, once the system resolver and DoH have answered, in
   parallel with everything below;
4. ``fetch`` (and ``redirects``) — the page on the best working connection, then every
   redirect hop;
5. ``quic`` — HTTP/3 for hosts the catalog marks http3 or that advertise ``h3``.

The experiment records; it never judges: ``blocking``, ``accessible`` and the ``*_match``
keys stay null for ``didban analyze``. The whole URL is bounded by a deadline; whatever was
not finished by then is recorded as ``generic_timeout_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from didban.control.client import HelperSession
from didban.model import failures
from didban.model.ooni import WEB_CONNECTIVITY_EXTENSIONS, Measurement, WebConnectivityTestKeys
from didban.net import dns
from didban.net.stream import format_address
from didban.net.trace import EventLog
from didban.probe import envelope, slot
from didban.probe.config import ProbeConfig
from didban.probe.envelope import ProbeIdentity
from didban.probe.lists import ListEntry
from didban.probe.webconnectivity import control, dnsresolvers, endpoints, fetch, quic
from didban.probe.webconnectivity.state import SYSTEM, State, Target

TEST_NAME = "web_connectivity"


class WebConnectivity:
    """One configured experiment instance, shared by every URL of a run."""

    test_name = TEST_NAME

    def __init__(
        self,
        config: ProbeConfig,
        identity: ProbeIdentity,
        *,
        test_start: Any = None,
        report_id: str | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.test_start = test_start or envelope.utcnow()
        self.report_id = report_id or envelope.new_report_id(
            TEST_NAME, identity.probe_cc, identity.probe_asn, self.test_start
        )
        self.test_version = envelope.WEB_CONNECTIVITY_VERSION
        # what the run shares between URLs: one multiplexed DoH connection, kept-alive
        # connections to the helper
        self._doh_session: dns.DoHSession | None = None
        self._helper: HelperSession | None = None

    def close(self) -> None:
        """Release what the run shared between URLs."""
        if self._doh_session is not None:
            self._doh_session.close()
            self._doh_session = None
        if self._helper is not None:
            self._helper.close()
            self._helper = None

    def _doh(self) -> dns.DoHSession | None:
        cfg = self.config
        bootstrap = cfg.doh_address()
        if not cfg.doh_url or bootstrap is None:
            return None
        if self._doh_session is None:
            self._doh_session = dns.DoHSession(cfg.doh_url, bootstrap, ca_file=cfg.ca_file)
        return self._doh_session

    def _helper_session(self) -> HelperSession:
        cfg = self.config
        assert cfg.control_url is not None
        if self._helper is None or self._helper.url != cfg.control_url:
            self._helper = HelperSession(cfg.control_url, ca_file=cfg.ca_file)
        return self._helper

    async def measure(self, entry: ListEntry, deadline: float = 60.0) -> Measurement:
        """The complete measurement of ``entry.url``; never raises for network failures."""
        started_wall = envelope.utcnow()
        t_start = time.monotonic()
        st = State(WebConnectivityTestKeys(), EventLog())
        work = asyncio.ensure_future(self._run(Target.parse(entry.url), st))
        try:
            async with asyncio.timeout(deadline):
                await asyncio.shield(work)
        except TimeoutError:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            self._mark_unfinished(st, failures.GENERIC_TIMEOUT)
        except asyncio.CancelledError:
            work.cancel()
            raise
        st.tk.network_events = list(st.log.events)
        return envelope.envelope(
            test_name=TEST_NAME,
            test_version=self.test_version,
            input_=entry.url,
            report_id=self.report_id,
            identity=self.identity,
            test_start=self.test_start,
            measurement_start=started_wall,
            runtime=time.monotonic() - t_start,
            test_keys=st.tk,
            extensions=WEB_CONNECTIVITY_EXTENSIONS,
            test_helpers=self._test_helpers(),
            options=self._options(),
            lab_profile=self.config.lab_profile,
        )

    async def _run(self, target: Target, st: State) -> None:
        """The pipeline: each step starts as soon as what it needs is known.

        Endpoint flows to the system resolver's addresses start when getaddrinfo answers;
        the control query when getaddrinfo and DoH have answered; flows to addresses only
        UDP or DoH gave start when those answer (UDP: its first reply); the fetch starts as
        soon as a system-resolver flow works, otherwise once every flow is done (then
        preferring UDP, then DoH addresses). When all of that is done and only the UDP
        lookup is still listening for late replies (500 ms after its first), the runner's
        concurrency slot is given back (``slot.release``) for the rest of that wait.
        """
        cfg = self.config
        pending: list[asyncio.Future[Any]] = []

        def start(aw: Awaitable[Any]) -> asyncio.Future[Any]:
            fut: asyncio.Future[Any] = asyncio.ensure_future(aw)
            pending.append(fut)
            return fut

        try:
            if _is_ip(target.host):
                st.addrs[target.host] = {SYSTEM}
                st.system_done = True  # nothing to resolve
                system_t = start(asyncio.sleep(0))
                udp_t = start(asyncio.sleep(0))
                doh_t = start(asyncio.sleep(0))
                st.udp_answered.set()
            else:
                system_t = start(dnsresolvers.system(target, cfg, st))
                udp_t = start(dnsresolvers.udp(target, cfg, st))
                doh_t = start(dnsresolvers.doh(target, cfg, self._doh(), st))

            await system_t
            n_before = len(st.endpoints)
            flows_t = [start(f) for f in endpoints.start(target, cfg, st)]
            # the fetch waits for the flows to the system resolver's addresses only: an
            # injected UDP (or DoH) answer that came first must not hold it back
            system_flows_t = [
                t
                for t, e in zip(flows_t, st.endpoints[n_before:], strict=True)
                if SYSTEM in e.origins
            ]

            async def control_when_ready() -> None:
                await doh_t
                await control.query(target, cfg, self._helper_session, st)

            control_t = start(control_when_ready())

            http_t: asyncio.Future[Any] | None = None
            if system_flows_t:
                await asyncio.gather(*system_flows_t)
                if any(e.ok for e in st.endpoints if not e.ip_check and SYSTEM in e.origins):
                    http_t = start(fetch.fetch(target, cfg, st))
            await asyncio.gather(st.udp_answered.wait(), doh_t)
            if udp_t.done():
                udp_t.result()  # a lookup that failed outright (not a DNS failure) fails now
            more = endpoints.start(target, cfg, st)
            await asyncio.gather(*flows_t, *(start(f) for f in more))
            if http_t is None:
                http_t = start(fetch.fetch(target, cfg, st))
            final = await http_t
            st.http_done = True
            why = quic.reason(target, final) if cfg.quic else None
            if why is not None:
                await quic.attempt(target, cfg, st, why)
            await control_t
            slot.release()  # what is left is listening for late UDP replies
            await udp_t
        except BaseException:
            for fut in pending:
                fut.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        finally:
            for e in st.endpoints:  # connections no fetch used (deadline, cancellation)
                if e.stream is not None:
                    e.stream.close()
                    e.stream = None
        if st.tk.control is None and st.tk.control_failure is None:
            st.tk.control_failure = failures.unknown("control query did not run")

    def _mark_unfinished(self, st: State, failure: str) -> None:
        tk = st.tk
        # dns_experiment_failure is the system resolver's (v0.4): set when it never answered,
        # whatever the UDP and DoH lookups recorded meanwhile
        if not st.system_done and tk.dns_experiment_failure is None:
            tk.dns_experiment_failure = failure
        # also when the deadline fell during a later redirect hop: its request is not in
        # ``requests`` (nor is any hop's that failed before HTTP), the failure says why
        if not st.http_done and tk.http_experiment_failure is None:
            tk.http_experiment_failure = failure
        if not st.control_done and tk.control is None and tk.control_failure is None:
            tk.control_failure = failure

    def _test_helpers(self) -> dict[str, Any]:
        url = self.config.control_url
        if not url:
            return {}
        return {"backend": {"address": url, "type": urlsplit(url).scheme}}

    def _options(self) -> list[str]:
        cfg = self.config
        opts = [f"resolver={format_address(*cfg.udp_resolver)}"]
        if cfg.doh_url:
            opts.append(f"doh={cfg.doh_url}")
        return opts


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
