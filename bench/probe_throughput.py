"""Probe throughput: didban's full web_connectivity vs a bare asyncio TCP+TLS+GET loop.

Brings up a ``clean`` lab (or uses the running one with ``--use-running``), builds 1,000
distinct URLs ``https://site<N>.bench.didban.test/`` (the lab serves them), and runs, one
after the other on the same targets and with the same concurrency:

* didban: the runner + web_connectivity exactly as ``didban run --lab`` does (system,
  UDP and DoH lookups, TCP and TLS to every address, the HTTP fetch, the control query),
  writing scrubbed, fsynced JSONL — inside the lab's client namespace;
* bare: ``asyncio.open_connection`` (getaddrinfo, TCP, TLS) + one HTTP/1.1 GET read to the
  end — the least any probe must do — inside the client namespace;
* bare from both vantages: the bare loop in the client namespace and, at the same time,
  the same loop from the control helper's namespace. Web Connectivity needs a control
  that repeats the fetch (OONI ts-017), and on this machine the lab's servers and the
  helper share the cores with the probe, so this is the least work *any* web_connectivity
  with a control causes here: its rate bounds didban's from above.

* bare web_connectivity (the floor): every step issue 3 names — getaddrinfo, a UDP
  query, a DoH query, TCP+TLS+GET, a control exchange; and on the control side the
  helper's own UDP A/AAAA queries, TCP to :80 and TCP+TLS+GET — each done by the cheapest
  asyncio code (HTTP/1.1 everywhere, kept-alive DoH and control connections, no records;
  the control exchange goes to a bare server that answers a canned response). An asyncio
  implementation that also records the steps does more work against this lab, so
  floor/bare is about the most didban/bare can be here (an estimate: the canned control
  answer makes the floor a little fast, see docs/probe.md).

Before the timed runs, every name is resolved once (untimed), so no run is favoured by
the lab ISP resolver's cache.

Prints the four rates (URLs/s), CPU seconds per process, and the ratios didban/bare
(the issue's figure), didban/bare-from-both-vantages, floor/bare and didban/floor.
Targets (issue 3): 1,000 URLs in ≤ 60 s on 2 cores, ratio ≥ 0.5.

    sudo .venv/bin/python bench/probe_throughput.py [--urls 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

INNER_ENV = "DIDBAN_BENCH_INNER"


def _own_cpu() -> float:
    """CPU seconds (user + system) of this process so far."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _h1_context(ca_file: str) -> ssl.SSLContext:
    """The bare loops' TLS client context: the lab CA, HTTP/1.1 only."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 message with a Content-Length body: (head, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return head, await reader.readexactly(length)


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) of this process and of the lab's processes so far."""
    out = {"probe": _own_cpu()}
    tick = os.sysconf("SC_CLK_TCK")
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            out[name] = 0.0
    return out


def _delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: round(b[k] - a[k], 2) for k in a}


def _urls(n: int, domain: str) -> list[str]:
    return [f"https://site{i}.{domain}/" for i in range(1, n + 1)]


