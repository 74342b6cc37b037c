"""An ingest killed half way (SIGKILL, workers and all) resumes: nothing is lost, nothing
is stored twice, and the tables hold every measurement once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from didban.store.store import Store
from ingest_corpus import runs, write


def count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT count(*) FROM msmt").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_a_killed_ingest_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    # ~13,500 measurements (20 MB: worker processes) in 9 gzip files; the first archive
    # commit comes after 8,192 (store.bulk.GROUP), the kill right after it
    records = runs(1500)
    per = len(records) // 9 + 1
    for k in range(9):
        write(tmp_path / "in" / f"{k}.jsonl.gz", records[k * per : (k + 1) * per])
    data = tmp_path / "d"
    cmd = [sys.executable, "-m", "didban.cli", "ingest", "--data-dir", str(data)]
    cmd += ["--jobs", "2", str(tmp_path / "in")]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while count(data / "index.sqlite") == 0 and proc.poll() is None:
        assert time.monotonic() < deadline, "the ingest stored nothing in 120 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the loader and its workers, mid-way
    proc.wait()
    partial = count(data / "index.sqlite")
    assert 0 < partial < len(records)  # killed half way
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    store = Store(data, create=False)
    try:
        assert store.count() == len(records)
        n = store.reader.rows(
            "SELECT count(*) AS n, count(DISTINCT measurement_uid) AS u FROM {measurements}"
        )[0]
        assert n == {"n": len(records), "u": len(records)}
        v = store.reader.rows("SELECT count(DISTINCT measurement_uid) AS u FROM {verdicts}")
        assert v[0]["u"] == len(records)
    finally:
        store.close()
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "0 files read, 9 already ingested" in third.stdout
