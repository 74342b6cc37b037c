"""Fetching a URL through a proxy, written as OONI ``urlgetter`` (ts-027) measurements:
``shadowsocks`` (through Debian's ``ss-local``), ``socks5`` and ``http_connect``.

The flow is OONI's urlgetter over a proxy dialer: a TCP connect to the proxy, the proxy's
negotiation (SOCKS5 CONNECT to the URL's host, which the proxy resolves; or HTTP
``CONNECT host:443``), then TLS (verified, SNI the host) and the HTTP request on that
tunnel (``didban.net.proxy``, ``tls``, ``http``). A refused negotiation is a failure of
the ``connect`` operation, as OONI's SOCKS dialer reports it. For Shadowsocks, ``ss-local``
(its config file, password included, in the client's own directory) is the SOCKS5 proxy
on loopback, and ``tunnel`` is ``shadowsocks``; ``socksproxy`` names the SOCKS5 proxy used
(OONI's key). didban adds ``x_didban_proxy`` (protocol, address, the negotiation's
failure) and, for Shadowsocks, a TCP connect to the server (``x_didban_baseline``: is the
server's address reachable, when what ss-local sends is not?). Redirects are not
followed (a second hop would not go through the proxy).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import ClassVar, Final
from urllib.parse import urlsplit

from didban.model import failures
from didban.model.ooniapps import APP_EXTENSIONS
from didban.model.oonicircumvention import ProxiedURLGetterKeys, ProxyInfo
from didban.net import errors, http, proxy, tcp, tls
from didban.net.stream import format_address, split_address
from didban.net.tcp import TCPStream
from didban.probe.apps.flows import CONNECT, HTTP_ROUND_TRIP, TLS_HANDSHAKE, Context
from didban.probe.circumvention.base import TunnelExperiment
from didban.probe.circumvention.process import ClientError, ClientProcess, check_addresses
from didban.probe.lists import ListEntry

SS_READY: Final = "listening at"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProxiedGet(TunnelExperiment):
    """A urlgetter through one proxy; subclasses say which and how to reach it."""

    test_name = "urlgetter"
    test_version = "0.2.0-didban.1"
    takes_input = True
    records_events = True
    extensions: ClassVar[dict[str, int]] = {**APP_EXTENSIONS, "tunnel": 0}
    protocol: ClassVar[str]

    def new_keys(self) -> ProxiedURLGetterKeys:
        return ProxiedURLGetterKeys()

    def proxy_address(self) -> str | None:
        raise NotImplementedError

    def options(self) -> list[str]:
        return [f"x_didban_proxy={self.protocol}"]

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        keys = ctx.test_keys
        assert isinstance(keys, ProxiedURLGetterKeys)
        address = self.proxy_address()
        if address is None:
            keys.failure = failures.unknown(f"no {self.protocol} server to measure")
            return
        keys.x_didban_proxy = ProxyInfo(protocol=self.protocol, address=address)
        await self.fetch(ctx, keys, entry.url, address)

    async def fetch(self, ctx: Context, keys: ProxiedURLGetterKeys, url: str, address: str) -> None:
        """The urlgetter flow through the proxy at ``address`` (``ip:port``)."""
        info = keys.x_didban_proxy
        assert info is not None
        ip, port = split_address(address, 1080)
        parts = urlsplit(url)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        target_port = parts.port or (443 if https else 80)
        flow = ctx.log.flow()
        connected = await tcp.connect(ip, port, tracer=flow, timeout=self.config.tcp_timeout)
        keys.tcp_connect.append(connected.record)
        if connected.stream is None:
            self._fail(keys, connected.failure or failures.GENERIC_TIMEOUT, CONNECT)
            return
        stream: TCPStream = connected.stream
        try:
            async with asyncio.timeout(self.config.tcp_timeout):
                if self.protocol == "http_connect":
                    await proxy.http_connect(stream, host, target_port)
                else:
                    await proxy.socks5_connect(stream, host, target_port)
        except proxy.ProxyError as exc:
            info.failure = exc.failure
        except TimeoutError:
            info.failure = failures.GENERIC_TIMEOUT
        except OSError as exc:
            info.failure = errors.classify(exc)
        if info.failure is not None:
            stream.close()
            self._fail(keys, info.failure, CONNECT)
            return
        conn = stream
        if https:
            shook = await tls.handshake(
                stream,
                server_name=host,
                ca_file=self.config.ca_file,
                timeout=self.config.tls_timeout,
            )
            keys.tls_handshakes.append(shook.record)
            if shook.stream is None:
                self._fail(keys, shook.failure or failures.SSL_FAILED_HANDSHAKE, TLS_HANDSHAKE)
                return
            conn = shook.stream  # type: ignore[assignment]

        async def no_names(_name: str) -> list[str] | str:
            return failures.DNS_NO_ANSWER

        options = http.FetchOptions(
            timeout=self.config.http_timeout, max_redirects=0, body_cap=self.config.body_cap
        )
        res = await http.fetch(url, resolver=no_names, tracer=flow, options=options, stream=conn)
        keys.requests.extend(res.requests)
        if res.failure is not None and res.failure != failures.HTTP_UNEXPECTED_REDIRECT_URL:
            self._fail(keys, res.failure, HTTP_ROUND_TRIP)

    @staticmethod
    def _fail(keys: ProxiedURLGetterKeys, failure: str, operation: str) -> None:
        keys.failure = failure
        keys.failed_operation = operation

    def unfinished(self, ctx: Context) -> None:
        keys = ctx.test_keys
        if keys.failure is None and not keys.requests:
            keys.failure = failures.GENERIC_TIMEOUT


class Socks5(ProxiedGet):
    protocol = "socks5"

    def proxy_address(self) -> str | None:
        lab = self.config.circumvention
        return lab.socks5 if lab is not None else None

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        address = self.proxy_address()
        if address is not None:
            ctx.test_keys.socksproxy = f"socks5://{address}"
        await super().run(ctx, entry)


class HTTPConnect(ProxiedGet):
    protocol = "http_connect"

    def proxy_address(self) -> str | None:
        lab = self.config.circumvention
        return lab.http_connect if lab is not None else None


class Shadowsocks(ProxiedGet):
    protocol = "shadowsocks"

    def proxy_address(self) -> str | None:
        lab = self.config.circumvention
        ss = lab.shadowsocks if lab is not None else None
        return format_address(ss.address, ss.port) if ss is not None else None

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        keys = ctx.test_keys
        assert isinstance(keys, ProxiedURLGetterKeys)
        lab = self.config.circumvention
        if lab is None:
            keys.failure = failures.unknown("no shadowsocks server to measure")
            return
        ss = lab.shadowsocks
        server = format_address(ss.address, ss.port)
        keys.tunnel = "shadowsocks"
        keys.x_didban_proxy = ProxyInfo(protocol=self.protocol, address=server, method=ss.method)
        try:
            check_addresses([ss.address])
        except ClientError as exc:
            keys.failure = failures.unknown(str(exc))
            return
        keys.x_didban_baseline.append(await self.tcp_baseline(ctx, ss.address, ss.port))
        async with ClientProcess("ss-local", ctx.log.now) as client:
            local = _free_port()
            conf = client.dir / "ss-local.json"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(
                    {
                        "server": ss.address,
                        "server_port": ss.port,
                        "local_address": "127.0.0.1",
                        "local_port": local,
                        "password": ss.password,
                        "method": ss.method,
                        "timeout": 30,
                    },
                    fh,
                )
            t0 = ctx.log.now()
            try:
                await client.start(["ss-local", "-c", str(conf)])
            except (ClientError, OSError) as exc:
                keys.failure = failures.unknown(str(exc))
                return
            ready = await client.wait_for(lambda line: SS_READY in line, 10.0)
            if ready is None:
                keys.failure = failures.unknown(
                    "ss-local did not start: " + " | ".join(client.text()[-2:])
                )
                return
            keys.bootstrap_time = round(client.lines[ready][0] - t0, 6)
            keys.socksproxy = f"socks5://127.0.0.1:{local}"
            await self.fetch(ctx, keys, entry.url, f"127.0.0.1:{local}")


EXPERIMENTS: Final[dict[str, type[ProxiedGet]]] = {
    "shadowsocks": Shadowsocks,
    "socks5": Socks5,
    "http_connect": HTTPConnect,
}
