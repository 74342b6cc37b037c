"""Benchmark: the explorer's pages over a store of 100 million measurements.

1. **Store.** Writes N generated rows (default 100,000,000 over 365 days, 30 countries,
   10 networks each, every catalog service plus other inputs) straight into the
   ``measurements`` table's hive layout with DuckDB, one sorted file per day (what
   compaction leaves) — no JSON through ingest: this is a query benchmark, and 100 M
   measurements through the classifier would take the machine days. Then
   ``store.rollups.refresh`` computes the daily rollups (timed), a few OONI fixture
   measurements go in through ``Store.add_batch`` (so ``/m/{uid}`` has a real archive
   record) and a few events are saved (``/event/{id}``, ``/timeline``).
2. **Pages.** Starts ``didban serve`` on that store and requests each page (English and
   Farsi) ``--rounds`` times on loopback, in interleaved rounds; prints p50 and p95 of the
   time to the whole answer (loopback adds well under a millisecond, so this is the
   server's time), the server process's CPU time per request (``/proc``; it does not
   depend on the neighbours' load as wall time does) and the bytes a first load
   transfers: the HTML and every stylesheet, script and font it references (fonts only
   for Farsi pages). Targets: p95 ≤ 300 ms, ≤ 500 KB. Three API questions are timed
   beside them: the 30-day country × service × day aggregation, a month's listing of one
   country, and the services of a country.

Usage: python bench/explorer.py [--rows 100000000] [--rounds 30] [--work DIR] [--reuse]
                                [--shots DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import httpx2
import orjson

from didban.data import catalog
from didban.events.record import Event
from didban.events.saved import Coverage, EventTable
from didban.store import rollups
from didban.store.store import Store

CCS = ["IR", "CN", "RU", "TM", "MM", "PK", "TR", "EG", "SA", "AE", "VN", "ET", "BY", "KZ",
       "UZ", "IN", "ID", "BR", "US", "DE", "GB", "FR", "IT", "NL", "CA", "AU", "JP", "KR",
       "MX", "NG"]  # fmt: skip
END = date(2026, 11, 30)
FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "shared/fixtures/ooni/backend_fastpath/web_connectivity_ir_fp.json"
)
TARGET_MS = 300.0
TARGET_KB = 500.0


def generate(rows: int, days: int, data_dir: Path) -> None:
    """One Parquet file per day, sorted by (probe_cc, measurement_start_time)."""
    services = [s.id for s in catalog.services()]
    cats = [s.category for s in catalog.services()]
    n_inputs = len(services) + 8  # 8 inputs outside the catalog
    per_day = rows // days
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET memory_limit = '4GB'")
    con.execute("SET threads = 2")
    t0 = time.perf_counter()
    for k in range(days):
        day = END - timedelta(days=days - 1 - k)
        out = data_dir / "tables" / "measurements" / f"day={day}"
        out.mkdir(parents=True, exist_ok=True)
        seed = k * per_day
        # A country blocks a service when hash(cc, service) says so (IR: most of them),
        # with the method a layer of its own; 8 % of measurements fail or are unclear.
        con.execute(
            f"""
            COPY (
              WITH base AS (
                SELECT i, hash(i) AS h, hash(i * 7919 + 1) AS g
                FROM range({seed}, {seed + per_day}) t(i)
              ), cols AS (
                SELECT i, h, g,
                  CAST(least(floor(pow((h % 1000000) / 1000000.0, 2) * {len(CCS)}),
                             {len(CCS) - 1}) AS INT) AS cci,
                  CAST(g % {n_inputs} AS INT) AS si,
                  TIMESTAMP '{day} 00:00:00'
                    + to_microseconds(CAST(hash(i * 31 + 7) % 86400000000 AS BIGINT)) AS t
                FROM base
              ), judged AS (
                SELECT *, (cci = 0 AND si % 4 != 3 AND si < {len(services)})
                          OR (cci BETWEEN 1 AND 9 AND (si * 7 + cci) % 5 = 0
                              AND si < {len(services)}) AS blocks,
                  (g // 11) % 100 AS noise
                FROM cols
              )
              SELECT
                printf('%s_%s_webconnectivity_%016x', strftime(t, '%Y%m%d%H%M%S.000000'),
                       (?)[cci + 1], h) AS measurement_uid,
                printf('%sZ_webconnectivity_%s_n0_%d', strftime(t, '%Y%m%dT%H%M%S'),
                       (?)[cci + 1], i) AS report_id,
                CASE WHEN si < {len(services)} THEN 'https://' || (?)[si + 1] || '.example/'
                     ELSE 'https://site' || si || '.example/' END AS input,
                CASE WHEN si < {len(services)} THEN (?)[si + 1] || '.example'
                     ELSE 'site' || si || '.example' END AS domain,
                CASE WHEN si < {len(services)} THEN (?)[si + 1] END AS service,
                CASE WHEN si < {len(services)} THEN (?)[si + 1] ELSE 'NEWS' END AS category_code,
                (?)[cci + 1] AS probe_cc,
                CAST(10000 + cci * 100 + (g // 7) % 10 AS BIGINT) AS probe_asn,
                NULL::VARCHAR AS probe_network_name, NULL::BIGINT AS resolver_asn,
                'web_connectivity' AS test_name, '0.4.3' AS test_version,
                'ooniprobe-cli' AS software_name, '3.22.0' AS software_version,
                t AS measurement_start_time, t AS test_start_time, 1.0 AS test_runtime,
                t AS received_at,
                CASE WHEN noise < 5 THEN 'inconclusive' WHEN noise < 8 THEN 'down'
                     WHEN blocks AND noise < 97 THEN 'blocked' ELSE 'ok' END AS state,
                CASE WHEN noise >= 8 AND blocks AND noise < 97
                     THEN ['dns', 'tls', 'tcp', 'http'][si % 4 + 1] END AS layer,
                CASE WHEN noise >= 8 AND blocks AND noise < 97 THEN ['dns.hijack', 'tls.sni.reset',
                     'tcp.timeout', 'http.blockpage'][si % 4 + 1] END AS method,
                CASE WHEN noise >= 8 AND blocks AND noise < 97
                     THEN ['dns', 'tcp_ip', 'tcp_ip', 'http-diff'][si % 4 + 1] END AS blocking_type,
                (noise >= 8 AND blocks AND noise < 97) AS anomaly,
                (noise >= 8 AND blocks AND noise < 97 AND si % 4 IN (0, 3)) AS confirmed,
                (noise < 8) AS failure,
                'bench' AS rules_version
              FROM judged
              ORDER BY probe_cc, measurement_start_time
            ) TO '{out}/part-0.parquet'
              (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 65536)
            """,
            [CCS, CCS, services, services, services, cats, CCS],
        )
        if k % 30 == 29:
            print(f"  generated {k + 1}/{days} days ({time.perf_counter() - t0:.0f} s)", flush=True)
    size = sum(f.stat().st_size for f in (data_dir / "tables").rglob("*.parquet"))
    print(
        f"store: {per_day * days:,} measurements over {days} days in "
        f"{time.perf_counter() - t0:.0f} s ({size / 1e9:.2f} GB of Parquet)"
    )


def _events(data_dir: Path) -> list[str]:
    """A few saved events (a block, its end, a shutdown) for /event and /timeline."""
    day = END - timedelta(days=12)
    evs = [
        Event(id=f"ev-{k:016x}", kind=kind, cc="IR", asns=[10000, 10001], target=target,
              layer=layer, method=method, onset_after=f"{day}T08:00:00Z",
              onset_before=f"{day}T09:00:00Z", resolved_after=res_a, resolved_before=res_b,
              confidence=0.95, n_measurements=1200, n_probes=40, witnesses=[], source="didban")
        for k, (kind, target, layer, method, res_a, res_b) in enumerate([
            ("block", "instagram", "tls", "tls.sni.reset", None, None),
            ("shutdown", None, None, "shutdown", f"{day}T20:00:00Z", f"{day}T21:00:00Z"),
            ("block", "signal", "dns", "dns.hijack", None, None),
        ], start=1)
    ]  # fmt: skip
    with EventTable(data_dir) as table:
        table.save(evs, Coverage("didban"))
    return [e.id for e in evs]


def build(rows: int, days: int, data_dir: Path) -> tuple[str | None, list[str]]:
    generate(rows, days, data_dir)
    uid = None
    with Store(data_dir, classifier="analysis") as store:
        t0 = time.perf_counter()
        n = rollups.refresh(store)
        print(f"rollups: {n} days refreshed in {time.perf_counter() - t0:.0f} s")
        if FIXTURE.exists():
            uid = store.add_batch([orjson.loads(FIXTURE.read_bytes())])[0].measurement_uid
            store.flush()
            rollups.refresh_stale(store)
    events = _events(data_dir)
    (data_dir / "bench.json").write_bytes(orjson.dumps({"uid": uid, "events": events}))
    return uid, events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "didban.cli", "serve", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(600):
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx2.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("didban serve did not start")


_ASSET = re.compile(r'(?:href|src)="(/static/explorer/[^"]+)"')
_FONT = re.compile(r"url\(([^)]+\.woff2)\)")


def first_load(client: httpx2.Client, base: str, path: str) -> int:
    """Bytes of the page and of every asset it references (fonts for Farsi pages)."""
    page = client.get(base + path, headers={"accept": "text/html"})
    total = len(page.content)
    for asset in dict.fromkeys(_ASSET.findall(page.text)):
        body = client.get(base + asset).content
        total += len(body)
        if asset.endswith(".css") and "/fa" in path:
            folder = asset.rsplit("/", 1)[0]
            for font in dict.fromkeys(_FONT.findall(body.decode())):
                total += len(client.get(f"{base}{folder}/{font}").content)
    return total


def screenshots(base: str, where: Path) -> None:
    """The country and service pages over the generated store, as docs/explorer.md shows
    them (Playwright with Debian's chromium)."""
    from playwright.sync_api import sync_playwright

    where.mkdir(parents=True, exist_ok=True)
    shots = {"bench-country-en": "/country/IR", "bench-country-fa": "/fa/country/IR",
             "bench-service-en": "/service/instagram", "bench-home-en": "/"}  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1024, "height": 800})
        for name, path in shots.items():
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            height = min(page.evaluate("document.documentElement.scrollHeight"), 2400)
            clip = {"x": 0, "y": 0, "width": 1024, "height": height}
            page.screenshot(path=str(where / f"{name}.png"), full_page=True, clip=clip)
        browser.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` and its threads (DuckDB's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="use the store already in --work")
    ap.add_argument("--shots", type=Path, default=None, help="also screenshot pages there")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="didban-explorer-bench-"))
    data_dir = work / "data"
    if args.reuse and (data_dir / "bench.json").exists():
        meta = orjson.loads((data_dir / "bench.json").read_bytes())
        uid, events = meta["uid"], meta["events"]
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
        uid, events = build(args.rows, args.days, data_dir)
    last = END
    since30 = last - timedelta(days=29)
    pages = [
        "/", "/country/IR", "/country/IR?probe_asn=AS10003", "/country/DE",
        "/service/instagram", f"/event/{events[0]}", "/timeline/IR", "/search",
        "/search?domain=telegram.example&probe_cc=IR", "/methods",
        "/fa/", "/fa/country/IR", "/fa/service/instagram", "/fa/search",
    ]  # fmt: skip
    if uid:
        pages += [f"/m/{uid}", f"/fa/m/{uid}"]
    api = [
        f"/api/v1/aggregation?probe_cc=IR&axis_x=measurement_start_day&axis_y=service"
        f"&since={since30}&until={last + timedelta(days=1)}&time_grain=day",
        f"/api/v1/measurements?probe_cc=IR&since={since30}&until={last + timedelta(days=1)}",
        f"/api/v1/services/IR?until={last + timedelta(days=1)}",
    ]
    port = free_port()
    proc = serve(data_dir, port)
    base = f"http://127.0.0.1:{port}"
    times: dict[str, list[float]] = {p: [] for p in [*pages, *api]}
    cpu: dict[str, float] = dict.fromkeys(times, 0.0)
    try:
        with httpx2.Client(timeout=120) as client:
            for p in times:  # warm: connections, page cache
                client.get(base + p, headers={"accept": "text/html"})
            for _ in range(args.rounds):
                for p in times:
                    c0 = cpu_seconds(proc.pid)
                    t0 = time.perf_counter()
                    r = client.get(base + p, headers={"accept": "text/html"})
                    times[p].append((time.perf_counter() - t0) * 1000)
                    cpu[p] += cpu_seconds(proc.pid) - c0
                    if r.status_code != 200:
                        raise SystemExit(f"{p}: HTTP {r.status_code} {r.text[:200]}")
            loads = {p: first_load(httpx2.Client(timeout=120), base, p) for p in pages}
        if args.shots:
            screenshots(base, args.shots)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    print(f"\n{'page':58} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms':>7} {'first load KB':>14}")
    worst_ms = worst_kb = worst_cpu = 0.0
    for p, xs in times.items():
        kb = loads.get(p, 0) / 1024
        worst_ms, worst_kb = max(worst_ms, pct(xs, 95)), max(worst_kb, kb)
        shown = p if len(p) <= 58 else p[:55] + "..."
        per = cpu[p] / len(xs) * 1000
        worst_cpu = max(worst_cpu, per)
        print(
            f"{shown:58} {pct(xs, 50):8.1f} {pct(xs, 95):8.1f} {per:7.1f} "
            f"{kb if p in loads else 0:14.1f}"
        )
    print(
        f"\nworst p95 {worst_ms:.0f} ms (target ≤ {TARGET_MS:.0f}), largest first load "
        f"{worst_kb:.0f} KB (target ≤ {TARGET_KB:.0f}); the server's CPU per request at "
        f"most {worst_cpu:.0f} ms; {args.rounds} interleaved rounds, load average "
        f"{os.getloadavg()[0]:.1f} (on a shared machine the wall times follow the load; "
        "the CPU times do not)"
    )
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
