"""The HTTP/3 test (``didban run --test quic``): can this https target be reached over QUIC?

Written as OONI's ``urlgetter`` (ts-027) with ``HTTP3Enabled=true`` — OONI's own way to
fetch a URL over HTTP/3 — so OONI's pipeline reads the evidence where it expects it: the
QUIC handshake in ``tls_handshakes`` (``network: udp``), the HTTP/3 GET in ``requests``,
``failure``/``failed_operation`` for the QUIC fetch. A QUIC failure alone cannot tell a
blocked protocol from a blocked host or a server without HTTP/3, so beside it, in
parallel, didban records:

* a **baseline**: TCP and TLS (SNI = the host) to the same address on 443, in
  ``tcp_connect``/``tls_handshakes`` tagged ``x_didban_baseline`` — the host is reachable
  over TCP from here;
* the **control**: the test helper asked with ``x_quic_enabled`` (its QUIC handshakes to
  the host's addresses and its HTTP/3 GET, ``x_didban_control``) — HTTP/3 works from an
  unfiltered vantage point.

``analysis`` calls QUIC blocked when the QUIC handshake failed while both worked
(``quic.blocked``; docs/methodology.md). ``x_didban_http3_throughput`` is the HTTP/3
body's read rate (bytes/s), the control's is ``x_didban_control.http3_request``'s.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from didban.control.client import HelperSession
from didban.data import catalog
from didban.model import failures
from didban.model.ooni import THRequest, THResponse
from didban.model.ooniapps import HTTP3TestKeys, URLGetterKeys
from didban.net import quic, tcp, tls
from didban.net.httpwire import DEFAULT_HEADERS
from didban.net.stream import format_address
from didban.probe.apps import flows
from didban.probe.apps.flows import Context, Outcome
from didban.probe.experiment import Experiment, control_helpers
from didban.probe.lists import ListEntry

TAG_BASELINE = "x_didban_baseline"
TAG_QUIC = "x_didban_quic"


def wanted(entry: ListEntry, explicit: bool) -> bool:
    """Is ``entry`` an input of the HTTP/3 test? https URLs whose host the catalog marks
    ``http3`` (the real service offers it); with inputs given by hand, every https URL."""
    parts = urlsplit(entry.url)
    if parts.scheme != "https" or not parts.hostname:
        return False
    return explicit or catalog.offers_http3(parts.hostname)


class HTTP3(Experiment):
    test_name = "urlgetter"
    test_version = "0.2.0-didban.1"
    takes_input = True

    _helper: HelperSession | None = None

    def new_keys(self) -> URLGetterKeys:
        return HTTP3TestKeys()

    def options(self) -> list[str]:
        return ["HTTP3Enabled=true"]

    def test_helpers(self) -> dict[str, Any]:
        return control_helpers(self.config)

    def close(self) -> None:
        if self._helper is not None:
            self._helper.close()
            self._helper = None

    def helper(self) -> HelperSession:
        url = self.config.control_url
        assert url is not None
        if self._helper is None or self._helper.url != url:
            self._helper = HelperSession(url, ca_file=self.config.ca_file)
        return self._helper

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        keys = ctx.keys
        assert isinstance(keys, HTTP3TestKeys)
        url = entry.url
        host = urlsplit(url).hostname or ""
        port = urlsplit(url).port or 443
        if flows.is_ip(host):
            addresses = [ctx.address(host)]
        else:
            found = await flows.lookup(ctx, host, ["depth=0"])
            if not found.ok:
                keys.failure, keys.failed_operation = found.failure, found.failed_operation
                await self._control(ctx, keys, url, [])
                return
            addresses = [ip for ip in found.addresses if ":" not in ip] or found.addresses
        ip = addresses[0]
        keys.x_didban_quic_address = format_address(ip, port)
        sni = "" if flows.is_ip(host) else host
        h3, _, _ = await asyncio.gather(
            self._quic(ctx, keys, url, ip, port, sni),
            self._baseline(ctx, ip, port, sni),
            self._control(ctx, keys, url, addresses),
        )
        keys.failure, keys.failed_operation = h3.failure, h3.failed_operation

    async def _quic(
        self, ctx: Context, keys: HTTP3TestKeys, url: str, ip: str, port: int, sni: str
    ) -> Outcome:
        r = await quic.http3_get(
            url,
            address=format_address(ip, port),
            tracer=ctx.log.flow(["depth=0", TAG_QUIC]),
            server_name=sni,
            ca_file=ctx.cfg.ca_file,
            timeout=ctx.cfg.quic_timeout,
        )
        keys.tls_handshakes.append(r.handshake)
        if r.request is not None:
            keys.requests.append(r.request)
        keys.x_didban_http3_throughput = round(r.throughput, 1) if r.throughput else None
        if r.handshake.failure is not None:
            return Outcome(r.handshake.failure, flows.QUIC_HANDSHAKE)
        if r.failure is not None:
            return Outcome(r.failure, flows.HTTP_ROUND_TRIP)
        return Outcome()

    async def _baseline(self, ctx: Context, ip: str, port: int, sni: str) -> None:
        flow = ctx.log.flow(["depth=0", TAG_BASELINE])
        connected = await tcp.connect(ip, port, tracer=flow, timeout=ctx.cfg.tcp_timeout)
        ctx.keys.tcp_connect.append(connected.record)
        if connected.stream is None:
            return
        hs = await tls.handshake(
            connected.stream, server_name=sni, ca_file=ctx.cfg.ca_file, timeout=ctx.cfg.tls_timeout
        )
        ctx.keys.tls_handshakes.append(hs.record)
        if hs.stream is not None:
            hs.stream.close()

    async def _control(
        self, ctx: Context, keys: HTTP3TestKeys, url: str, addresses: list[str]
    ) -> None:
        if not ctx.cfg.control_url:
            keys.x_didban_control_failure = failures.unknown("no control helper configured")
            return
        req = THRequest(
            http_request=url,
            tcp_connect=[format_address(ip, 443) for ip in addresses],
            http_request_headers={k: [v] for k, v in DEFAULT_HEADERS},
            x_quic_enabled=True,
        )
        try:
            res = await self.helper().query(req, ctx.cfg.control_timeout)
        except asyncio.CancelledError:
            keys.x_didban_control_failure = failures.GENERIC_TIMEOUT
            raise
        if isinstance(res, THResponse):
            keys.x_didban_control = res
        else:
            keys.x_didban_control_failure = res

    def unfinished(self, ctx: Context) -> None:
        keys = ctx.keys
        assert isinstance(keys, HTTP3TestKeys)
        if keys.failure is None and not keys.requests:
            keys.failure = failures.GENERIC_TIMEOUT
        if keys.x_didban_control is None and keys.x_didban_control_failure is None:
            keys.x_didban_control_failure = failures.GENERIC_TIMEOUT
