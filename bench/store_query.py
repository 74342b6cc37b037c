"""Benchmark: store ingest speed and the API's 30-day country × service × day aggregation.

Two parts, one run:

1. **Ingest.** Writes N realistic Web Connectivity measurements (DNS, TCP, TLS with a
   certificate, HTTP with headers and a few KB of body, a control) as a JSONL file, then
   runs ``didban.store.ingest`` on it into a fresh store — the path ``didban ingest``
   takes: worker processes deriving blocks, the parent archiving (fsync), indexing and
   writing the three Parquet tables in batches — and prints MB/s and measurements/s
   (``bench/ingest_throughput.py`` measures that path on OONI-shaped archive files).
2. **Query.** Generates M synthetic rows (default 10 million, over 365 days, 30
   countries, every catalog service) straight into the ``measurements`` table's hive
   Parquet layout with DuckDB, starts ``didban serve`` on that data directory, and times
   Q requests of ``GET /api/v1/aggregation?probe_cc=CC&axis_x=measurement_start_day&
   axis_y=service&time_grain=day`` over random 30-day windows (the country page's
   service × day grid), plus the same without a country filter and axis_x=probe_cc.
   Prints p50/p95 latency; target p95 <= 200 ms.

Usage: python bench/store_query.py [--rows 10000000] [--sample 10000] [--queries 100]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx2
import orjson

from didban.data import catalog
from didban.files.pool import jobs_for
from didban.store.ingest import ingest
from didban.store.store import Store

CCS = [
    "IR",
    "CN",
    "RU",
    "TM",
    "MM",
    "PK",
    "TR",
    "EG",
    "SA",
    "AE",
    "VN",
    "ET",
    "BY",
    "KZ",
    "UZ",
    "IN",
    "ID",
    "BR",
    "US",
    "DE",
    "GB",
    "FR",
    "IT",
    "NL",
    "CA",
    "AU",
    "JP",
    "KR",
    "MX",
    "NG",
]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(
        rng.choice(["news", "world", "persian", "video", "report", "iran"]) for _ in range(n)
    )


def measurement(rng: random.Random, i: int) -> dict[str, Any]:
    svc = rng.choice(catalog.services())
    url = svc.urls[0]
    host = url.split("/")[2]
    ip = f"157.240.{i % 250}.{(i // 250) % 250 + 1}"
    kind = rng.choice(["ok", "ok", "dns", "tls", "tcp"])
    start = f"2026-11-01 {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"  # one day, 24 buckets
    cert = base64.b64encode(rng.randbytes(1400)).decode()
    body = f"<html><head><title>{svc.name}</title></head><body>{_words(rng, 500)}</body></html>"
    dns_ip = "10.10.34.36" if kind == "dns" else ip
    tls_fail = "connection_reset" if kind == "tls" else None
    tcp_fail = "generic_timeout_error" if kind == "tcp" else None
    return {
        "annotations": {"architecture": "amd64", "engine_name": "didban", "platform": "linux"},
        "data_format_version": "0.2.0",
        "input": url,
        "measurement_start_time": start,
        "probe_asn": rng.choice(["AS197207", "AS58224", "AS44244", "AS16322"]),
        "probe_cc": "IR",
        "probe_ip": "127.0.0.1",
        "probe_network_name": "Mobile Communication Company of Iran PLC",
        "report_id": f"20261101T000000Z_webconnectivity_IR_197207_n0_bench{i:010d}",
        "resolver_asn": "AS197207",
        "resolver_ip": "127.0.0.1",
        "software_name": "didban",
        "software_version": "0.1.0",
        "test_name": "web_connectivity",
        "test_runtime": 1.2,
        "test_start_time": start,
        "test_version": "0.4.3",
        "test_keys": {
            "agent": "redirect",
            "queries": [
                {
                    "hostname": host,
                    "query_type": "A",
                    "engine": "system",
                    "resolver_address": "",
                    "failure": None,
                    "answers": [{"answer_type": "A", "ipv4": dns_ip, "ttl": 300}],
                    "t0": 0.0,
                    "t": 0.02,
                }
            ],
            "tcp_connect": [
                {
                    "ip": dns_ip,
                    "port": 443,
                    "status": {"success": tcp_fail is None, "failure": tcp_fail},
                    "t0": 0.02,
                    "t": 0.05,
                }
            ],
            "tls_handshakes": []
            if tcp_fail
            else [
                {
                    "network": "tcp",
                    "address": f"{dns_ip}:443",
                    "server_name": host,
                    "failure": tls_fail,
                    "tls_version": "TLSv1.3",
                    "cipher_suite": "TLS_AES_128_GCM_SHA256",
                    "negotiated_protocol": "h2",
                    "peer_certificates": [{"data": cert, "format": "base64"}],
                    "t0": 0.05,
                    "t": 0.09,
                }
            ],
            "requests": [
                {
                    "request": {"url": url, "method": "GET", "headers": {"Host": host}},
                    "response": None
                    if (tcp_fail or tls_fail)
                    else {
                        "code": 200,
                        "body": body,
                        "headers": {"Content-Type": "text/html", "Server": "proxygen"},
                    },
                    "failure": tcp_fail or tls_fail,
                    "t0": 0.09,
                    "t": 0.3,
                }
            ],
            "control": {
                "dns": {"failure": None, "addrs": [ip]},
                "tcp_connect": {f"{ip}:443": {"status": True, "failure": None}},
                "http_request": {
                    "body_length": len(body),
                    "failure": None,
                    "title": svc.name,
                    "headers": {"Content-Type": "text/html"},
                    "status_code": 200,
                },
            },
            "control_failure": None,
        },
    }


def bench_ingest(n: int, work: Path) -> None:
    rng = random.Random(7)
    src = work / "sample.jsonl"
    with src.open("wb") as fh:
        for i in range(n):
            fh.write(orjson.dumps(measurement(rng, i)) + b"\n")
    size = src.stat().st_size
    store = Store(work / "ingest-data")
    jobs = jobs_for([src], 0)
    t0 = time.perf_counter()
    rep = ingest(store, [src], jobs=jobs)
    dt = time.perf_counter() - t0
    obs = store.reader.rows("SELECT count(*) AS n FROM {observations}")[0]["n"]
    store.close()
    print(f"ingest: {n} measurements, {size / 1e6:.1f} MB JSONL in {dt:.2f} s")
    print(
        f"ingest: {size / 1e6 / dt:.1f} MB/s, {rep.added / dt:.0f} measurements/s "
        f"({obs} observation rows; classifier, fsync and Parquet included; "
        f"{f'{jobs} worker processes' if jobs > 1 else 'in one process'})"
    )


def generate(rows: int, data_dir: Path, days: int, end: date) -> None:
    out = data_dir / "tables" / "measurements"
    out.mkdir(parents=True, exist_ok=True)
    services = [s.id for s in catalog.services()]
    cats = [s.category for s in catalog.services()]
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET memory_limit = '6GB'")
    start = end - timedelta(days=days)
    t0 = time.perf_counter()
    # Deterministic pseudo-random columns from hash(i); countries skewed like real volume.
    con.execute(
        f"""
        COPY (
          WITH base AS (
            SELECT i, hash(i) AS h, hash(i * 7919) AS g FROM range({rows}) t(i)
          ), cols AS (
            SELECT i, h, g,
              CAST(least(floor(pow((h % 1000000) / 1000000.0, 2) * {len(CCS)}),
                         {len(CCS) - 1}) AS INT) AS cci,
              CAST(g % {len(services)} AS INT) AS si,
              TIMESTAMP '{start} 00:00:00'
                + to_microseconds(CAST(hash(i * 31 + 7) % ({days} * 86400000000) AS BIGINT)) AS t
            FROM base
          )
          SELECT
            printf('%s_%s_webconnectivity_%016x', strftime(t, '%Y%m%d%H%M%S.000000'),
                   (?)[cci + 1], h) AS measurement_uid,
            printf('%sZ_webconnectivity_n0_%d', strftime(t, '%Y%m%dT%H%M%S'), i) AS report_id,
            'https://' || (?)[si + 1] || '.example/' AS input,
            (?)[si + 1] || '.example' AS domain,
            (?)[si + 1] AS service,
            (?)[si + 1] AS category_code,
            (?)[cci + 1] AS probe_cc,
            CAST(1000 + (g // 7) % 40 AS BIGINT) AS probe_asn,
            NULL::VARCHAR AS probe_network_name,
            NULL::BIGINT AS resolver_asn,
            'web_connectivity' AS test_name,
            '0.4.3' AS test_version, 'didban' AS software_name, '0.1.0' AS software_version,
            t AS measurement_start_time, t AS test_start_time, 1.0 AS test_runtime,
            t AS received_at,
            CASE WHEN g % 10 < 6 THEN 'ok' WHEN g % 10 < 8 THEN 'blocked'
                 WHEN g % 10 = 8 THEN 'down' ELSE 'inconclusive' END AS state,
            CASE WHEN g % 10 IN (6, 7) THEN 'dns' END AS layer,
            CASE WHEN g % 10 IN (6, 7) THEN 'dns.hijack' END AS method,
            CASE WHEN g % 10 IN (6, 7) THEN 'dns.hijack' END AS blocking_type,
            (g % 10 IN (6, 7)) AS anomaly, (g % 10 = 6) AS confirmed, (g % 10 >= 8) AS failure,
            'bench' AS rules_version,
            CAST(t AS DATE) AS day
          FROM cols

        ) TO '{out}' (FORMAT parquet, PARTITION_BY (day), COMPRESSION zstd, OVERWRITE_OR_IGNORE)
        """,
        [CCS, services, services, services, cats, CCS],
    )
    files = list(out.rglob("*.parquet"))
    size = sum(f.stat().st_size for f in files)
    print(
        f"query: generated {rows:,} rows over {days} days in {time.perf_counter() - t0:.1f} s "
        f"({len(files)} files, {size / 1e6:.0f} MB)"
    )


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "didban.cli",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc
        except httpx2.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("didban serve did not start")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def bench_query(rows: int, queries: int, work: Path, reuse: Path | None) -> None:
    data_dir = reuse or work / "query-data"
    end = date(2026, 11, 21)
    days = 365
    if reuse is None or not (data_dir / "tables").exists():
        generate(rows, data_dir, days, end)
    port = 18000 + os.getpid() % 1000
    proc = serve(data_dir, port)
    rng = random.Random(11)
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            for label, fixed in (
                (
                    "country × service × day (one country)",
                    {"axis_x": "measurement_start_day", "axis_y": "service"},
                ),
                ("all countries × service, 30 days", {"axis_x": "probe_cc", "axis_y": "service"}),
            ):
                lat: list[float] = []
                cells = 0
                for k in range(queries + 3):
                    since = end - timedelta(days=rng.randint(30, days))
                    params = {
                        **fixed,
                        "since": since.isoformat(),
                        "until": (since + timedelta(days=30)).isoformat(),
                        "time_grain": "day",
                    }
                    if fixed["axis_x"] == "measurement_start_day":
                        params["probe_cc"] = rng.choice(CCS[:10])
                    t0 = time.perf_counter()
                    r = c.get("/api/v1/aggregation", params=params)
                    dt = time.perf_counter() - t0
                    r.raise_for_status()
                    if k >= 3:  # the first requests warm the connection and caches
                        lat.append(dt * 1000)
                        cells += len(r.json()["result"])
                print(
                    f"query: {label}: {queries} requests, p50 {pct(lat, 50):.0f} ms, "
                    f"p95 {pct(lat, 95):.0f} ms, mean {statistics.mean(lat):.0f} ms, "
                    f"{cells / queries:.0f} cells/response (target p95 <= 200 ms)"
                )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--sample", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--data", type=Path, help="generate the query data here once, then reuse it")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-query", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="didban-bench-"))
    try:
        if not args.skip_ingest:
            bench_ingest(args.sample, work)
        if not args.skip_query:
            bench_query(args.rows, args.queries, work, args.data)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
