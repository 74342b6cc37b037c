"""Benchmark: the Spark path (``didban.scale``) on ``local[1]`` and ``local[2]`` beside the
embedded ``didban ingest``, on the same OONI-shaped files (``bench/ingest_throughput.py``'s
corpus, in OONI's archive layout).

For each engine: ingest (derive, the run-level pass, de-duplication, the three Parquet
tables) as measurements/s and table rows/s, wall clock, Spark's session start-up printed
apart; then the API's aggregation (country × service × day) and the event series (1 h
buckets) over the tables each wrote, Spark against DuckDB. The Spark results are checked
against the embedded ones (row counts, aggregation and series equal). The load average is
printed before and after: on a shared machine the wall clock follows the neighbours.

Usage: python bench/spark_scale.py [--n 12000] [--files 6]   (needs make deps-spark)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from didban.events import series as event_series
from didban.store import queries
from didban.store.ingest import ingest as embedded_ingest
from didban.store.store import Store
from ingest_throughput import build


def table_rows(root: Path) -> int:
    con = duckdb.connect()
    total = 0
    for name in ("measurements", "observations", "verdicts"):
        files = [str(p) for p in (root / "tables" / name).rglob("*.parquet")]
        total += con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()[0]
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=12_000)
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--keep", type=Path, help="build the corpus here once and reuse it")
    args = ap.parse_args()

    from didban.scale import queries as spark_queries
    from didban.scale.ingest import ingest as spark_ingest
    from didban.scale.session import session

    work = Path(tempfile.mkdtemp(prefix="didban-spark-bench-"))
    try:
        root = args.keep or work / "ooni"
        files = sorted(root.rglob("*.jsonl.gz")) if args.keep and root.exists() else []
        if not files:
            files = build(root, args.n, args.files)
        size = sum(f.stat().st_size for f in files)
        print(f"corpus: {len(files)} files, {size / 1e6:.0f} MB gzip")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        since, until = datetime(2026, 11, 21), datetime(2026, 11, 22)
        f = event_series.Filters(since=since, until=until)

        store_dir = work / "store"
        store = Store(store_dir)
        t0 = time.perf_counter()
        rep = embedded_ingest(store, files)
        wall = time.perf_counter() - t0
        store.close()
        rows = table_rows(store_dir)
        print(
            f"embedded (didban ingest, a worker per CPU): {rep.added / wall:,.0f} "
            f"measurements/s, {rows / wall:,.0f} table rows/s ({wall:.1f} s)"
        )
        store = Store(store_dir, create=False)
        t0 = time.perf_counter()
        want_agg = queries.aggregate(store.reader, queries.Filters(), "probe_cc", "service", "day")
        agg_embedded = time.perf_counter() - t0
        store.close()
        t0 = time.perf_counter()
        want_grid = event_series.target_grid(
            event_series.VerdictSource.store(store_dir), f, timedelta(hours=1)
        )
        series_embedded = time.perf_counter() - t0
        print(
            f"embedded (DuckDB): aggregation {agg_embedded * 1000:.0f} ms, "
            f"series {series_embedded * 1000:.0f} ms"
        )

        for master in ("local[1]", "local[2]"):
            t0 = time.perf_counter()
            spark = session(master)
            start = time.perf_counter() - t0
            try:
                out = work / master.replace("[", "").replace("]", "")
                t0 = time.perf_counter()
                res = spark_ingest(spark, files, out)
                wall = time.perf_counter() - t0
                rows_spark = table_rows(out)
                t0 = time.perf_counter()
                agg = spark_queries.aggregate(spark, out / "tables", "probe_cc", "service", "day")
                agg_time = time.perf_counter() - t0
                t0 = time.perf_counter()
                grid = spark_queries.series(spark, out / "tables", timedelta(hours=1), since, until)
                series_time = time.perf_counter() - t0
            finally:
                spark.stop()
            same = (
                res.added == rep.added
                and rows_spark == rows
                and agg == want_agg
                and grid.keys == want_grid.keys
                and all(np.array_equal(grid.counts[k], v) for k, v in want_grid.counts.items())
            )
            print(
                f"spark {master}: {res.added / wall:,.0f} measurements/s, "
                f"{rows_spark / wall:,.0f} table rows/s ({wall:.1f} s, session start-up "
                f"{start:.1f} s apart); aggregation {agg_time * 1000:.0f} ms, series "
                f"{series_time * 1000:.0f} ms; equal to the embedded results: {same}"
            )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
