"""``events detect --input V.parquet --format verdicts`` (didban analyze's Parquet output)
and ``events score`` (detected events against a scenario's ground truth), as a user runs
them on the files of a lab scenario measured in rounds."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from events_helpers import verdict, write_store
from typer.testing import CliRunner

from didban.analysis.output import verdict_schema
from didban.cli import app
from didban.events.record import Event, iso, read_jsonl, write_jsonl
from didban.lab.scenario import loads
from didban.model.scenario import End, Switch, encode

T0 = datetime(2026, 12, 8, 10, 0, 0)
MINUTE = timedelta(minutes=1)
SCENARIO = """
name: blink
switches:
  - {at: 0, profile: clean}
  - {at: 4m, profile: iran-2022}
  - {at: 8m, profile: clean}
duration: 12m
"""
BLOCKED = ("instagram", "whatsapp", "telegram", "signal")  # blocked by iran-2022
OPEN = ("digikala", "aparat")  # domestic: reachable under both profiles


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def _rounds() -> list[dict[str, Any]]:
    """Rounds every 10 s for 12 minutes, the blocked targets blocked in minutes 4 to 8,
    each round its own report."""
    rows = []
    for k in range(72):
        t = T0 + timedelta(seconds=10 * k)
        during = 4 * MINUTE <= t - T0 < 8 * MINUTE
        for service in BLOCKED + OPEN:
            state = "blocked" if during and service in BLOCKED else "ok"
            rows.append(verdict(t, state, asn=58224, service=service, report=f"round-{k}"))
    return rows


def _analyze_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows as ``didban analyze --output FILE.parquet`` writes them (times as OONI text)."""
    schema = verdict_schema()
    table = [
        {
            **{f.name: r.get(f.name) for f in schema},
            "measurement_start_time": f"{r['measurement_start_time']:%Y-%m-%d %H:%M:%S}",
        }
        for r in rows
    ]
    pq.write_table(pa.Table.from_pylist(table, schema=schema), path)
    return path


def _ground_truth(path: Path) -> Path:
    records: list[Switch | End] = []
    for i, step in enumerate(loads(SCENARIO).steps):
        t = T0 + timedelta(seconds=step.at)
        requested, applied = iso(t) or "", iso(t + timedelta(seconds=1)) or ""
        records.append(Switch(i, step.name, step.at, requested, applied, list(step.expected)))
    records.append(End(720.0, iso(T0 + 12 * MINUTE) or "", True, "duration reached"))
    path.write_bytes(b"".join(encode(r) + b"\n" for r in records))
    return path


def test_minute_buckets_over_analyze_output_equal_the_store(tmp_path: Path) -> None:
    rows = _rounds()
    parquet = _analyze_file(tmp_path / "verdicts.parquet", rows)
    store = write_store(tmp_path / "store", rows)
    from_file, from_store = tmp_path / "file.jsonl", tmp_path / "store.jsonl"
    code, stdout, stderr = _run(
        "events", "detect", "--input", str(parquet), "--format", "verdicts",
        "--bucket", "1m", "--output", str(from_file),
    )  # fmt: skip
    assert code == 0, stderr
    assert "1 event(s)" in stdout
    code, _, stderr = _run("events", "detect", "--data-dir", str(store), "--bucket", "1m",
                           "--no-save", "--output", str(from_store))  # fmt: skip
    assert code == 0, stderr
    (e,) = read_jsonl(from_file)
    assert list(read_jsonl(from_store)) == [e]
    # four targets switched together on one network: one event, the onset in minute 4
    assert (e.kind, e.target, e.asns, e.method) == ("block", None, [58224], "tls.sni.reset")
    assert e.onset_after == iso(T0 + 3 * MINUTE) and e.onset_before == iso(T0 + 5 * MINUTE)
    assert e.resolved_after == iso(T0 + 7 * MINUTE) and e.resolved_before == iso(T0 + 9 * MINUTE)
    # rounds are reports: 6 a minute from the first changed bucket to the end of the first
    # normal one
    assert e.n_probes == 30 and len(e.witnesses) == 20


