"""``wireguard`` (OONI's experiment, probe-cli 0.1.1): a WireGuard handshake with one peer,
with Debian's ``wireguard-go`` (userspace; the kernel has no WireGuard module) as the
client, then one fetch through the tunnel.

``wireguard-go -f`` runs in the foreground with ``LOG_LEVEL=debug`` on an interface whose
name is unique on the host (its control socket, ``/var/run/wireguard/<name>.sock``, is shared
by every namespace); ``wg set`` gives it the private key and the peer (endpoint, public
key, the peer's tunnel address as the only allowed IP); the interface gets the client's
tunnel address. The fetch (``GET http://<peer's tunnel address>/``, OONI's ``urlget``)
sends the first packet into the tunnel, which makes wireguard-go send its handshake
initiation. OONI's ``network_events`` come from the same log lines OONI's experiment reads:
``Sending handshake initiation`` (SEND_HANDSHAKE_INIT), ``Received handshake response``
(RECV_HANDSHAKE_RESP), ``Receiving keepalive packet`` (RECV_KEEPALIVE). ``success`` is a
completed handshake; ``failure`` is ``generic_timeout_error`` when none completed in time
(wireguard-go retries every 5 s). Creating the interface needs root (CAP_NET_ADMIN): the
lab's probe has it; elsewhere the test fails with the reason.

didban adds a TCP connect to the peer's address and port (``x_didban_baseline``): a
refused or accepted connect shows the host answers, so an unanswered handshake is about the
protocol.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import ClassVar, Final

from didban.model import failures
from didban.model.oonicircumvention import URLGetResult, WireGuardEvent, WireGuardKeys
from didban.net import http
from didban.probe.apps.flows import Context
from didban.probe.circumvention.base import TunnelExperiment
from didban.probe.circumvention.endpoints import parse_vpn_input
from didban.probe.circumvention.process import ClientError, ClientProcess, check_addresses
from didban.probe.lists import ListEntry

EVENTS: Final = (
    ("Sending handshake initiation", "SEND_HANDSHAKE_INIT"),
    ("Received handshake response", "RECV_HANDSHAKE_RESP"),
    ("Receiving keepalive packet", "RECV_KEEPALIVE"),
)
PREFIX_LEN: Final = 30


def interface_name() -> str:
    """Unique on the host: wg + this process's pid (at most 15 characters)."""
    return f"didbanwg{os.getpid()}"[:15]


def _ip(*args: str) -> None:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise ClientError(f"{' '.join(args[:4])}: {r.stderr.strip() or r.returncode}")


class WireGuard(TunnelExperiment):
    test_name = "wireguard"
    test_version = "0.1.1-didban.1"
    takes_input = True
    extensions: ClassVar[dict[str, int]] = {"tunnel": 0}

    def new_keys(self) -> WireGuardKeys:
        return WireGuardKeys()

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        keys = ctx.test_keys
        assert isinstance(keys, WireGuardKeys)
        lab = self.config.circumvention
        try:
            ep = parse_vpn_input(entry.url)
            check_addresses([ep.ip])
            if lab is None:
                raise ClientError("no keys for this WireGuard peer")
        except (ValueError, ClientError) as exc:
            keys.failure = failures.unknown(str(exc))
            return
        keys.x_didban_endpoint = f"{ep.ip}:{ep.port}"
        keys.x_didban_baseline.append(await self.tcp_baseline(ctx, ep.ip, ep.port))
        wg = lab.wireguard
        ifname = interface_name()
        timeout = self.timeout(self.deadline)
        async with ClientProcess("wireguard", ctx.log.now) as client:
            try:
                await client.start(["wireguard-go", "-f", ifname], {"LOG_LEVEL": "debug"})
                await _configured(
                    client,
                    ifname,
                    wg.client_private_key,
                    wg.server_public_key,
                    f"{ep.ip}:{ep.port}",
                    wg.server_address,
                    wg.client_address,
                )
            except (ClientError, OSError) as exc:
                keys.failure = failures.unknown(str(exc))
                return
            url = f"http://{wg.server_address}/"
            get = asyncio.ensure_future(_urlget(ctx, url, timeout))
            done = await client.wait_for(lambda line: EVENTS[1][0] in line, timeout)
            result = await get
            keys.urlget.append(result)
            for t, line in client.lines:
                for marker, operation in EVENTS:
                    if marker in line:
                        keys.network_events.append(WireGuardEvent(operation, round(t, 6)))
            keys.success = done is not None
            keys.failure = None if keys.success else failures.GENERIC_TIMEOUT

    def unfinished(self, ctx: Context) -> None:
        keys = ctx.test_keys
        if not keys.success and keys.failure is None:
            keys.failure = failures.GENERIC_TIMEOUT


async def _configured(
    client: ClientProcess,
    ifname: str,
    private_key: str,
    peer_key: str,
    endpoint: str,
    peer_address: str,
    address: str,
) -> None:
    """Wait for wireguard-go's control socket, then configure the interface."""
    sock = f"/var/run/wireguard/{ifname}.sock"
    for _ in range(250):
        if os.path.exists(sock):
            break
        if client.returncode is not None:
            raise ClientError(f"wireguard-go exited: {' | '.join(client.text()[-2:])}")
        await asyncio.sleep(0.02)
    else:
        raise ClientError("wireguard-go created no control socket")
    key_file = client.dir / "private.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(private_key)
    await asyncio.to_thread(
        _ip,
        "wg",
        "set",
        ifname,
        "private-key",
        str(key_file),
        "peer",
        peer_key,
        "endpoint",
        endpoint,
        "allowed-ips",
        f"{peer_address}/32",
    )
    await asyncio.to_thread(_ip, "ip", "addr", "add", f"{address}/{PREFIX_LEN}", "dev", ifname)
    await asyncio.to_thread(_ip, "ip", "link", "set", ifname, "up")


async def _urlget(ctx: Context, url: str, timeout: float) -> URLGetResult:
    """OONI's ``urlget`` through the tunnel (no redirects; its own flow)."""
    t0 = ctx.log.now()
    options = http.FetchOptions(timeout=timeout, tcp_timeout=timeout, max_redirects=0)

    async def no_names(_name: str) -> list[str] | str:
        return failures.DNS_NO_ANSWER

    res = await http.fetch(url, resolver=no_names, options=options)
    response = res.requests[0].response if res.requests else None
    return URLGetResult(
        bytes=len(res.final_body),
        failure=res.failure,
        error=res.failure or "",
        status_code=response.code if response is not None and response.code else 0,
        t0=round(t0, 6),
        t=round(ctx.log.now(), 6),
        url=url,
    )
