"""Probe throughput: didban's full web_connectivity vs a bare asyncio TCP+TLS+GET loop.

Brings up a ``clean`` lab (or uses the running one with ``--use-running``), builds 1,000
distinct URLs ``https://site<N>.bench.didban.test/`` (the lab serves them), and inside the
lab's client namespace runs, one after the other on the same targets and with the same
concurrency:

* didban: the runner + web_connectivity exactly as ``didban run --lab`` does (system,
  UDP and DoH lookups, TCP and TLS to every address, the HTTP fetch, the control query),
  writing scrubbed, fsynced JSONL;
* bare: ``asyncio.open_connection`` (getaddrinfo, TCP, TLS) + one HTTP/1.1 GET read to the
  end — the least any probe must do.

Before both, every name is resolved once (untimed), so neither run is favoured by the lab
ISP resolver's cache.

Prints both rates (URLs/s), the elapsed times and the ratio didban/bare. Targets (issue 3):
1,000 URLs in ≤ 60 s on 2 cores, ratio ≥ 0.5.

    sudo .venv/bin/python bench/probe_throughput.py [--urls 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INNER_ENV = "DIDBAN_BENCH_INNER"


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) of this process and of the lab's processes so far."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    out = {"probe": ru.ru_utime + ru.ru_stime}
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


async def _bare(urls: list[str], concurrency: int, ca_file: str) -> tuple[int, int]:
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(["http/1.1"])
    sem = asyncio.Semaphore(concurrency)
    ok = failed = 0

    async def one(url: str) -> None:
        nonlocal ok, failed
        host = url.split("/")[2]
        async with sem:
            try:
                async with asyncio.timeout(30):
                    reader, writer = await asyncio.open_connection(
                        host, 443, ssl=ctx, server_hostname=host
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


def inner(n: int, concurrency: int) -> None:
    """Runs inside the client namespace; prints one JSON line of figures."""
    from rich.console import Console

    from didban.probe import identity, labmode
    from didban.probe.config import ProbeConfig, parse_resolver
    from didban.probe.lists import ListEntry
    from didban.probe.output import JsonlWriter
    from didban.probe.runner import RunOptions, RunResult, run
    from didban.probe.scrub import Scrubber, local_addresses
    from didban.probe.web_connectivity import WebConnectivity

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--urls", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--use-running", action="store_true", help="use the current lab")
    args = ap.parse_args()
    if os.environ.get(INNER_ENV):
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
        cmd = [
            "ip", "netns", "exec", desc.client_netns, sys.executable, __file__,
            "--urls", str(args.urls), "--concurrency", str(args.concurrency),
        ]  # fmt: skip
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            return 1
        fig = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        if started_lab:
            runtime.down(started_lab)
    n = fig["urls"]
    d_rate = n / fig["didban_s"]
    b_rate = n / fig["bare_s"]
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
    print(f"ratio didban/bare:            {d_rate / b_rate:.2f}  (target ≥ 0.5)")
    for label, key in (("didban", "cpu_didban"), ("bare", "cpu_bare")):
        parts = ", ".join(f"{k} {v:.1f}" for k, v in fig[key].items())
        print(f"CPU seconds during {label + ':':8} {parts}")
    per_url = {k: sum(fig[k].values()) * 1000 / n for k in ("cpu_didban", "cpu_bare")}
    print(
        f"CPU per URL (all parts):      didban {per_url['cpu_didban']:.1f} ms, "
        f"bare {per_url['cpu_bare']:.1f} ms  (load average during the run: "
        f"{load0:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, shared)"
    )
    print(f"1,000-URL target ≤ 60 s:      {'met' if fig['didban_s'] <= 60 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