async def _warm(urls: list[str], concurrency: int) -> None:
    """Untimed: resolve every name once so both runs meet a warm ISP-resolver cache."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)

    async def one(host: str) -> None:
        async with sem:
            with contextlib.suppress(OSError):
                await loop.getaddrinfo(host, 443)

    await asyncio.gather(*(one(u.split("/")[2]) for u in urls))


async def _bare(
    urls: list[str], concurrency: int, ca_file: str, direct: bool = False
) -> tuple[int, int]:
    """TCP+TLS+GET each URL; ``direct``: connect to the bench address without DNS (the
    control namespace has no system resolver; the helper's own lookup is not counted)."""
    from didban.lab import zone

    ctx = _h1_context(ca_file)
    sem = asyncio.Semaphore(concurrency)
    ok = failed = 0

    async def one(url: str) -> None:
        nonlocal ok, failed
        host = url.split("/")[2]
        async with sem:
            try:
                async with asyncio.timeout(30):
                    n = zone.bench_index(host) if direct else None
                    reader, writer = await asyncio.open_connection(
                        zone.bench_addr(n) if n is not None else host,
                        443,
                        ssl=ctx,
                        server_hostname=host,
                    )
                    writer.write(
                        f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                        "User-Agent: bench\r\n\r\n".encode()
                    )
                    await writer.drain()
                    data = await reader.read()
                    writer.close()
                if data.startswith(b"HTTP/1.1 200"):
                    ok += 1
                else:
                    failed += 1
            except (OSError, TimeoutError, ssl.SSLError):
                failed += 1

    await asyncio.gather(*(one(u) for u in urls))
    return ok, failed


# ----------------------------------------------------------------------------- the floor
# "Bare web_connectivity": every step issue 3 names, each done by the cheapest asyncio code
# there is (HTTP/1.1 everywhere, no records, no parsing beyond what the step needs):
#   client namespace, per URL: getaddrinfo, one UDP A query (first reply only), one DoH
#   query (POST over a pool of kept-alive HTTP/1.1 connections), TCP+TLS+GET to the
#   system resolver's first address, and one control exchange (a POST of a control request
#   to a bare server in the control namespace that answers with a canned response);
#   control namespace, per URL (what a test helper must do): UDP A and AAAA queries, a TCP
#   connect to :80, TCP+TLS+GET to :443 - and the bare server answering the POSTs.
# Its rate, against the bare TCP+TLS+GET loop's, bounds what any implementation of the
# issue's steps can reach on this machine with this lab.

FLOOR_PORT = 8053  # the bare control server, in the control namespace
CONTROL_REQUEST = json.dumps(
    {
        "http_request": "https://site1.bench.didban.test/",
        "http_request_headers": {
            "Accept": ["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
            "Accept-Language": ["en-US;q=0.8,en;q=0.5"],
            "User-Agent": ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"],
        },
        "tcp_connect": ["203.0.113.200:443", "203.0.113.200:80"],
        "x_quic_enabled": False,
    }
).encode()
CONTROL_RESPONSE = json.dumps(
    {
        "tcp_connect": {
            "203.0.113.200:443": {"status": True, "failure": None},
            "203.0.113.200:80": {"status": True, "failure": None},
        },
        "tls_handshake": {
            "203.0.113.200:443": {
                "server_name": "site1.bench.didban.test",
                "status": True,
                "failure": None,
            }
        },
        "quic_handshake": {},
        "http_request": {
            "body_length": 1500,
            "discovered_h3_endpoint": "",
            "failure": None,
            "title": "site1.bench.didban.test",
            "headers": {"Content-Type": "text/html; charset=utf-8", "Server": "didban-lab"},
            "status_code": 200,
        },
        "http3_request": None,
        "dns": {"failure": None, "addrs": ["203.0.113.200"]},
        "ip_info": {"203.0.113.200": {"asn": 64500, "flags": 11}},
    }
).encode()


def _dns_query(host: str, qtype: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in host.split("."))
    return (
        os.urandom(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        + labels + b"\x00" + qtype.to_bytes(2, "big") + b"\x00\x01"
    )  # fmt: skip


def _dns_ok(query: bytes, reply: bytes) -> bool:
    """The reply answers the query (same id, a response, NOERROR, at least one answer)."""
    return (
        len(reply) >= 12
        and reply[:2] == query[:2]
        and reply[2] & 0x80 != 0
        and reply[3] & 0x0F == 0
        and reply[6:8] != b"\x00\x00"
    )


async def _udp_query(host: str, server: str, qtype: int = 1) -> bool:
    loop = asyncio.get_running_loop()
    query = _dns_query(host, qtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (server, 53))
        await loop.sock_sendall(sock, query)
        reply = await loop.sock_recv(sock, 4096)
    # AAAA: the lab has no IPv6 addresses, a NOERROR reply without answers is the answer
    return reply[:2] == query[:2] and (qtype == 28 or _dns_ok(query, reply))


class _Pool:
    """Kept-alive HTTP/1.1 connections to one server; one POST at a time on each. A
    connection that failed is closed and replaced, never handed out again."""

    def __init__(self, addr: str, port: int, size: int, ctx: ssl.SSLContext | None, sni: str):
        self.addr, self.port, self.ctx, self.sni = addr, port, ctx, sni
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.size = size

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            self.addr, self.port, ssl=self.ctx, server_hostname=self.sni if self.ctx else None
        )

    async def open(self) -> None:
        for conn in await asyncio.gather(*(self._connect() for _ in range(self.size))):
            self.free.put_nowait(conn)

    async def post(self, path: str, ctype: str, body: bytes) -> bytes | None:
        """The response body of a 200, else None."""
        reader, writer = await self.free.get()
        try:
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {self.sni}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head, data = await _read_message(reader)
        except BaseException:
            writer.close()
            self.free.put_nowait(await self._connect())
            raise
        self.free.put_nowait((reader, writer))
        return data if head.startswith(b"HTTP/1.1 200") else None

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait()[1].close()


async def _get(addr: str, port: int, host: str, ctx: ssl.SSLContext) -> bool:
    reader, writer = await asyncio.open_connection(addr, port, ssl=ctx, server_hostname=host)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: bench\r\n\r\n".encode()
    )
    data = await reader.read()
    writer.close()
    return data.startswith(b"HTTP/1.1 200")


def _await_go() -> None:
    """Tell the parent this side is set up (connections open), then wait for its "go"."""
    print("ready", flush=True)
    sys.stdin.readline()


async def _floor_client(urls: list[str], concurrency: int, desc: Any) -> dict[str, Any]:
    """The probe's share, as web_connectivity orders it: the three lookups at once; the
    TCP+TLS+GET as soon as getaddrinfo answered; the control exchange once the lookups are
    done. Timed from "go" (the pools are open by then), in this process."""
    loop = asyncio.get_running_loop()
    ctx = _h1_context(desc.ca_file)
    resolver = desc.udp_resolver.rsplit(":", 1)[0]
    control_addr = urlsplit(desc.control_url).hostname or ""
    doh = _Pool(desc.doh_bootstrap, 443, concurrency, ctx, urlsplit(desc.doh_url).hostname or "")
    control = _Pool(control_addr, FLOOR_PORT, concurrency, None, control_addr)
    await asyncio.gather(doh.open(), control.open())
    sem = asyncio.Semaphore(concurrency)
    ok = failed = 0
    await loop.run_in_executor(None, _await_go)
    cpu0 = _own_cpu()
    t0 = time.monotonic()

    async def one(url: str) -> None:
        nonlocal ok, failed
        host = url.split("/")[2]
        async with sem:
            try:
                async with asyncio.timeout(30):
                    query = _dns_query(host, 1)
                    udp = asyncio.ensure_future(_udp_query(host, resolver))
                    dns = asyncio.ensure_future(
                        doh.post("/dns-query", "application/dns-message", query)
                    )
                    infos = await loop.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
                    get = asyncio.ensure_future(_get(str(infos[0][4][0]), 443, host, ctx))
                    udp_ok, doh_reply = await asyncio.gather(udp, dns)
                    answer = await control.post("/", "application/json", CONTROL_REQUEST)
                    ctrl_ok = answer is not None and bool(json.loads(answer).get("http_request"))
                    got = await get
                good = udp_ok and doh_reply is not None and _dns_ok(query, doh_reply)
                if good and ctrl_ok and got:
                    ok += 1
                else:
                    failed += 1
            except (OSError, TimeoutError, ssl.SSLError, ValueError, asyncio.IncompleteReadError):
                failed += 1

    await asyncio.gather(*(one(u) for u in urls))
    floor_s = time.monotonic() - t0
    cpu1 = _own_cpu()
    doh.close()
    control.close()
    return {
        "floor_s": floor_s,
        "floor_ok": ok,
        "floor_failed": failed,
        "cpu": cpu1 - cpu0,
    }


async def _floor_control(urls: list[str], concurrency: int, desc: Any) -> dict[str, Any]:
    """The helper's share: the bare server for the POSTs, and per URL its own steps."""
    from didban.lab import zone

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                json.loads((await _read_message(reader))[1])
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(CONTROL_RESPONSE)}\r\n\r\n".encode()
                    + CONTROL_RESPONSE
                )
        except Exception:  # the client went away or sent garbage: drop the connection
            writer.close()

    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(serve, urlsplit(desc.control_url).hostname, FLOOR_PORT)
    ctx = _h1_context(desc.ca_file)
    resolver = desc.udp_resolver.rsplit(":", 1)[0]
    sem = asyncio.Semaphore(concurrency)
    ok = failed = 0
    await loop.run_in_executor(None, _await_go)
    cpu0 = _own_cpu()
    t0 = time.monotonic()

    async def one(url: str) -> None:
        nonlocal ok, failed
        host = url.split("/")[2]
        n = zone.bench_index(host)
        addr = zone.bench_addr(n) if n is not None else host
        async with sem:
            try:
                async with asyncio.timeout(30):
                    a, aaaa = await asyncio.gather(
                        _udp_query(host, resolver, 1), _udp_query(host, resolver, 28)
                    )
                    _, w = await asyncio.open_connection(addr, 80)
                    w.close()
                    got = await _get(addr, 443, host, ctx)
                if a and aaaa and got:
                    ok += 1
                else:
                    failed += 1
            except (OSError, TimeoutError, ssl.SSLError):
                failed += 1

    await asyncio.gather(*(one(u) for u in urls))
    helper_s = time.monotonic() - t0
    await loop.run_in_executor(None, sys.stdin.readline)  # the client is done: stop serving
    cpu1 = _own_cpu()
    server.close()
    return {
        "helper_s": helper_s,
        "helper_ok": ok,
        "helper_failed": failed,
        "cpu": cpu1 - cpu0,
    }


