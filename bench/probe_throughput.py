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

Before the timed runs, every name is resolved once (untimed), so no run is favoured by
the lab ISP resolver's cache.

Prints the three rates (URLs/s), CPU seconds per process, and the ratios didban/bare
(the issue's figure) and didban/bare-from-both-vantages. Targets (issue 3): 1,000 URLs in
≤ 60 s on 2 cores, ratio ≥ 0.5.

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
from typing import Any

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


async def _bare(
    urls: list[str], concurrency: int, ca_file: str, direct: bool = False
) -> tuple[int, int]:
    """TCP+TLS+GET each URL; ``direct``: connect to the bench address without DNS (the
    control namespace has no system resolver; the helper's own lookup is not counted)."""
    from didban.lab import zone

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
    ap.add_argument("--mode", choices=("probe", "bare", "bare-direct"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.urls < 1 or args.concurrency < 1:
        print("--urls and --concurrency must be at least 1", file=sys.stderr)
        return 2
    if os.environ.get(INNER_ENV):
        if args.mode in ("bare", "bare-direct"):
            inner_bare(args.urls, args.concurrency, direct=args.mode == "bare-direct")
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
    except RuntimeError as exc:
        print(f"bare loop from both vantages failed: {exc}", file=sys.stderr)
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
    print(f"ratio didban/bare:            {d_rate / b_rate:.2f}  (target ≥ 0.5)")
    print(
        f"ratio didban/both vantages:   {d_rate / both_rate:.2f}  "
        f"(both vantages/bare = {both_rate / b_rate:.2f}: the ceiling of the first ratio "
        "for any web_connectivity with a control on this machine)"
    )
    for label, key in (("didban", "cpu_didban"), ("bare", "cpu_bare"), ("both", "cpu_both")):
        parts = ", ".join(f"{k} {v:.1f}" for k, v in fig[key].items())
        print(f"CPU seconds during {label + ':':8} {parts}")
    per_url = {k: sum(fig[k].values()) * 1000 / n for k in ("cpu_didban", "cpu_bare", "cpu_both")}
    print(
        f"CPU per URL (all parts):      didban {per_url['cpu_didban']:.1f} ms, "
        f"bare {per_url['cpu_bare']:.1f} ms, both vantages {per_url['cpu_both']:.1f} ms  "
        f"(load average during the run: {load0:.1f} → {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs, shared)"
    )
    print(f"1,000-URL target ≤ 60 s:      {'met' if fig['didban_s'] <= 60 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
