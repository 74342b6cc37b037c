"""Run-level verdicts over ``classify_paths`` / ``didban analyze``: NIN isolation (domestic
targets reached, every international one unreachable) and shutdown (nothing reached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from analysis_builders import ctrl, q, req, tcp, tls, web
from typer.testing import CliRunner

from didban.analysis import classify, classify_paths, nin
from didban.cli import app
from didban.model.verdict import Verdict

RUN = "20191117T100000Z_webconnectivity_IR_197207_n1_nin"
INTERNATIONAL = ["www.bbc.com", "www.instagram.com", "twitter.com", "www.wikipedia.org"]
DOMESTIC = ["www.digikala.com", "www.aparat.com"]


def _ip(i: int) -> str:
    return f"203.0.113.{i + 10}"


def reached(host: str, i: int, report_id: str = RUN) -> dict[str, Any]:
    url, ip = f"https://{host}/", _ip(i)
    m = web(
        url,
        queries=[q(host, [ip])],
        tcp_connect=[tcp(ip, 443)],
        tls_handshakes=[tls(f"{ip}:443", host)],
        requests=[req(url)],
        control=ctrl([ip], tcp={f"{ip}:443": True}),
    )
    m["report_id"] = report_id
    return m


def timed_out(host: str, i: int, report_id: str = RUN) -> dict[str, Any]:
    """The connect timed out; the control connected and fetched the page."""
    url, ip = f"https://{host}/", _ip(i)
    m = web(
        url,
        queries=[q(host, [ip])],
        tcp_connect=[tcp(ip, 443, "generic_timeout_error")],
        requests=[req(url, failure="generic_timeout_error")],
        control=ctrl([ip], tcp={f"{ip}:443": True}, tls={f"{ip}:443": True}),
    )
    m["report_id"] = report_id
    return m


def analyze(tmp_path: Path, records: list[dict[str, Any]]) -> list[Verdict]:
    src = tmp_path / "run.jsonl"
    src.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in records))
    errors: list[str] = []
    out = [v for _, v in classify_paths([src], errors.append)]
    assert errors == []
    return out


def by_input(verdicts: list[Verdict]) -> dict[str, tuple[str, str | None, str | None, str]]:
    return {str(v.input): (v.state, v.layer, v.method, v.rule_id) for v in verdicts}


def test_domestic_reached_and_international_unreachable_is_nin_isolation(
    tmp_path: Path,
) -> None:
    records = [timed_out(h, i) for i, h in enumerate(INTERNATIONAL)]
    records[2:2] = [reached(h, 20 + i) for i, h in enumerate(DOMESTIC)]
    verdicts = analyze(tmp_path, records)
    assert [v.input for v in verdicts] == [r["input"] for r in records]  # input order kept
    got = by_input(verdicts)
    for h in INTERNATIONAL:
        assert got[f"https://{h}/"] == ("blocked", "ip", "nin.isolated", "batch.nin.isolated")
    for h in DOMESTIC:
        assert got[f"https://{h}/"] == ("ok", "http", None, "wc.https.ok")
    bbc = verdicts[0]
    assert (bbc.blocking, bbc.accessible) == ("tcp_ip", False)
    assert bbc.evidence[0].pointer == "/report_id" and bbc.evidence[0].observed == RUN
    # the per-measurement evidence is kept after the run-level entry
    assert bbc.evidence[1].pointer == "/test_keys/tcp_connect/0"
    assert "2 of 2 domestic targets were reached" in bbc.reason


def test_nothing_reached_is_a_shutdown(tmp_path: Path) -> None:
    hosts = INTERNATIONAL + DOMESTIC
    got = by_input(analyze(tmp_path, [timed_out(h, i) for i, h in enumerate(hosts)]))
    assert set(got.values()) == {("blocked", "ip", "shutdown", "batch.shutdown")}
    assert len(got) == 6


def test_one_international_site_reached_means_no_isolation(tmp_path: Path) -> None:
    records = [timed_out(h, i) for i, h in enumerate(INTERNATIONAL)]
    records += [reached("www.example.com", 9), reached(DOMESTIC[0], 20)]
    got = by_input(analyze(tmp_path, records))
    assert got["https://www.bbc.com/"] == ("blocked", "tcp", "tcp.timeout", "wc.tcp.timeout")


def test_without_domestic_targets_a_run_cannot_tell_isolation(tmp_path: Path) -> None:
    got = by_input(analyze(tmp_path, [timed_out(h, i) for i, h in enumerate(INTERNATIONAL)]))
    assert {x[2] for x in got.values()} == {"tcp.timeout"}


def test_runs_are_judged_separately(tmp_path: Path) -> None:
    # the domestic site was reached in another run (another report_id): no isolation here
    other = "20191117T110000Z_webconnectivity_IR_197207_n1_other"
    records = [timed_out(h, i) for i, h in enumerate(INTERNATIONAL)]
    records.append(reached(DOMESTIC[0], 20, report_id=other))
    got = by_input(analyze(tmp_path, records))
    assert got["https://www.bbc.com/"][2] == "tcp.timeout"
    assert got[f"https://{DOMESTIC[0]}/"][0] == "ok"


def test_analyze_command_writes_run_level_verdicts(tmp_path: Path) -> None:
    src = tmp_path / "run.jsonl"
    records = [reached(DOMESTIC[0], 20)] + [timed_out(h, i) for i, h in enumerate(INTERNATIONAL)]
    src.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in records))
    out = tmp_path / "v.jsonl"
    r = CliRunner().invoke(app, ["analyze", str(src), "--output", str(out)])
    assert r.exit_code == 0, r.output
    rows = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    assert [x.get("method") for x in rows] == [None] + ["nin.isolated"] * 4
    assert "nin.isolated" in r.stdout


def test_a_run_is_buffered_only_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nin, "MAX_RUN", 3)
    runs: nin.Runs[int] = nin.Runs()
    verdicts = [classify(timed_out(h, i)) for i, h in enumerate(INTERNATIONAL)]
    assert list(runs.add(0, verdicts[0])) == [] and list(runs.add(1, verdicts[1])) == []
    # the third verdict fills the buffer: the slice is judged and released at once
    assert [i for i, _ in runs.add(2, verdicts[2])] == [0, 1, 2]
    assert [i for i, _ in runs.add(3, verdicts[3])] == []
    assert [i for i, _ in runs.flush()] == [3]


def cut_off(m: dict[str, Any]) -> dict[str, Any]:
    """The same measurement when the helper abroad could not be reached either."""
    m["test_keys"]["control"] = None
    m["test_keys"]["control_failure"] = "generic_timeout_error"
    return m


def test_isolation_when_the_control_abroad_is_unreachable_too(tmp_path: Path) -> None:
    # what the probe sees in the iran-2019-shutdown lab: no control, international connects
    # time out, domestic HTTPS sites load
    records = [cut_off(timed_out(h, i)) for i, h in enumerate(INTERNATIONAL)]
    records += [cut_off(reached(h, 20 + i)) for i, h in enumerate(DOMESTIC)]
    verdicts = analyze(tmp_path, records)
    got = by_input(verdicts)
    for h in INTERNATIONAL:
        assert got[f"https://{h}/"] == ("blocked", "ip", "nin.isolated", "batch.nin.isolated")
    assert got[f"https://{DOMESTIC[0]}/"][0] == "ok"
    assert verdicts[0].confidence == 0.7  # less sure than with a control that reached it
    # one measurement alone stays inconclusive: blocked cannot be told from down
    assert classify(records[0]).rule_id == "wc.control.missing"


def test_no_control_for_other_reasons_is_not_isolation(tmp_path: Path) -> None:
    # the helper answered with an error (not a network failure): no evidence of isolation
    records = [cut_off(timed_out(h, i)) for i, h in enumerate(INTERNATIONAL)]
    for r in records:
        r["test_keys"]["control_failure"] = "unknown_failure: bad response"
    records.append(reached(DOMESTIC[0], 20))
    got = by_input(analyze(tmp_path, records))
    assert got["https://www.bbc.com/"][3] == "wc.control.missing"


def test_report_without_verdicts_judges_the_run_as_analyze_does(tmp_path: Path) -> None:
    src = tmp_path / "run.jsonl"
    records = [reached(DOMESTIC[0], 20)] + [timed_out(h, i) for i, h in enumerate(INTERNATIONAL)]
    src.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in records))
    out = tmp_path / "r.html"
    r = CliRunner().invoke(app, ["report", "-i", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert html.count("batch.nin.isolated") >= 4  # not four tcp.timeout verdicts
    assert "blocked: 4, ok: 1" in html
