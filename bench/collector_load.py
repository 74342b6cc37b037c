"""Benchmark: the collector under load on loopback — rate, lost and duplicated submissions.

Starts ``didban serve`` (a real subprocess, fresh data directory), submits N distinct
realistic Web Connectivity measurements to ``POST /api/v1/submit_measurement`` from C
concurrent connections, then resubmits R of them (a probe retrying after a lost
acknowledgement). Afterwards it lists every stored measurement through the API and prints:

* rate: distinct measurements acknowledged per second during the first pass
  (each acknowledgement follows an fsync of the archive; analysis and tables included);
* lost: acknowledged uids the store cannot list (target 0);
* duplicated: stored rows beyond one per distinct measurement, plus resubmissions that
  got a different uid (target 0).

Targets (issue 5): >= 500 measurements/s, 0 lost, 0 duplicated.

``--baseline`` repeats the same load against the same app served on the pure-Python stack
(asyncio loop, h11 parser) in the same run and prints the ratios (uvloop and httptools,
which ``didban serve`` uses, against what uvicorn used before they were dependencies).
Every request has a 60 s timeout, so the benchmark always ends; it exits 1 if anything was
lost or duplicated.

Usage: python bench/collector_load.py [--n 10000] [--concurrency 32] [--resubmit 500]
       [--baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import orjson

from store_query import measurement, pct, serve

# Every request is bounded: a stuck server counts as an error, it never hangs the benchmark.
REQUEST_TIMEOUT = 60.0


def server_stack() -> str:
    """The event loop and HTTP parser uvicorn picks in this environment (its "auto")."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} + {http}"


class Conn:
    """A minimal keep-alive HTTP/1.1 client, so the load generator costs the 2 shared
    cores as little as possible (a full client library would take CPU from the server)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        data = await self.reader.readexactly(length)
        return int(status_line.split()[1]), data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def submit_all(
    port: int, bodies: list[bytes], concurrency: int
) -> tuple[dict[int, str], list[float], int]:
    acked: dict[int, str] = {}
    lat: list[float] = []
    errors = 0
    next_i = 0

    async def worker() -> None:
        nonlocal next_i, errors
        conn = Conn(port)
        try:
            while next_i < len(bodies):
                i = next_i
                next_i += 1
                t0 = time.perf_counter()
                try:
                    status, data = await asyncio.wait_for(
                        conn.post("/api/v1/submit_measurement", bodies[i]), REQUEST_TIMEOUT
                    )
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                    errors += 1
                    conn.close()
                    conn = Conn(port)
                    continue
                lat.append((time.perf_counter() - t0) * 1000)
                if status == 200:
                    acked[i] = orjson.loads(data)["measurement_uid"]
                else:
                    errors += 1
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return acked, lat, errors


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to report a figure that
    does not depend on what else the shared cores are doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The pure-Python stack uvicorn used before uvloop and httptools became dependencies: the
# same app and store, started like ``didban serve`` but with loop="asyncio", http="h11".
BASELINE_SERVER = """
import sys, uvicorn
from pathlib import Path
from didban.api.app import create_app
from didban.store.store import Store
store = Store(Path(sys.argv[1]))
uvicorn.run(create_app(store), host="127.0.0.1", port=int(sys.argv[2]), loop="asyncio",
            http="h11", log_level="warning", access_log=False)
"""


def serve_baseline(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", BASELINE_SERVER, str(data_dir), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(600):
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"the baseline server exited: {err}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc
        except httpx2.HTTPError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise SystemExit("the baseline server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load(
    proc: subprocess.Popen[bytes], port: int, bodies: list[bytes], args: argparse.Namespace,
    stack: str,
) -> tuple[float, float, bool]:  # fmt: skip
    """One full pass against a running server; prints its figures; returns
    (measurements/s, server CPU ms per measurement, whether anything was lost/duplicated)."""
    rng = random.Random(6)
    mb = sum(len(b) for b in bodies) / 1e6
    cpu0 = cpu_seconds(proc.pid)
    t0 = time.perf_counter()
    acked, lat, errors = asyncio.run(submit_all(port, bodies, args.concurrency))
    dt = time.perf_counter() - t0
    cpu = cpu_seconds(proc.pid) - cpu0
    again_idx = rng.sample(range(len(bodies)), min(args.resubmit, len(bodies)))
    re_acked, _, re_errors = asyncio.run(
        submit_all(port, [bodies[i] for i in again_idx], args.concurrency)
    )
    changed = sum(1 for k, i in enumerate(again_idx) if re_acked.get(k) != acked.get(i))
    with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
        page = c.get("/api/v1/measurements", params={"limit": 100_000}).json()
    stored = {r["measurement_uid"] for r in page["results"]}
    lost = sum(1 for uid in acked.values() if uid not in stored)
    # Every synthetic measurement has its own report_id: a second row for one is a duplicate.
    reports = [r["report_id"] for r in page["results"]]
    duplicated = len(reports) - len(set(reports)) + changed
    rate = len(acked) / dt
    per = cpu / max(len(acked), 1) * 1000
    print(f"[{stack}]")
    print(
        f"collector: {len(acked)} of {len(bodies)} acknowledged in {dt:.2f} s "
        f"({mb:.1f} MB, concurrency {args.concurrency})"
    )
    print(
        f"collector: rate {rate:.0f} measurements/s ({mb / dt:.1f} MB/s); "
        f"latency p50 {pct(lat, 50):.0f} ms, p95 {pct(lat, 95):.0f} ms, "
        f"mean {statistics.mean(lat):.0f} ms"
    )
    print(
        f"collector: server CPU {cpu:.2f} s = {per:.2f} ms per measurement, i.e. "
        f"{len(acked) / cpu:.0f} measurements per CPU-second "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"collector: lost {lost}, duplicated {duplicated} "
        f"(after resubmitting {len(again_idx)}: {changed} got another uid), "
        f"errors {errors + re_errors}, stored {page['metadata']['count']}"
    )
    return rate, per, lost > 0 or duplicated > 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--resubmit", type=int, default=500)
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="also run the same load against asyncio + h11 and print the ratios",
    )
    args = ap.parse_args()
    if not 1 <= args.n <= 100_000:
        ap.error("--n must be between 1 and 100000 (the check lists every stored row)")
    if not 1 <= args.concurrency <= 1024:
        ap.error("--concurrency must be between 1 and 1024")
    rng = random.Random(5)
    bodies = [
        orjson.dumps({"format": "json", "content": measurement(rng, i)}) for i in range(args.n)
    ]
    runs = [("didban serve: " + server_stack(), serve)]
    if args.baseline:
        runs.append(("baseline: asyncio + h11", serve_baseline))
    results: list[tuple[float, float]] = []
    failed = False
    for stack, start in runs:
        work = Path(tempfile.mkdtemp(prefix="didban-load-"))
        port = 19000 + os.getpid() % 1000 + len(results)
        try:
            proc = start(work / "data", port)
            try:
                rate, per, bad = load(proc, port, bodies, args, stack)
                results.append((rate, per))
                failed = failed or bad
            finally:
                stop(proc)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if len(results) == 2:
        (r1, c1), (r0, c0) = results
        print(
            f"ratio (didban serve / baseline): rate x{r1 / r0:.2f}, "
            f"server CPU per measurement x{c1 / c0:.2f}"
        )
    print("targets: rate >= 500/s, lost 0, duplicated 0")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
