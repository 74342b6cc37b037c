"""Rollups: the same numbers as the measurements table, never stale, refreshed by
``store compact`` and ``store rebuild``, and a live store compacts under a reader."""

from __future__ import annotations

import random
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

from store_helpers import measurement
from typer.testing import CliRunner

from didban.cli import app
from didban.store import daily, queries, rollups
from didban.store.store import Store

URLS = [
    "https://www.instagram.com/",
    "https://telegram.org/",
    "https://signal.org/",
    "https://www.wikipedia.org/",
    "https://example.org/",  # no catalog service
]
STATES = ["ok", "blocked", "blocked+confirmed", "down", "inconclusive", None]


def _fill(store: Store, n: int, seed: int, start: int = 0) -> None:
    rng = random.Random(seed)
    batch = []
    for i in range(start, start + n):
        m = measurement(
            i,
            cc=rng.choice(["IR", "IR", "TM", "CN"]),
            asn=rng.choice(["AS197207", "AS58224", "AS44244"]),
            url=rng.choice(URLS),
            start=f"2026-11-{rng.randint(1, 9):02d} {rng.randint(0, 23):02d}:15:00",
        )
        want = rng.choice(STATES)
        if want:
            m["annotations"]["want"] = want
        batch.append(m)
    store.add_batch(batch)


CASES: list[tuple[dict[str, Any], Any, Any, Any]] = [
    ({}, "probe_cc", None, "day"),
    ({}, "measurement_start_day", "service", "day"),
    ({"probe_cc": ["IR"]}, "measurement_start_day", "blocking_type", "week"),
    ({"probe_asn": [58224]}, "state", "layer", "day"),
    ({"service": ["instagram", "telegram"]}, "probe_asn", "method", "month"),
    ({"probe_cc": ["IR", "TM"], "test_name": ["web_connectivity"]}, None, None, "day"),
]


def _both(store: Store) -> None:
    for more, ax, ay, grain in CASES:
        f = queries.Filters(since=datetime(2026, 11, 1), until=datetime(2026, 11, 10), **more)
        assert queries._rollup_for(f, [a for a in (ax, ay) if a], grain) is not None
        raw = queries.aggregate(store.reader, f, ax, ay, grain, use_rollups=False)
        rolled = queries.aggregate(store.reader, f, ax, ay, grain)
        assert rolled == raw, (more, ax, ay)


def test_rollups_give_the_tables_numbers_fresh_and_stale(store: Store) -> None:
    _fill(store, 400, seed=1)
    _both(store)  # nothing rolled up yet: every day answered from the table
    assert rollups.refresh(store) == 9
    assert rollups.stale_days(store) == []
    files = list((store.tables_root / "rollups").rglob("*.parquet"))
    assert {p.parent.parent.name for p in files} == {"daily_cc", "daily_asn"}
    _both(store)  # from the rollup files
    # a window of centuries reads the days the store has, not every day of the calendar
    wide = queries.Filters(
        since=datetime(94, 9, 26), until=datetime(2026, 12, 8), probe_asn=[58224]
    )
    assert queries.aggregate(store.reader, wide, "state", None, "day") == queries.aggregate(
        store.reader, wide, "state", None, "day", use_rollups=False
    )
    _fill(store, 50, seed=2, start=1000)  # new rows: their days are stale, still exact
    store.flush()
    assert rollups.stale_days(store)
    _both(store)
    # the explorer's questions agree with the aggregation
    cells = daily.grid(store.reader, "IR", date(2026, 11, 1), date(2026, 11, 9), [])
    f = queries.Filters(probe_cc=["IR"], since=datetime(2026, 11, 1), until=datetime(2026, 11, 10))
    agg = queries.aggregate(store.reader, f, "measurement_start_day", "service", "day", False)
    assert sum(c["measurements"] for c in cells) == sum(r["measurement_count"] for r in agg)
    assert sum(c["blocked"] for c in cells) == sum(
        r["anomaly_count"] + r["confirmed_count"] for r in agg
    )


def test_an_unrolled_store_and_a_query_outside_the_rollups_use_the_table(store: Store) -> None:
    _fill(store, 100, seed=3)
    f = queries.Filters(domain=["telegram.org"], since=datetime(2026, 11, 1))
    assert queries._rollup_for(f, ["probe_cc"], "day") is None  # domain is not rolled up
    rows = queries.aggregate(store.reader, f, "probe_cc", None, "day")
    assert sum(r["measurement_count"] for r in rows) > 0


def test_compact_and_rebuild_refresh_the_rollups(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store(data, classifier=None) as store:
        _fill(store, 60, seed=4)
        _fill(store, 60, seed=5, start=100)  # two flushes: two files per day
        store.flush()
        assert rollups.stale_days(store)
    runner = CliRunner()
    r = runner.invoke(app, ["store", "compact", "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    assert "refreshed the rollups of 9 days" in r.output
    with Store(data, classifier=None) as store:
        assert rollups.stale_days(store) == []
    r = runner.invoke(app, ["store", "rebuild", "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    assert "120 measurements; rollups of 9 days" in r.output
    with Store(data, classifier=None) as store:
        assert rollups.stale_days(store) == []


def test_compaction_and_refresh_on_a_live_store_under_a_concurrent_reader(store: Store) -> None:
    for k in range(6):  # six flushes: six files per day to merge
        _fill(store, 40, seed=10 + k, start=k * 100)
        store.flush()
    f = queries.Filters(since=datetime(2026, 11, 1), until=datetime(2026, 11, 10))
    expected = queries.aggregate(store.reader, f, "probe_cc", "state", "day", False)
    seen: list[list[dict[str, Any]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                seen.append(queries.aggregate(store.reader, f, "probe_cc", "state", "day"))
                seen.append(queries.aggregate(store.reader, f, "probe_cc", "state", "day", False))
        except BaseException as exc:  # the assertion below names it
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert rollups.refresh(store) == 9
        assert store.compact(min_files=2) > 0
        assert rollups.refresh_stale(store) == 9
    finally:
        stop.set()
        reader.join()
    assert not errors, errors
    assert len(seen) >= 2
    assert all(answer == expected for answer in seen)  # never a missing or doubled row
    assert queries.aggregate(store.reader, f, "probe_cc", "state", "day") == expected


def test_refresh_covers_rows_not_yet_flushed(store: Store) -> None:
    _fill(store, 30, seed=20)  # buffered in memory: no day file yet
    assert rollups.refresh(store) > 0
    assert rollups.stale_days(store) == []
