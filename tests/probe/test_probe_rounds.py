"""``didban run --every``: rounds on a grid that does not drift, overlapping or skipping a
busy slot, a series a restart continues, the upload queue across restarts, stops inside and
between rounds, bad flags.

Every round is a real ``didban run`` against the loopback peers (conftest.py); intervals
are one or two seconds. Nothing here measures elapsed time: the schedule is checked on the
round log's own records (planned = anchor + slot × every, exactly)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from probe_peers import Loopback, free_port
from typer.testing import CliRunner

from didban.cli import app
from didban.model.validate import problems
from didban.probe import schedule as rounds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))

from server_helpers import start_server, stop


def _flags(lb: Loopback) -> list[str]:
    return [
        "--resolver", f"127.0.0.1:{lb.dns_plain_port}",
        "--doh", lb.doh_url,
        "--doh-bootstrap", f"127.0.0.1:{lb.https_port}",
        "--control", str(lb.control_url),
        "--ca-file", lb.ca_file,
        "--no-progress", "--accept-risk",
        "--probe-cc", "IR", "--probe-asn", "AS58224",
    ]  # fmt: skip


@pytest.fixture
def env(config_home: Path, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(config_home),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "COLUMNS": "200",
    }


def _didban(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "didban.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(p: subprocess.Popen[str], timeout: float = 120) -> str:
    _, stderr = p.communicate(timeout=timeout)
    return " ".join(stderr.split())  # the console wraps long lines


def _log(out: Path) -> list[dict[str, Any]]:
    path = rounds.log_path(out)
    return [msgspec.json.decode(x) for x in path.read_bytes().splitlines() if x.strip()]


def _lines(out: Path) -> list[dict[str, Any]]:
    return [msgspec.json.decode(x) for x in out.read_bytes().splitlines()]


def _check_grid(log: list[dict[str, Any]]) -> None:
    """Every round on the series' grid: one anchor and interval, slots increasing, each
    planned at anchor + slot × every (plus less than the jitter), started not before it."""
    starts = [r for r in log if r["type"] == "start"]
    assert len({(r["anchor"], r["every"]) for r in starts}) == 1
    assert [r["round"] for r in starts] == list(range(1, len(starts) + 1))
    slots = [r["slot"] for r in starts]
    assert slots == sorted(set(slots)) and slots[0] == 0
    for r in starts:
        anchor, planned = rounds.epoch(r["anchor"]), rounds.epoch(r["planned"])
        assert planned == pytest.approx(anchor + r["slot"] * r["every"], abs=0.002)
        assert rounds.epoch(r["started"]) >= planned - 0.002


def test_rounds_append_one_report_each_on_a_fixed_grid(
    loopback: Loopback, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "series.jsonl"
    urls = ["--url", loopback.url("/"), "--url", loopback.url("/old")]
    p = _didban(["run", *_flags(loopback), *urls, "--every", "1s", "--rounds", "3",
                 "--output", str(out)], env)  # fmt: skip
    said = _finish(p)
    assert p.returncode == 0, said
    assert "3 round(s) done (3 in the series)" in said
    ms = _lines(out)
    assert len(ms) == 6 and all(problems(m) == [] for m in ms)
    reports = [m["report_id"] for m in ms]
    assert len(set(reports)) == 3  # one probe run per round
    log = _log(out)
    assert [r["type"] for r in log] == ["start", "end"] * 3
    _check_grid(log)
    ends = [r for r in log if r["type"] == "end"]
    assert [(r["exit"], r["written"], r["stopped"]) for r in ends] == [(0, 2, False)] * 3
    _check_blocks(out, log)
    assert not list(tmp_path.glob("series.jsonl.round-*"))  # the parts are gone


def _check_blocks(out: Path, log: list[dict[str, Any]]) -> None:
    """Each round's lines are one block of the output, where its end record says."""
    data = out.read_bytes()
    reports = []
    for end in (r for r in log if r["type"] == "end"):
        block = data[end["offset"] :].split(b"\n")[: end["written"]]
        ids = {msgspec.json.decode(line)["report_id"] for line in block}
        assert len(ids) == 1, ids
        reports += ids
    assert len(set(reports)) == len(reports)
    assert sum(r["written"] for r in log if r["type"] == "end") == len(data.splitlines())