def test_an_events_method_does_not_depend_on_the_order_of_the_verdicts(tmp_path: Path) -> None:
    """Two of the four targets reset at TLS, two answered with a bogon: a tie, which goes to
    the first method by name, read from a file in either order or from the store."""
    bogon = {"instagram", "telegram"}
    rows = []
    for r in _rounds():
        if r["state"] == "blocked" and r["input"].split(".")[1] in bogon:
            r = {**r, "method": "dns.injection.bogon", "layer": "dns"}
        rows.append(r)
    found = []
    for name, ordered in (("forward", rows), ("backward", rows[::-1])):
        parquet = _analyze_file(tmp_path / f"{name}.parquet", ordered)
        out = tmp_path / f"{name}.jsonl"
        code, _, stderr = _run("events", "detect", "--input", str(parquet), "--format",
                               "verdicts", "--bucket", "1m", "--output", str(out))  # fmt: skip
        assert code == 0, stderr
        found.extend(read_jsonl(out))
    store, out = write_store(tmp_path / "store", rows[::-1]), tmp_path / "store.jsonl"
    code, _, stderr = _run("events", "detect", "--data-dir", str(store), "--bucket", "1m",
                           "--no-save", "--output", str(out))  # fmt: skip
    assert code == 0, stderr
    found.extend(read_jsonl(out))
    assert [(e.layer, e.method) for e in found] == [("dns", "dns.injection.bogon")] * 3


def test_a_file_without_uids_names_its_witnesses_by_report_and_input(tmp_path: Path) -> None:
    """didban analyze's output of the probe's own file: no measurement_uid before a
    collector assigns one; the evidence still counts every measurement."""
    rows = [{**r, "measurement_uid": None} for r in _rounds()]
    parquet = _analyze_file(tmp_path / "verdicts.parquet", rows)
    events = tmp_path / "events.jsonl"
    code, _, stderr = _run("events", "detect", "--input", str(parquet), "--format", "verdicts",
                           "--bucket", "1m", "--output", str(events))  # fmt: skip
    assert code == 0, stderr
    (e,) = read_jsonl(events)
    assert e.n_measurements == 30 * len(BLOCKED) and len(e.witnesses) == 20
    # the first witnesses: the first changed round's blocked targets, in order
    assert e.witnesses[:4] == [f"round-24 https://www.{s}.com/" for s in sorted(BLOCKED)]


def test_a_parquet_file_that_is_not_verdicts_is_one_sentence(tmp_path: Path) -> None:
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), other)
    code, _, stderr = _run("events", "detect", "--input", str(other), "--format", "verdicts")
    assert code == 2
    assert "is not a verdicts file ('didban analyze --output FILE.parquet')" in stderr
    assert len(stderr.strip().splitlines()) == 1
    code, _, stderr = _run("events", "detect", "--input", str(tmp_path / "no.parquet"),
                           "--format", "verdicts")  # fmt: skip
    assert code == 2 and "does not exist" in stderr


def test_score_says_which_event_matches_which_switch(tmp_path: Path) -> None:
    truth = _ground_truth(tmp_path / "ground-truth.jsonl")
    parquet = _analyze_file(tmp_path / "verdicts.parquet", _rounds())
    events = tmp_path / "events.jsonl"
    code, _, stderr = _run("events", "detect", "--input", str(parquet), "--format", "verdicts",
                           "--bucket", "1m", "--output", str(events))  # fmt: skip
    assert code == 0, stderr
    (e,) = read_jsonl(events)
    code, stdout, stderr = _run("events", "score", str(truth), "--events", str(events))
    assert code == 0, stdout + stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("switch 1: start block (") and f"{e.id}:start (block *)" in lines[0]
    assert lines[1].startswith("switch 2: end block (") and f"{e.id}:end (block *)" in lines[1]
    assert "perfect: 2/2 expected change(s) matched, 0 transition(s) at no switch" in stderr
    # an event the ground truth does not explain, and a switch nothing explains
    late = Event(**{**_fields(e), "id": "ev-late", "onset_after": iso(T0 + 9 * MINUTE),
                    "onset_before": iso(T0 + 10 * MINUTE), "resolved_after": None,
                    "resolved_before": None})  # fmt: skip
    write_jsonl(events, [late])
    code, stdout, stderr = _run("events", "score", str(truth), "--events", str(events))
    assert code == 1
    assert "switch 1: start block" in stdout and "MISSED" in stdout
    assert "not at any switch: ev-late:start (block *)" in stdout
    assert "not perfect: 0/2 expected change(s) matched, 1 transition(s) at no switch" in stderr


def _fields(e: Event) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__struct_fields__}


def test_score_refuses_what_is_not_a_ground_truth(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("")
    for content, message in (
        ("not json\n", "x.jsonl:1: not a ground-truth record"),
        ('{"type": "end", "offset": 1, "at": "2026-12-08T10:00:00.000Z", "completed": true,'
         ' "reason": "r"}\n', "has no switch: not a scenario's ground truth"),
    ):  # fmt: skip
        bad = tmp_path / "x.jsonl"
        bad.write_text(content)
        code, _, stderr = _run("events", "score", str(bad), "--events", str(events))
        assert code == 2 and message in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1
    truth = _ground_truth(tmp_path / "ground-truth.jsonl")
    events.write_text("{}\n")
    code, _, stderr = _run("events", "score", str(truth), "--events", str(events))
    assert code == 2 and "events.jsonl:1: not a didban event" in stderr
