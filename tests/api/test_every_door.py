"""Every entry point of a measurement, sent nesting depths and sizes up to and past the
limits: the collector (``/api/v1/submit_measurement``, ``/report/{id}``), the report
opening (``POST /report``), and the commands ``didban ingest``, ``didban analyze`` and
``didban report``. Each either takes a record or refuses it clearly — a 4xx with one
sentence, or ``FILE:LINE: reason`` and a non-zero exit only when nothing was good — never
a 5xx or a traceback, and a refused record is stored and judged nowhere.

The command doors read a file of three records, the one under test between two good ones
(or alone): the good ones are always taken. The store and the collector keep at most
``MAX_DEPTH`` levels; ``analyze`` and ``report`` judge a record as deep as their decoder
follows (hundreds of levels) and refuse a deeper one the same way.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import measurement
from test_contract import bodies, nothing_stored, open_report, refused, with_deep
from typer.testing import CliRunner

from didban.api.body import BODY_DEPTH
from didban.cli import app
from didban.model.admission import MAX_DEPTH
from didban.store.store import Store

runner = CliRunner()
BODY_LIMIT: Final = 64 * 1024  # the test app's --max-body (tests/api/conftest.py)
# a record this deep is past any decoder's reach (msgspec's and orjson's stop near 1,000)
SURELY_TOO_DEEP: Final = 2000
DOORS: Final = ("submit", "submit-string", "report", "open", "ingest", "analyze", "report-cmd")


def _record_file(directory: Path, depth: int, pad: int, alone: bool, where: str) -> Path:
    """good, the record under test (a value ``depth`` levels deep in it), good; or it alone."""
    deep: dict[str, Any] = {**measurement(1), "pad": "x" * pad}
    if where == "test_keys":  # where the rules read: test_keys.queries
        deep["test_keys"] = {**deep["test_keys"], "queries": "__DEEP__"}
    else:
        deep["deep"] = "__DEEP__"
    lines = [with_deep(deep, depth)]
    if not alone:
        lines = [json.dumps(measurement(2)), *lines, json.dumps(measurement(3))]
    f = directory / "m.jsonl"
    f.write_text("\n".join(lines) + "\n")
    return f


def _clean(r: Any) -> str:
    """The command's whole output, checked for what must never be in it."""
    out = r.output
    assert "Traceback" not in out and "RecursionError" not in out, out
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return str(out)


def _command_door(door: str, depth: int, pad: int, alone: bool, where: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        f = _record_file(d, depth, pad, alone, where)
        level = depth + (2 if where == "test_keys" else 1)  # the record itself is level 1
        refusal = f"{f}:{1 if alone else 2}: "
        goods = 0 if alone else 2
        if door == "ingest":
            r = runner.invoke(app, ["ingest", str(f), "--data-dir", str(d / "data")])
            out = _clean(r)
            taken = level <= MAX_DEPTH
            assert (refusal in out) == (not taken), out
            assert "nests more than 64 levels" in out or taken, out
            assert r.exit_code == (1 if alone and not taken else 0), out
            s = Store(d / "data", classifier=None)
            try:
                assert s.count() == goods + (1 if taken else 0)
            finally:
                s.close()
            return
        if door == "analyze":
            target = d / "v.jsonl"
            r = runner.invoke(app, ["analyze", str(f), "-q", "--jobs", "1", "-o", str(target)])
        else:
            target = d / "r.html"
            r = runner.invoke(app, ["report", "-i", str(f), "-o", str(target)])
        out = _clean(r)
        taken = refusal not in out
        if level <= MAX_DEPTH:
            assert taken, out  # what the store keeps is always judged
        if depth >= SURELY_TOO_DEEP:
            assert not taken, out
        if not taken:
            assert "too deeply to be read" in out, out
        if alone and not taken:
            assert r.exit_code == 1 and not target.exists(), out
            return
        assert r.exit_code == 0, out
        judged = goods + (1 if taken else 0)
        if door == "analyze":
            assert len(target.read_bytes().splitlines()) == judged
        else:
            assert f"report with {judged} verdict" in out


@settings(
    max_examples=70,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    door=st.sampled_from(DOORS),
    depth=st.sampled_from(
        [0, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, 255, 400, 1024, 1025, SURELY_TOO_DEEP, 20_000]
    )
    | st.integers(min_value=0, max_value=1500),
    pad=st.sampled_from([0, 63 * 1024, BODY_LIMIT]) | st.integers(min_value=0, max_value=80 * 1024),
    alone=st.booleans(),
    where=st.sampled_from(["top", "test_keys"]),
)
def test_every_door_takes_a_record_or_refuses_it_clearly(
    client: TestClient, store: Store, door: str, depth: int, pad: int, alone: bool, where: str
) -> None:
    if door in ("ingest", "analyze", "report-cmd"):
        _command_door(door, depth, pad, alone, where)
        return
    before = store.count()
    rid = open_report(client)
    path, text = bodies(rid, measurement(depth * 100_000 + pad), depth, pad)[door]
    r = client.post(path, content=text, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    size = len(text.encode())
    fits = size <= BODY_LIMIT and depth + 1 <= (BODY_DEPTH if door == "open" else MAX_DEPTH)
    if fits:
        assert r.status_code == 200, (door, depth, size, r.text)
        assert store.count() == before + (0 if door == "open" else 1)
    else:
        refused(r, 413 if size > BODY_LIMIT else 400)
        assert store.count() == before


def test_nothing_is_stored_from_a_file_of_refused_records(tmp_path: Path) -> None:
    f = _record_file(tmp_path, MAX_DEPTH, 0, alone=True, where="top")
    r = runner.invoke(app, ["ingest", str(f), "--data-dir", str(tmp_path / "data")])
    assert r.exit_code == 1 and f"{f}:1: the measurement nests more than 64" in _clean(r)
    s = Store(tmp_path / "data", classifier=None)
    try:
        assert nothing_stored(s)
    finally:
        s.close()


@pytest.mark.parametrize("depth", [400, 5000])
def test_ingest_skips_a_deep_record_with_its_line_and_keeps_the_others(
    tmp_path: Path, depth: int
) -> None:
    """400 levels once stopped the whole ingest with a TypeError; past orjson's 1,024 the
    refusal said 'not valid JSON (depth limit exceeded ...)'."""
    f = _record_file(tmp_path, depth, 0, alone=False, where="test_keys")
    r = runner.invoke(app, ["ingest", str(f), "--data-dir", str(tmp_path / "data")])
    assert r.exit_code == 0, r.output
    assert f"{f}:2: the measurement nests more than 64 levels of objects and arrays" in _clean(r)
    s = Store(tmp_path / "data", classifier=None)
    try:
        assert s.count() == 2
    finally:
        s.close()