def test_a_restarted_series_continues_on_the_same_grid(
    loopback: Loopback, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "series.jsonl"
    args = ["run", *_flags(loopback), "--url", loopback.url("/"), "--every", "2s",
            "--output", str(out)]  # fmt: skip
    p = _didban([*args, "--rounds", "2"], env)
    assert p.wait(120) == 0, _finish(p)
    before = out.read_bytes()
    p = _didban([*args, "--jitter", "1s", "--rounds", "4"], env)
    said = _finish(p)
    assert p.returncode == 0, said
    assert f"continuing the series of {out}: 2 round(s) so far, every 2s" in said
    assert "2 round(s) done (4 in the series)" in said
    assert out.read_bytes().startswith(before)  # appended, never rewritten
    assert len({m["report_id"] for m in _lines(out)}) == 4
    log = _log(out)
    starts = [r for r in log if r["type"] == "start"]
    assert [r["round"] for r in starts] == [1, 2, 3, 4]
    # the later rounds start on slots of the first run's grid, jittered by less than 1 s
    for r in starts[2:]:
        slot_time = rounds.epoch(r["anchor"]) + r["slot"] * 2.0
        assert 0 <= rounds.epoch(r["planned"]) - slot_time < 1.0
    _check_grid(starts[:2])


def test_another_interval_for_a_series_is_refused_and_nothing_is_written(
    loopback: Loopback, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "series.jsonl"
    args = ["run", *_flags(loopback), "--url", loopback.url("/"), "--output", str(out)]
    p = _didban([*args, "--every", "1s", "--rounds", "1"], env)
    assert p.wait(120) == 0, _finish(p)
    data, log = out.read_bytes(), rounds.log_path(out).read_bytes()
    p = _didban([*args, "--every", "5s", "--rounds", "2"], env)
    said = _finish(p)
    assert p.returncode == 2
    assert said == (
        f"didban run: {out} is measured every 1s (its round log series.jsonl.rounds); "
        "continue it with --every 1s, or choose another --output"
    )
    assert out.read_bytes() == data and rounds.log_path(out).read_bytes() == log


@pytest.fixture
def hole() -> Iterator[str]:
    """A URL whose server accepts the connection and never speaks: keeps a round busy."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield f"https://localhost:{s.getsockname()[1]}/"
    finally:
        s.close()


def _wait_for(condition: Any, p: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if condition():
            return
        assert p.poll() is None, _finish(p)
        time.sleep(0.05)
    pytest.fail(f"never {what}")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_inside_a_round_keeps_what_it_measured(
    stop: signal.Signals, loopback: Loopback, env: dict[str, str], tmp_path: Path, hole: str
) -> None:
    out = tmp_path / "series.jsonl"
    p = _didban(["run", *_flags(loopback), "--url", loopback.url("/"), "--url", hole,
                 "--every", "1s", "--output", str(out)], env)  # fmt: skip
    # round 1 measures the loopback site (into its part file), then waits on the hole
    part = rounds.part_path(out, 1)
    _wait_for(lambda: part.exists() and len(part.read_bytes().splitlines()) == 1, p, "measured")
    second = _didban(["run", *_flags(loopback), "--url", loopback.url("/"),
                      "--every", "1s", "--output", str(out)], env)  # fmt: skip
    said = _finish(second)
    assert second.returncode == 2
    assert "another 'didban run --every' is measuring into this series" in said
    p.send_signal(stop)
    said = _finish(p, 60)
    assert p.returncode == 130, said
    assert "stopped after 1 round(s) (1 in the series)" in said
    ms = _lines(out)
    assert len(ms) == 1 and problems(ms[0]) == []
    log = _log(out)
    assert [r["type"] for r in log] == ["start", "end"]
    assert (log[1]["exit"], log[1]["written"], log[1]["stopped"]) == (130, 1, True)
    _check_blocks(out, log)


def test_a_stop_between_rounds_ends_the_wait(
    loopback: Loopback, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "series.jsonl"
    p = _didban(["run", *_flags(loopback), "--url", loopback.url("/"), "--every", "1h",
                 "--output", str(out)], env)  # fmt: skip
    _wait_for(lambda: len(_log(out)) == 2 if out.exists() else False, p, "ended round 1")
    p.send_signal(signal.SIGHUP)
    said = _finish(p, 30)
    assert p.returncode == 130, said
    assert "stopped after 1 round(s)" in said
    assert [(r["type"], r.get("stopped")) for r in _log(out)] == [("start", None), ("end", False)]


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(x) for x in text.split()]


def test_a_series_killed_mid_round_continues_and_its_queue_is_sent(
    loopback: Loopback, env: dict[str, str], tmp_path: Path, hole: str
) -> None:
    """SIGKILL of the series and its round in the middle of the round (the machine went
    down): the restarted series says so, first sends what the killed round queued, and
    goes on with the next slot of its grid."""
    out = tmp_path / "series.jsonl"
    queue = tmp_path / "state" / "didban" / "upload-queue"
    dead = f"http://127.0.0.1:{free_port()}"
    p = _didban(["run", *_flags(loopback), "--url", loopback.url("/"), "--url", hole,
                 "--every", "1s", "--output", str(out), "--upload", dead], env)  # fmt: skip
    _wait_for(lambda: bool(list((queue / "pending").glob("*.json"))), p, "queued")
    round_pids = _children(p.pid)
    p.kill()
    for pid in round_pids:  # the round runs in a process group of its own
        os.kill(pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert len(list((queue / "pending").glob("*.json"))) == 1
    port = free_port()
    collector = start_server(tmp_path / "store", port)
    try:
        p = _didban(["run", *_flags(loopback), "--url", loopback.url("/old"), "--every", "1s",
                     "--rounds", "2", "--output", str(out), "--upload",
                     f"http://127.0.0.1:{port}"], env)  # fmt: skip
        said = _finish(p)
    finally:
        stop(collector)
    assert p.returncode == 0, said
    assert "round 1 never ended: its 1 finished measurement(s) kept" in said
    assert f"uploaded 1 to http://127.0.0.1:{port}" in said  # the killed round's, first
    assert not list((queue / "pending").glob("*.json"))
    assert len((queue / "sent.jsonl").read_bytes().splitlines()) == 2
    assert [m["input"] for m in _lines(out)] == [loopback.url("/"), loopback.url("/old")]
    log = _log(out)
    starts = [r for r in log if r["type"] == "start"]
    assert [r["round"] for r in starts] == [1, 2]
    assert starts[1]["slot"] > starts[0]["slot"]
    ends = {r["round"]: r for r in log if r["type"] == "end"}
    assert (ends[1]["exit"], ends[1]["written"], ends[1]["stopped"]) == (None, 1, True)
    assert (ends[2]["exit"], ends[2]["written"]) == (0, 1)
    _check_blocks(out, log)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "0.5s"], "--every must be at least 1 s, not '0.5s'"),
        (["--every", "soon"], "--every is seconds or a number with s, m, h or d"),
        (["--every", "10s", "--jitter", "10s"], "--jitter (10s) must be shorter than --every"),
        (["--every", "10s", "--jitter", "x"], "--jitter is seconds or a number"),
        (["--jitter", "1s"], "--jitter needs --every"),
        (["--rounds", "2"], "--rounds needs --every"),
        (["--every", "1m", "--rounds", "0"], "--rounds must be 1 or more, not 0"),
        (["--every", "1m", "--overlap", "0"], "--overlap must be between 1 and 64, not 0"),
        (["--overlap", "2"], "--overlap needs --every"),
    ],
)
def test_bad_schedules_are_one_sentence_and_exit_2(
    args: list[str], message: str, config_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bad.jsonl"
    r = CliRunner().invoke(
        app, ["run", "--accept-risk", "--url", "https://a.example.org/", "-o", str(out), *args]
    )
    assert r.exit_code == 2, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert not rounds.log_path(out).exists()


def test_every_needs_an_output_and_never_adopts_a_foreign_file(
    config_home: Path, tmp_path: Path
) -> None:
    r = CliRunner().invoke(app, ["run", "--url", "https://a.example.org/", "--every", "1m"])
    assert r.exit_code == 2
    assert "--every needs --output FILE, the series' file" in r.stderr
    other = tmp_path / "theirs.jsonl"
    other.write_text("keep\n")
    r = CliRunner().invoke(app, ["run", "--url", "https://a.example.org/", "--every", "1m",
                                 "-o", str(other)])  # fmt: skip
    assert r.exit_code == 2
    assert "already exists; choose another --output or pass --append" in r.stderr
    assert other.read_text() == "keep\n"


def test_a_round_log_that_is_not_one_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "series.jsonl"
    rounds.log_path(out).write_text('{"type": "start"}\nnot json\n{"type": "end"}\n')
    with pytest.raises(rounds.ScheduleError, match=r"series.jsonl.rounds:1: not a round log"):
        rounds.RoundLog(rounds.log_path(out))


def test_the_grid_skips_the_slots_that_went_by() -> None:
    # round 3 ran in slot 2 and overran into slot 4: the next round is slot 5
    assert rounds.next_slot(1000.0, 10.0, 2, 1000.0 + 4 * 10 + 3) == 5
    # on time, or early: the next slot after the last one
    assert rounds.next_slot(1000.0, 10.0, 2, 1000.0 + 2 * 10 + 9) == 3
    assert rounds.next_slot(1000.0, 10.0, 2, 1000.0 + 3 * 10) == 3
    # a restart a day later lands on the same grid
    k = rounds.next_slot(1000.0, 10.0, 2, 1000.0 + 86400 + 0.5)
    assert k == 8641 and 1000.0 + k * 10.0 >= 1000.0 + 86400 + 0.5


def test_a_torn_last_line_is_cut_and_a_round_without_end_is_unfinished(tmp_path: Path) -> None:
    out = tmp_path / "series.jsonl"
    t = rounds.stamp(1e9)
    first = rounds.Start(1, 0, 60.0, t, t, t)
    ended = rounds.End(1, rounds.stamp(1e9 + 5), 0, 29, 0, False)
    second = rounds.Start(2, 1, 60.0, t, rounds.stamp(1e9 + 60), rounds.stamp(1e9 + 60))
    lines = [msgspec.json.encode(r) + b"\n" for r in (first, ended, second)]
    log_file = rounds.log_path(out)
    log_file.write_bytes(b"".join(lines) + msgspec.json.encode(ended)[:20])  # torn
    log = rounds.RoundLog(log_file)
    try:
        series = rounds.series_of(log.records, 60.0, 2e9, out)
        log.append(rounds.End(2, t, None, 0, 0, True))
    finally:
        log.close()
    assert (series.rounds, series.last_slot, series.unfinished) == (2, 1, (2,))
    assert log_file.read_bytes().endswith(b"".join(lines[2:]) + msgspec.json.encode(
        rounds.End(2, t, None, 0, 0, True)) + b"\n")  # fmt: skip


def test_a_part_the_output_already_ends_with_is_not_appended_twice(tmp_path: Path) -> None:
    from didban.probe.rounds import _append_part

    out, part = tmp_path / "series.jsonl", tmp_path / "series.jsonl.round-2"
    out.write_bytes(b'{"a": 1}\n')
    part.write_bytes(b'{"b": 2}\n{"c": 3}\n')
    assert _append_part(out, part) == (9, 2)
    assert _append_part(out, part) == (9, 2)  # a crash after the append, before the log
    assert out.read_bytes() == b'{"a": 1}\n{"b": 2}\n{"c": 3}\n'


def test_a_busy_slot_is_skipped_or_overlapped(
    loopback: Loopback, env: dict[str, str], tmp_path: Path, hole: str
) -> None:
    """A round that waits 3 s on a silent server: with the default overlap the next slots
    of a one-second grid are skipped; with --overlap 3 they start beside it."""
    args = ["run", *_flags(loopback), "--url", loopback.url("/"), "--url", hole,
            "--deadline", "3", "--every", "1s", "--rounds", "3"]  # fmt: skip
    serial = tmp_path / "serial.jsonl"
    p = _didban([*args, "--output", str(serial)], env)
    said = _finish(p)
    assert p.returncode == 0, said
    assert "slot 1 skipped: 1 round(s) still running" in said
    log = _log(serial)
    starts = [r for r in log if r["type"] == "start"]
    assert all(b["slot"] - a["slot"] >= 3 for a, b in itertools.pairwise(starts))
    _check_grid(log)
    _check_blocks(serial, log)
    parallel = tmp_path / "parallel.jsonl"
    p = _didban([*args, "--overlap", "3", "--output", str(parallel)], env)
    said = _finish(p)
    assert p.returncode == 0, said
    log = _log(parallel)
    starts = [r for r in log if r["type"] == "start"]
    assert [r["slot"] for r in starts] == [0, 1, 2]
    first_end = next(r for r in log if r["type"] == "end")
    assert [r["type"] for r in log].index("end") == 3  # three started before one ended
    assert first_end["written"] == 2
    _check_grid(log)
    _check_blocks(parallel, log)
    assert len(_lines(parallel)) == 6


def test_durations() -> None:
    assert rounds.schedule("1m", "20s", None, 2) == rounds.Schedule(60.0, 20.0, None, 2)
    assert rounds.parse_duration("90", "--every") == 90.0
    assert rounds.parse_duration("1.5m", "--every") == 90.0
    assert rounds.parse_duration("1d", "--every") == 86400.0
