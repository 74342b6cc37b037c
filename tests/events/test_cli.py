"""The commands as a user runs them: detect from the store and from files, timeline, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from events_helpers import hourly, write_store
from typer.testing import CliRunner

from didban.cli import app
from didban.events.record import read_jsonl


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def store(tmp_path: Path) -> Path:
    rows = []
    for asn in (44244, 197207):
        rows += hourly(24 * 6, 6, blocked_from=24 * 5, asn=asn)
        rows += hourly(24 * 6, 6, asn=asn, service="telegram")
    return write_store(tmp_path / "store", rows)


def test_detect_from_the_store_prints_a_table_and_writes_jsonl(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    code, stdout, stderr = _run("events", "detect", "--data-dir", str(store), "--output", str(out))
    assert code == 0, stderr
    assert "1 event(s)" in stdout and "instagram" in stdout and "44244,197207" in stdout
    assert "written to" in stderr
    (e,) = read_jsonl(out)
    assert (e.kind, e.target, e.asns) == ("block", "instagram", [44244, 197207])
    code, stdout, _ = _run("events", "detect", "--data-dir", str(store), "--target", "telegram")
    assert code == 0 and "0 event(s)" in stdout


def test_detect_from_an_ooni_aggregation_file(tmp_path: Path) -> None:
    rows = []
    for day in range(1, 29):
        blocked = day >= 21
        rows.append(
            {
                "measurement_start_day": f"2022-09-{day:02d}",
                "domain": "www.instagram.com",
                "anomaly_count": 300 if blocked else 3,
                "confirmed_count": 0,
                "failure_count": 2,
                "ok_count": 5 if blocked else 300,
                "measurement_count": 307 if blocked else 305,
            }
        )
    src = tmp_path / "agg.json"
    src.write_text(json.dumps({"result": rows}))
    out = tmp_path / "ev.jsonl"
    code, _stdout, stderr = _run(
        "events",
        "detect",
        "--input",
        str(src),
        "--format",
        "ooni-aggregation",
        "--cc",
        "IR",
        "--output",
        str(out),
    )
    assert code == 0, stderr
    (e,) = read_jsonl(out)
    assert (e.kind, e.target, e.source) == ("block", "www.instagram.com", "ooni-aggregation")
    assert (e.onset_after, e.onset_before) == ("2022-09-20T00:00:00Z", "2022-09-22T00:00:00Z")
    assert e.known_event == "ir-21"  # Instagram blocked, 2022-09-21


def test_detect_from_an_ioda_export(tmp_path: Path) -> None:
    lines = ["Time (UTC),BGP (# Visible /24s),Active Probing (# /24s Up)"]
    for i in range(24 * 12):
        h = f"2019-11-{14 + i // 24:02d} {i % 24:02d}:00:00"
        down = 48 <= i < 60
        lines.append(
            f"{h},{500 if not down else 40},{'' if i % 7 == 0 else (900 if not down else 80)}"
        )
    src = tmp_path / "ioda.csv"
    src.write_text("\n".join(lines) + "\n")
    code, stdout, stderr = _run(
        "events", "detect", "--input", str(src), "--format", "ioda", "--cc", "IR"
    )
    assert code == 0, stderr
    assert "outage" in stdout and "\tioda\t" in stdout  # two signals, one event
    assert "2019-11-15 23:00 … 2019-11-16 01:00" in stdout and "ioda-5A446C2E" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bucket", "1w"], "--bucket: a bucket is a number"),
        (["--format", "ioda"], "--format needs --input FILE"),
        (["--input", "x.csv"], "--input needs --format"),
        (["--format", "csv", "--input", "x"], "--format must be one of ooni-aggregation, ioda"),
        (["--output", "events.json"], "--output must end in .jsonl"),
        (["--output", "/nonexistent/dir/e.jsonl"], "the directory of --output"),
        (["--since", "last tuesday"], "--since 'last tuesday' is not a date"),
        (["--since", "2026-03-02", "--until", "2026-03-01"], "--until must be later than --since"),
        (["--asn", "Irancell"], "--asn 'Irancell' is not an AS number"),
        (["--data-dir", "/nonexistent/store"], "there is no store at /nonexistent/store"),
        (["--method", "magic"], "--method must be one of cusum, window, ooni"),
    ],
)
def test_bad_flags_are_one_sentence_and_exit_2(args: list[str], message: str) -> None:
    code, _stdout, stderr = _run("events", "detect", *args)
    assert code == 2
    assert stderr.strip().startswith("error: ") and message in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_a_bad_input_file_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "agg.csv"
    bad.write_text(
        "measurement_start_day,anomaly_count,ok_count,measurement_count\n2022-09-01,-5,3,3\n"
    )
    out = tmp_path / "ev.jsonl"
    code, _, stderr = _run(
        "events",
        "detect",
        "--input",
        str(bad),
        "--format",
        "ooni-aggregation",
        "--output",
        str(out),
    )
    assert code == 2 and "row 1: anomaly_count is negative" in stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, stderr = _run("events", "detect", "--input", str(empty), "--format", "ioda")
    assert code == 2 and "is empty" in stderr


def test_timeline_puts_known_and_detected_events_on_one_axis(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "timeline.jsonl"
    code, stdout, stderr = _run(
        "timeline",
        "--cc",
        "IR",
        "--since",
        "2026-01-01",
        "--data-dir",
        str(store),
        "--output",
        str(out),
    )
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("2026-01-01 ─")
    assert any("ir-31" in line and "known" in line for line in lines)  # 2026-01-08 shutdown
    assert any("detected" in line and "block instagram" in line for line in lines)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["origin"] for r in rows} == {"known", "detected"}


def test_timeline_of_a_target_from_an_events_file(tmp_path: Path) -> None:
    code, stdout, stderr = _run(
        "timeline", "--cc", "ir", "--target", "telegram", "--data-dir", str(tmp_path / "none")
    )
    assert code == 2 and "there is no store" in stderr
    (tmp_path / "ev.jsonl").write_text("")
    code, stdout, _ = _run(
        "timeline", "--cc", "IR", "--target", "telegram", "--events", str(tmp_path / "ev.jsonl")
    )
    assert code == 0
    assert "ir-4 Telegram blocked during protests" in stdout
    assert "ir-7 Telegram permanently blocked" in stdout and "Instagram" not in stdout
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    code, _, stderr = _run("timeline", "--cc", "IR", "--events", str(tmp_path / "bad.jsonl"))
    assert code == 2 and "bad.jsonl:1: not a didban event" in stderr
