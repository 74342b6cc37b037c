"""``map_records``: any picklable function over the records of measurement files, in this
process or in worker processes, with the same results, errors, order and counts."""

from __future__ import annotations

import gzip
import json
from functools import partial
from pathlib import Path

import pytest

from didban.files import pool, tasks


class Odd(ValueError):
    """The record is refused."""


def size_unless_odd(data: bytes, limit: int) -> int:
    """The record's ``n`` field; refused when it is odd or above ``limit``."""
    n = json.loads(data)["n"]
    if n % 2 or n > limit:
        raise Odd(f"{n} is odd or above {limit}")
    return int(n)


def _lines(start: int, count: int) -> bytes:
    return b"".join(
        json.dumps({"n": i, "pad": "x" * 50}).encode() + b"\n" for i in range(start, start + count)
    )


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setattr(tasks, "CHUNK_BYTES", 1024)  # many byte ranges, cut inside lines
    monkeypatch.setattr(pool, "PARALLEL_MIN_BYTES", 0)
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.jsonl").write_bytes(_lines(0, 100))
    (d / "b.jsonl.gz").write_bytes(gzip.compress(_lines(100, 60)))
    (d / "c.jsonl.gz").write_bytes(gzip.compress(_lines(200, 60))[:-30])  # truncated
    (d / "d.json").write_bytes(json.dumps({"n": 4}, indent=2).encode())
    (d / "notes.txt").write_text("not a measurement file")
    return [d, d / "a.jsonl"]  # a.jsonl comes twice: its lines numbered from 1 again


def _run(paths: list[Path], jobs: int) -> tuple[list[tuple[str, int, int]], list[str], pool.Counts]:
    errors: list[str] = []
    counts = pool.Counts()
    work = partial(size_unless_odd, limit=240)
    got = [
        (rec.path.name, rec.line, n)
        for rec, n in pool.map_records(
            paths, work, refuse=(Odd,), on_error=errors.append, counts=counts, jobs=jobs
        )
    ]
    return got, errors, counts


def test_workers_give_what_one_process_gives(inputs: list[Path]) -> None:
    serial = _run(inputs, 1)
    assert _run(inputs, 2) == serial
    got, errors, counts = serial
    assert got[:2] == [("a.jsonl", 1, 0), ("a.jsonl", 3, 2)]
    assert ("d.json", 1, 4) in got
    assert sum(1 for name, *_ in got if name == "a.jsonl") == 100  # 50 twice
    assert "a.jsonl:2: 1 is odd or above 240" in errors[0]
    assert any("c.jsonl.gz: cannot read:" in e for e in errors)
    assert counts.unreadable_files == 1
    assert counts.records == len(got) and counts.refused == len(errors) - 1


def test_jobs_for_keeps_small_inputs_in_this_process(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(_lines(0, 10))
    assert pool.jobs_for([tmp_path], 2) == 1
    assert pool.jobs_for([tmp_path], 1) == 1


def test_a_finished_pool_leaves_no_thread_in_the_count(inputs: list[Path]) -> None:
    """The thread that managed a pool lingers for a moment after it is joined; it must not
    count as a thread of this process, or the next pool starts its workers afresh (slower,
    and it re-runs an unguarded ``__main__``) where it could fork."""
    before = pool._threads()
    for _ in range(6):
        assert len(_run(inputs, 2)[0]) > 0
        assert pool._threads() == before
