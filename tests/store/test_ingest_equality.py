"""The store's verdicts are ``didban analyze``'s: the same records, the same run-level pass,
whether ingest derives in this process or in workers, whatever the block boundaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from typer.testing import CliRunner

from didban.cli import app
from didban.files.reader import iter_records
from didban.model.verdict import Verdict
from didban.store import rows
from didban.store.derive import uid_for
from didban.store.ingest import ingest
from didban.store.store import Store
from didban.store.uid import content_hash
from ingest_corpus import runs, write


def corpus(tmp_path: Path, ooni_fixtures: Path) -> list[Path]:
    """Runs cut across two gzip files and a plain one (a run continues from one file into
    the next), a record repeated inside its run, and OONI's own fixtures."""
    records = runs(40)
    assert len(records) > 300
    a, b, c = records[:101], records[101:250], records[250:]
    b.insert(7, b[3])  # a duplicate, in the same run
    return [
        write(tmp_path / "in" / "1.jsonl.gz", a),
        write(tmp_path / "in" / "2.jsonl.gz", b),
        write(tmp_path / "in" / "3.jsonl", c),
        ooni_fixtures,
    ]


def analyzed(tmp_path: Path, inputs: list[Path]) -> list[Verdict]:
    out = tmp_path / "verdicts.jsonl"
    r = CliRunner().invoke(app, ["analyze", *map(str, inputs), "-q", "-o", str(out)])
    assert r.exit_code == 0, r.output
    decoder = msgspec.json.Decoder(Verdict)
    return [decoder.decode(line) for line in out.read_bytes().splitlines()]


def store_uids(inputs: list[Path]) -> list[str]:
    """The uid the store gives each record, in input order (as ``analyze`` reads them)."""
    from didban.files.kinds import iter_files

    out = []
    for path in iter_files(inputs):
        for rec in iter_records(path):
            m = orjson.loads(rec.data)
            out.append(uid_for(m, content_hash(m)))
    return out


def expected_rows(tmp_path: Path, inputs: list[Path]) -> dict[str, dict[str, Any]]:
    """``analyze``'s verdicts as the store's verdict rows, by uid (the first copy of a
    repeated record)."""
    verdicts = analyzed(tmp_path, inputs)
    uids = store_uids(inputs)
    assert len(verdicts) == len(uids)
    out: dict[str, dict[str, Any]] = {}
    for v, uid in zip(verdicts, uids, strict=True):
        out.setdefault(uid, rows.verdict_row(v, uid))
    return out


def stored_rows(store: Store) -> dict[str, dict[str, Any]]:
    got = store.reader.rows("SELECT * EXCLUDE (day) FROM {verdicts}")
    return {r["measurement_uid"]: r for r in got}


@pytest.mark.parametrize(("jobs", "block_bytes"), [(1, 4000), (1, 1 << 23), (2, 6000)])
def test_the_verdicts_table_is_what_analyze_prints(
    tmp_path: Path, ooni_fixtures: Path, jobs: int, block_bytes: int
) -> None:
    inputs = corpus(tmp_path, ooni_fixtures)
    expected = expected_rows(tmp_path, inputs)
    methods = {r["method"] for r in expected.values()}
    assert {"nin.isolated", "shutdown"} <= methods  # the run-level pass had work to do
    store = Store(tmp_path / "d")
    try:
        rep = ingest(store, inputs, jobs=jobs, block_bytes=block_bytes)
        assert rep.duplicates == 1 and rep.added == len(expected)
        got = stored_rows(store)
    finally:
        store.close()
    assert got == expected
    # the measurements table carries the same (run-level) states
    store = Store(tmp_path / "d")
    try:
        states = store.reader.rows("SELECT measurement_uid, state, method FROM {measurements}")
    finally:
        store.close()
    assert {r["measurement_uid"]: (r["state"], r["method"]) for r in states} == {
        uid: (r["state"], r["method"]) for uid, r in expected.items()
    }


def test_a_run_relabelled_after_its_block_is_archived_is_stored_relabelled(
    tmp_path: Path,
) -> None:
    """The head of a run in one block, its end (which decides it) many blocks later."""
    records = runs(3)[:12]  # an isolated run, then a shut-down one
    first = write(tmp_path / "a.jsonl", records[:4])
    second = write(tmp_path / "b.jsonl", records[4:])
    expected = expected_rows(tmp_path, [first, second])
    store = Store(tmp_path / "d")
    try:
        ingest(store, [first, second], jobs=1, block_bytes=1)  # one record per block
        assert stored_rows(store) == expected
    finally:
        store.close()


def test_a_run_that_resumes_after_another_is_judged_in_two_parts(tmp_path: Path) -> None:
    """A, B, A again (the same report id): ``analyze`` judges three runs, so must ingest,
    with the whole sequence in one block, and with A's parts at the blocks' edges."""
    isolated, shut = runs(2)[:6], runs(2)[6:13]
    records = isolated[:4] + shut + isolated[4:]  # A's international part, B, A's domestic
    path = write(tmp_path / "a.jsonl", records)
    expected = expected_rows(tmp_path, [path])
    assert "nin.isolated" not in {r["method"] for r in expected.values()}
    for block_bytes in (1 << 20, 4000):
        store = Store(tmp_path / f"d{block_bytes}")
        try:
            ingest(store, [path], jobs=1, block_bytes=block_bytes)
            assert stored_rows(store) == expected
        finally:
            store.close()


def test_a_rebuilt_store_has_the_same_verdicts(tmp_path: Path) -> None:
    """``store rebuild`` re-derives from the archive with the run-level pass over the
    archive's order, which keeps each input file's order."""
    records = runs(12)
    inputs = [write(tmp_path / "a.jsonl", records[:50]), write(tmp_path / "b.jsonl", records[50:])]
    expected = expected_rows(tmp_path, inputs)
    store = Store(tmp_path / "d")
    try:
        ingest(store, inputs, jobs=1, block_bytes=5000)
        assert stored_rows(store) == expected
        assert store.rebuild() == len(expected)
        assert stored_rows(store) == expected
    finally:
        store.close()
