"""The circumvention servers written in Python, in one process in the ``inet`` namespace:
the Snowflake broker and server stand-ins (:mod:`didban.lab.circumvention.snowflake`) and
the page the WireGuard peer serves inside its tunnel (what the probe's ``urlget`` fetches
through it). ``python -m didban.lab.circumvention.services --state-dir DIR`` listens, then
writes ``circ/services.ready`` and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import Any, Final

import h11

from didban.lab import ca, plan
from didban.lab.circumvention import layout
from didban.lab.circumvention.snowflake import Broker, Relay, h11_request
from didban.net import guard

READY: Final = "services.ready"
TUNNEL_PAGE: Final = b"didban lab: reached through the WireGuard tunnel\n"


async def _tunnel_page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        request, _ = await h11_request(conn, reader)
        if request is not None:
            headers = [("content-type", "text/plain"), ("content-length", str(len(TUNNEL_PAGE)))]
            writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
            writer.write(conn.send(h11.Data(data=TUNNEL_PAGE)) + conn.send(h11.EndOfMessage()))
            await writer.drain()
    except (OSError, h11.ProtocolError, TimeoutError):
        pass
    finally:
        writer.close()


def _freebind(address: str, port: int) -> socket.socket:
    """A listening socket on an address that exists only once the WireGuard peer's
    interface is up (IP_FREEBIND)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
    sock.bind((address, port))
    sock.listen(64)
    sock.setblocking(False)
    return sock


def _broker_tls(state_dir: Path) -> ssl.SSLContext:
    leaf = ca.load(state_dir).issue_cert(
        *layout.broker_names(),
        plan.CIRCUMVENTION["snowflake-broker"],
        common_name=layout.broker_names()[0],
        organization_name="didban lab",
        organization_unit_name="snowflake broker",
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(ctx)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def run(state_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _resolve, stop)
    broker = Broker(relay_url=layout.relay_url())
    relay = Relay(bridge=layout.bridge_or_port())
    broker_addr = plan.CIRCUMVENTION["snowflake-broker"]
    servers: list[Any] = [
        await asyncio.start_server(broker.serve, broker_addr, 443, ssl=_broker_tls(state_dir)),
        await asyncio.start_server(broker.serve, broker_addr, 80),
        await asyncio.start_server(relay.serve, plan.CIRCUMVENTION["snowflake-relay"], 80),
        await asyncio.start_server(_tunnel_page, sock=_freebind(layout.WG_SERVER_TUNNEL, 80)),
    ]
    resend = asyncio.ensure_future(relay.resend())
    (layout.base(state_dir) / READY).write_text(f"{len(servers)} listeners\n", encoding="utf-8")
    print(f"circumvention services: {len(servers)} listeners ready", flush=True)
    await stop
    resend.cancel()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m didban.lab.circumvention.services")
    parser.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    guard.install_if_enabled()
    try:
        asyncio.run(run(args.state_dir))
    except OSError as exc:
        print(f"circumvention services: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
