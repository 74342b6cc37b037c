"""Spark (``didban.scale``, on ``local[2]``) computes what the embedded path computes: the
same three tables row for row, the same aggregation, the same event series.

The session is started and stopped here, bound to 127.0.0.1 without its UI; the test is
skipped when pyspark or Java is missing (``make test`` installs both)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from didban.events import series as event_series
from didban.store import queries
from didban.store.ingest import ingest as embedded_ingest
from didban.store.store import Store
from ingest_corpus import runs, write

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip(
        "no Java runtime (make test installs openjdk-17-jre-headless)", allow_module_level=True
    )

from didban.scale import queries as spark_queries
from didban.scale.ingest import ingest as spark_ingest
from didban.scale.session import session


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    s = session("local[2]")
    conf = s.sparkContext.getConf()
    assert conf.get("spark.ui.enabled") == "false"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    yield s
    s.stop()


@pytest.fixture(scope="module")
def both(
    spark: Any, tmp_path_factory: pytest.TempPathFactory, ooni_fixtures: Path
) -> tuple[Path, Path]:
    """The same inputs ingested by ``didban ingest`` (a store) and by Spark (tables)."""
    tmp = tmp_path_factory.mktemp("scale")
    records = runs(40)
    a, b, c = records[:101], records[101:250], records[250:]
    b.insert(7, b[3])  # a duplicate
    inputs = [
        write(tmp / "in" / "1.jsonl.gz", a),
        write(tmp / "in" / "2.jsonl.gz", b),
        write(tmp / "in" / "3.jsonl", c),
        ooni_fixtures,
    ]
    store = Store(tmp / "store")
    try:
        rep = embedded_ingest(store, inputs, jobs=1)
    finally:
        store.close()
    res = spark_ingest(spark, inputs, tmp / "spark", block_bytes=6000)
    assert (res.added, res.duplicates, len(res.bad)) == (rep.added, rep.duplicates, len(rep.bad))
    assert res.bad == rep.bad
    return tmp / "store", tmp / "spark"


def table(root: Path, name: str) -> list[tuple[Any, ...]]:
    files = sorted(str(p) for p in (root / "tables" / name).rglob("*.parquet"))
    con = duckdb.connect()
    return con.execute(
        "SELECT * EXCLUDE (day), CAST(day AS VARCHAR) AS day FROM "
        "read_parquet(?, hive_partitioning = true) ORDER BY ALL",
        [files],
    ).fetchall()


@pytest.mark.parametrize("name", ["measurements", "observations", "verdicts"])
def test_the_tables_are_equal_row_for_row(both: tuple[Path, Path], name: str) -> None:
    embedded, spark_out = both
    mine = table(embedded, name)
    assert len(mine) > 300
    assert table(spark_out, name) == mine
    if name == "verdicts":  # the run-level pass crossed files in both
        methods = {r[12] for r in mine}
        assert {"nin.isolated", "shutdown"} <= methods


@pytest.mark.parametrize(
    ("axis_x", "axis_y", "grain"),
    [
        (None, None, "day"),
        ("probe_cc", "service", "day"),
        ("measurement_start_day", "method", "hour"),
        ("measurement_start_day", "probe_asn", "week"),
    ],
)
def test_the_aggregation_is_equal(
    spark: Any, both: tuple[Path, Path], axis_x: Any, axis_y: Any, grain: str
) -> None:
    embedded, spark_out = both
    store = Store(embedded, create=False)
    try:
        want = queries.aggregate(store.reader, queries.Filters(), axis_x, axis_y, grain)
    finally:
        store.close()
    got = spark_queries.aggregate(spark, spark_out / "tables", axis_x, axis_y, grain)
    assert len(want) > 0
    assert got == want


@pytest.mark.parametrize(
    ("by_layer", "window", "step"),
    [
        (False, (datetime(2026, 11, 21, 9), datetime(2026, 11, 22)), timedelta(minutes=10)),
        (True, (datetime(2026, 11, 21, 9), datetime(2026, 11, 22)), timedelta(minutes=10)),
        (False, (None, None), timedelta(days=1)),  # every verdict, OONI's fixtures' years too
    ],
)
def test_the_event_series_are_equal(
    spark: Any, both: tuple[Path, Path], by_layer: bool, window: Any, step: timedelta
) -> None:
    embedded, spark_out = both
    since, until = window
    src = event_series.VerdictSource.store(embedded)
    f = event_series.Filters(since=since, until=until)
    want = (
        event_series.layer_grid(src, f, step)
        if by_layer
        else event_series.target_grid(src, f, step)
    )
    got = spark_queries.series(spark, spark_out / "tables", step, since, until, by_layer=by_layer)
    assert want.n_series >= 6 and want.counts["ok"].sum() > 0
    assert (got.start, got.step, got.n_buckets, got.key_names) == (
        want.start,
        want.step,
        want.n_buckets,
        want.key_names,
    )
    assert got.keys == want.keys
    for name, counts in want.counts.items():
        assert np.array_equal(got.counts[name], counts), name