def inner_floor(n: int, concurrency: int, side: str) -> None:
    """One side of the floor (client or control namespace); one JSON line."""
    from didban.probe import labmode

    desc = labmode.load()
    urls = _urls(n, desc.bench_domain or "bench.didban.test")
    run = _floor_control if side == "control" else _floor_client
    print(json.dumps(asyncio.run(run(urls, concurrency, desc))))


def _floor(desc: Any, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Both sides of the floor, started together once both have their connections open;
    the floor's time is the later of the two sides' own times."""
    procs: dict[str, subprocess.Popen[str]] = {}
    logs: dict[str, Any] = {}
    try:
        for side, netns in (("control", desc.namespaces["control"]), ("client", desc.client_netns)):
            logs[side] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in finally
            procs[side] = subprocess.Popen(
                _in_netns(netns, f"floor-{side}", args),
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=logs[side],
                text=True,
            )
            out = procs[side].stdout
            assert out is not None
            if out.readline().strip() != "ready":
                procs[side].wait()
                logs[side].seek(0)
                raise RuntimeError(f"floor-{side}: {logs[side].read()[-3000:]}")
        cpu0 = _cpu(desc.pids)
        for p in procs.values():
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        client_out, _ = procs["client"].communicate(timeout=600)
        control_out, _ = procs["control"].communicate("done\n", timeout=120)
        cpu = _delta(cpu0, _cpu(desc.pids))
        for side, p in procs.items():
            if p.returncode != 0:
                logs[side].seek(0)
                raise RuntimeError(f"floor-{side}: {logs[side].read()[-3000:]}")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs.values():
            log.close()
    fig = json.loads(client_out.strip().splitlines()[-1])
    helper = json.loads(control_out.strip().splitlines()[-1])
    cpu.pop("probe")  # this process only waited
    cpu["floor-client"] = round(fig["cpu"], 2)
    cpu["floor-control"] = round(helper["cpu"], 2)
    return {
        "floor_s": max(fig["floor_s"], helper["helper_s"]),
        "floor_ok": min(fig["floor_ok"], helper["helper_ok"]),
        "floor_failed": fig["floor_failed"] + helper["helper_failed"],
        "cpu_floor": cpu,
    }


def inner_bare(n: int, concurrency: int, direct: bool) -> None:
    """The bare loop alone (in the client or the control namespace); one JSON line."""
    from didban.probe import labmode

    desc = labmode.load()
    urls = _urls(n, desc.bench_domain or "bench.didban.test")
    t0 = time.monotonic()
    ok, failed = asyncio.run(_bare(urls, concurrency, desc.ca_file, direct=direct))
    print(json.dumps({"bare_s": time.monotonic() - t0, "bare_ok": ok, "bare_failed": failed}))


def inner(n: int, concurrency: int) -> None:
    """Runs inside the client namespace: didban, then bare; prints one JSON line."""
    from rich.console import Console

    from didban.probe import identity, labmode
    from didban.probe.config import ProbeConfig, parse_resolver
    from didban.probe.lists import ListEntry
    from didban.probe.output import JsonlWriter
    from didban.probe.runner import RunOptions, RunResult, run
    from didban.probe.scrub import Scrubber, local_addresses
    from didban.probe.webconnectivity import WebConnectivity

    desc = labmode.load()
    domain = desc.bench_domain or "bench.didban.test"
    urls = _urls(n, domain)
    cfg = ProbeConfig(
        udp_resolver=parse_resolver(desc.udp_resolver),
        doh_url=desc.doh_url,
        doh_bootstrap=desc.doh_bootstrap,
        control_url=desc.control_url,
        ca_file=desc.ca_file,
        lab_profile=desc.profile,
    )
    ident = identity.resolve(addresses=local_addresses(), table=desc.asn_map)
    exp = WebConnectivity(cfg, ident)
    asyncio.run(_warm(urls, concurrency))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.jsonl"
        writer = JsonlWriter(out, Scrubber(local_addresses()))
        res = RunResult()
        cpu0 = _cpu(desc.pids)
        t0 = time.monotonic()
        asyncio.run(
            run(
                [ListEntry(u) for u in urls],
                exp,
                writer,
                RunOptions(concurrency=concurrency, progress=False),
                Console(stderr=True, quiet=True),
                res,
            )
        )
        didban_s = time.monotonic() - t0
        cpu_didban = _delta(cpu0, _cpu(desc.pids))
        writer.close()
        lines = out.read_bytes().splitlines()
        complete = 0
        for line in lines:
            tk = json.loads(line)["test_keys"]
            reqs = tk.get("requests") or []
            if (
                reqs
                and (reqs[0].get("response") or {}).get("code") == 200
                and tk.get("control_failure") is None
            ):
                complete += 1
    cpu0 = _cpu(desc.pids)
    t0 = time.monotonic()
    ok, failed = asyncio.run(_bare(urls, concurrency, desc.ca_file))
    bare_s = time.monotonic() - t0
    cpu_bare = _delta(cpu0, _cpu(desc.pids))
    print(
        json.dumps(
            {
                "urls": n,
                "didban_s": didban_s,
                "didban_written": len(lines),
                "didban_complete": complete,
                "bare_s": bare_s,
                "bare_ok": ok,
                "bare_failed": failed,
                "cpu_didban": cpu_didban,
                "cpu_bare": cpu_bare,
            }
        )
    )


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _in_netns(netns: str, mode: str, args: argparse.Namespace) -> list[str]:
    return [
        "ip", "netns", "exec", netns, sys.executable, __file__, "--mode", mode,
        "--urls", str(args.urls), "--concurrency", str(args.concurrency),
    ]  # fmt: skip


def _both_vantages(desc: Any, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """The bare loop from the client and the control namespace at the same time."""
    cpu0 = {**_cpu(desc.pids), "children": _children_cpu()}
    procs = [
        subprocess.Popen(
            _in_netns(netns, mode, args),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for netns, mode in (
            (desc.client_netns, "bare"),
            (desc.namespaces["control"], "bare-direct"),
        )
    ]
    outs = [p.communicate() for p in procs]
    cpu1 = {**_cpu(desc.pids), "children": _children_cpu()}
    figs = []
    for p, (out, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(err[-3000:])
        figs.append(json.loads(out.strip().splitlines()[-1]))
    cpu = _delta(cpu0, cpu1)
    cpu.pop("probe")  # this process only waited
    return {
        "both_s": max(f["bare_s"] for f in figs),
        "both_ok": min(f["bare_ok"] for f in figs),
        "cpu_both": cpu,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--urls", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--use-running", action="store_true", help="use the current lab")
    ap.add_argument(
        "--mode",
        choices=("probe", "bare", "bare-direct", "floor-client", "floor-control"),
        help=argparse.SUPPRESS,
    )
    args = ap.parse_args()
    if args.urls < 1 or args.concurrency < 1:
        print("--urls and --concurrency must be at least 1", file=sys.stderr)
        return 2
    if os.environ.get(INNER_ENV):
        if args.mode in ("bare", "bare-direct"):
            inner_bare(args.urls, args.concurrency, direct=args.mode == "bare-direct")
        elif args.mode in ("floor-client", "floor-control"):
            inner_floor(args.urls, args.concurrency, args.mode.split("-")[1])
        else:
            inner(args.urls, args.concurrency)
        return 0
    if os.geteuid() != 0:
        print("probe_throughput needs root (network namespaces)", file=sys.stderr)
        return 2
    from didban.lab import runtime
    from didban.probe import labmode

    load0 = os.getloadavg()[0]
    started_lab = None
    if args.use_running:
        desc = labmode.load()
    else:
        t0 = time.monotonic()
        desc = runtime.up("clean", control=True, make_current=False)
        started_lab = desc.state_dir
        print(f"lab up (clean) in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    try:
        env = {
            **os.environ,
            INNER_ENV: "1",
            labmode.DESCRIPTOR_ENV: str(Path(desc.state_dir) / "lab.json"),
            "SSL_CERT_FILE": desc.ca_file,
        }
        cmd = _in_netns(desc.client_netns, "probe", args)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            return 1
        fig = json.loads(r.stdout.strip().splitlines()[-1])
        fig.update(_both_vantages(desc, args, env))
        fig.update(_floor(desc, args, env))
    except RuntimeError as exc:
        print(f"a bare loop failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if started_lab:
            runtime.down(started_lab)
    n = fig["urls"]
    d_rate = n / fig["didban_s"]
    b_rate = n / fig["bare_s"]
    both_rate = n / fig["both_s"]
    print(f"URLs:            {n} (concurrency {args.concurrency}, {os.cpu_count()} CPUs)")
    print(
        f"didban full web_connectivity: {fig['didban_s']:.1f} s, {d_rate:.1f} URLs/s "
        f"({fig['didban_written']} written, {fig['didban_complete']} complete with 200 "
        "+ control)"
    )
    print(
        f"bare TCP+TLS+GET:             {fig['bare_s']:.1f} s, {b_rate:.1f} URLs/s "
        f"({fig['bare_ok']} ok, {fig['bare_failed']} failed)"
    )
    print(
        f"bare from both vantages:      {fig['both_s']:.1f} s, {both_rate:.1f} URLs/s "
        f"({fig['both_ok']} ok on each side; client + control namespace at once)"
    )
    floor_rate = n / fig["floor_s"]
    print(
        f"bare web_connectivity (floor): {fig['floor_s']:.1f} s, {floor_rate:.1f} URLs/s "
        f"({fig['floor_ok']} ok, {fig['floor_failed']} steps failed; every step of issue 3 "
        "by plain asyncio code, HTTP/1.1, no records)"
    )
    if fig["floor_failed"]:
        print("  the floor had failures: its rate is not a fair reference in this run")
    print(f"ratio didban/bare:            {d_rate / b_rate:.2f}  (target ≥ 0.5)")
    print(
        f"ratio floor/bare:             {floor_rate / b_rate:.2f}  (about the most an "
        "asyncio implementation of the issue's steps reaches on this machine and lab)"
    )
    print(f"ratio didban/floor:           {d_rate / floor_rate:.2f}")
    print(
        f"ratio didban/both vantages:   {d_rate / both_rate:.2f}  "
        f"(both vantages/bare = {both_rate / b_rate:.2f}: the ceiling of the first ratio "
        "for any web_connectivity with a control on this machine)"
    )
    for label, key in (
        ("didban", "cpu_didban"),
        ("bare", "cpu_bare"),
        ("both", "cpu_both"),
        ("floor", "cpu_floor"),
    ):
        parts = ", ".join(f"{k} {v:.1f}" for k, v in fig[key].items())
        print(f"CPU seconds during {label + ':':8} {parts}")
    per_url = {
        k: sum(fig[k].values()) * 1000 / n
        for k in ("cpu_didban", "cpu_bare", "cpu_both", "cpu_floor")
    }
    print(
        f"CPU per URL (all parts):      didban {per_url['cpu_didban']:.1f} ms, "
        f"bare {per_url['cpu_bare']:.1f} ms, both vantages {per_url['cpu_both']:.1f} ms, "
        f"floor {per_url['cpu_floor']:.1f} ms  "
        f"(load average during the run: {load0:.1f} → {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs, shared)"
    )
    print(f"1,000-URL target ≤ 60 s:      {'met' if fig['didban_s'] <= 60 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
