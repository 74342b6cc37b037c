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

Usage: python bench/collector_load.py [--n 10000] [--concurrency 32] [--resubmit 500]
"""

from __future__ import annotations

import argparse
import asyncio
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
                    status, data = await conn.post("/api/v1/submit_measurement", bodies[i])
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--resubmit", type=int, default=500)
    args = ap.parse_args()
    rng = random.Random(5)
    bodies = [
        orjson.dumps({"format": "json", "content": measurement(rng, i)}) for i in range(args.n)
    ]
    mb = sum(len(b) for b in bodies) / 1e6
    work = Path(tempfile.mkdtemp(prefix="didban-load-"))
    port = 19000 + os.getpid() % 1000
    proc: subprocess.Popen[bytes] = serve(work / "data", port)
    try:
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        acked, lat, errors = asyncio.run(submit_all(port, bodies, args.concurrency))
        dt = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        again_idx = rng.sample(range(args.n), min(args.resubmit, args.n))
        re_acked, _, re_errors = asyncio.run(
            submit_all(port, [bodies[i] for i in again_idx], args.concurrency)
        )
        changed = sum(1 for k, i in enumerate(again_idx) if re_acked.get(k) != acked.get(i))
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
            page = c.get("/api/v1/measurements", params={"limit": 100_000}).json()
        listed = [r["measurement_uid"] for r in page["results"]]
        stored = set(listed)
        lost = sum(1 for uid in acked.values() if uid not in stored)
        duplicated = max(0, page["metadata"]["count"] - len(set(acked.values()))) + changed
        print(
            f"collector: {len(acked)} of {args.n} acknowledged in {dt:.2f} s "
            f"({mb:.1f} MB, concurrency {args.concurrency})"
        )
        print(
            f"collector: rate {len(acked) / dt:.0f} measurements/s ({mb / dt:.1f} MB/s); "
            f"latency p50 {pct(lat, 50):.0f} ms, p95 {pct(lat, 95):.0f} ms, "
            f"mean {statistics.mean(lat):.0f} ms"
        )
        print(
            f"collector: server CPU {cpu:.2f} s = {cpu / max(len(acked), 1) * 1000:.2f} ms per "
            f"measurement, i.e. {len(acked) / cpu:.0f} measurements per CPU-second "
            f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        print(
            f"collector: lost {lost}, duplicated {duplicated} "
            f"(after resubmitting {len(again_idx)}: {changed} got another uid), "
            f"errors {errors + re_errors}, stored {page['metadata']['count']}"
        )
        print("targets: rate >= 500/s, lost 0, duplicated 0")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
