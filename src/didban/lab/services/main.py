"""The two service processes of a lab: ``inet`` (every international site, the bench hosts,
the app endpoints' stand-ins and the public resolvers) and ``domestic`` (the ISP resolver,
the domestic sites and Iran's blockpage hosts). Each listens on its addresses, then
writes ``<role>-services.ready`` into the state dir and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from didban.lab import ca, plan, zone
from didban.lab.services import ROLES, apps, dnsanswer, dnsserver, http, ready_file, routes
from didban.lab.services.ispresolver import IspResolver
from didban.net import guard


async def _public_answer(q: dnsserver.Query) -> bytes | None:
    return dnsanswer.answer_wire(q.wire, udp=q.transport == "udp")


async def _start_inet(state_dir: Path) -> list[Any]:
    from didban.lab.services import h3  # aioquic: only the inet process serves HTTP/3

    authority = ca.load(state_dir)
    store = ca.LeafStore(authority)
    dot = ca.LeafStore(authority, alpn=("dot",))
    for site in zone.sites():
        if not site.domestic:
            store.add_site(site)
        if site.key.startswith("resolver:"):
            dot.add_site(site)
    store.add_bench()
    apps.add_pinned_leaves(store, state_dir)
    handles: list[Any] = []
    for addr in dict.fromkeys(zone.addresses(domestic=False) + zone.resolver_addrs()):
        handles.append(await http.serve(routes.handle, addr, 80))
        handles.append(await http.serve(routes.handle, addr, 443, store.server_context(addr)))
    for site in zone.sites():
        if site.http3 and not site.domestic:
            for addr in site.addrs:
                handles.append(await h3.serve_h3(routes.handle, addr, store.leaf(site.key)))
    handles += await apps.serve()
    for addr in zone.resolver_addrs():
        handles.append(await dnsserver.serve_udp(_public_answer, addr))
        handles.append(await dnsserver.serve_tcp(_public_answer, addr))
        handles.append(
            await dnsserver.serve_tcp(_public_answer, addr, 853, dot.server_context(addr))
        )
    return handles


async def _start_domestic(state_dir: Path) -> list[Any]:
    store = ca.LeafStore(ca.load(state_dir))
    for site in zone.sites():
        if site.domestic:
            store.add_site(site)
    handles: list[Any] = []
    for addr in zone.addresses(domestic=True):
        handles.append(await http.serve(routes.handle, addr, 80))
        handles.append(await http.serve(routes.handle, addr, 443, store.server_context(addr)))
    # Blockpage hosts: port 80 only; 443 is closed (RST), as the real hosts answer.
    for addr in plan.BLOCKPAGE_HOSTS:
        handles.append(await http.serve(routes.handle, addr, 80))
    resolver = IspResolver(state_dir)
    handles.append(await dnsserver.serve_udp(resolver, plan.ISP_RESOLVER))
    handles.append(await dnsserver.serve_tcp(resolver, plan.ISP_RESOLVER))
    return handles


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def run(role: str, state_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _resolve, stop)
    handles = await (_start_inet(state_dir) if role == "inet" else _start_domestic(state_dir))
    ready_file(state_dir, role).write_text(f"{len(handles)} listeners\n", encoding="utf-8")
    print(f"{role} services: {len(handles)} listeners ready", flush=True)
    await stop
    for h in handles:
        h.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m didban.lab.services")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    guard.install_if_enabled()
    try:
        asyncio.run(run(args.role, args.state_dir))
    except OSError as exc:
        print(f"{args.role} services: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
