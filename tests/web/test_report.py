"""``didban report``: a self-contained page that escapes measurement content, cites the
evidence, uses the verdicts it is given, and says when the measurements come from the lab."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from analysis_builders import (
    IR_BLOCKPAGE,
    blocked_instagram,
    ctrl,
    jsonl,
    ok_page,
    q,
    req,
    tcp,
    web,
)
from typer.testing import CliRunner

from didban.analysis.rules import RULES_VERSION
from didban.cli import app

runner = CliRunner()


def test_report_is_self_contained_and_escapes_measurement_content(tmp_path: Path) -> None:
    evil = web(
        "http://evil.example/",
        queries=[q("evil.example", ["198.51.100.7"])],
        tcp_connect=[tcp("198.51.100.7", 80)],
        requests=[
            req(
                "http://evil.example/",
                code=403,
                body=IR_BLOCKPAGE + "<script>alert('x')</script>",
                headers={"X": "<b>"},
            )
        ],
        control=ctrl(["198.51.100.7"]),
    )
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(evil, blocked_instagram(), ok_page()))
    out = tmp_path / "report.html"
    r = runner.invoke(app, ["report", "--input", str(src), "--output", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<link" not in html and 'src="http' not in html  # no external assets
    assert RULES_VERSION in html
    assert "http.blockpage" in html and "dns.hijack" in html and "ir.dns.10_10_34_35" in html
    assert "20261121T100000Z_webconnectivity_IR_197207_n1_test" in html  # report id cited
    assert "10.10.34.35" in html  # the DNS answer itself, resolved from the evidence pointer


def test_report_uses_given_verdicts(tmp_path: Path) -> None:
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(ok_page()))
    verdicts = tmp_path / "v.jsonl"
    assert runner.invoke(app, ["analyze", str(src), "-o", str(verdicts), "-q"]).exit_code == 0
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", "-i", str(src), "--verdicts", str(verdicts), "-o", str(out)])
    assert r.exit_code == 0 and "wc.http.match" in out.read_text()

    (tmp_path / "bad.jsonl").write_text("{}\n")
    r = runner.invoke(
        app,
        [
            "report",
            "-i",
            str(src),
            "--verdicts",
            str(tmp_path / "bad.jsonl"),
            "-o",
            str(tmp_path / "r2.html"),
        ],
    )
    assert r.exit_code == 2 and "not a didban verdict" in r.stderr
    assert not (tmp_path / "r2.html").exists()

    parquet = tmp_path / "v.parquet"
    assert runner.invoke(app, ["analyze", str(src), "-o", str(parquet), "-q"]).exit_code == 0
    r = runner.invoke(app, ["report", "-i", str(src), "--verdicts", str(parquet), "-o", str(out)])
    assert r.exit_code == 2 and "--verdicts must be the .jsonl file" in r.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = runner.invoke(app, ["report", "-i", str(src), "--verdicts", str(empty), "-o", str(out)])
    assert r.exit_code == 0
    assert f"1 measurement had no verdict in {empty}; classified afresh" in r.stderr


def test_report_on_a_truncated_archive_says_why(tmp_path: Path) -> None:
    src = tmp_path / "m.jsonl.gz"
    src.write_bytes(gzip.compress(jsonl(blocked_instagram()))[:30])
    r = runner.invoke(app, ["report", "-i", str(src), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 1
    assert "cannot read: Compressed file ended before the end-of-stream marker" in r.stderr
    assert "Aborted" not in r.output


def test_report_tells_didbans_blocking_from_the_one_the_measurement_recorded(
    tmp_path: Path,
) -> None:
    m = blocked_instagram()
    m["test_keys"]["blocking"] = False  # what the probe concluded, not didban
    m["test_keys"]["accessible"] = True
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(m))
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", "-i", str(src), "-o", str(out)])
    assert r.exit_code == 0 and "report with 1 verdict written" in r.stdout
    html = out.read_text()
    assert "didban: <code>&#34;dns&#34;</code> / <code>false</code>" in html
    assert "in the measurement: <code>false</code> / <code>true</code>" in html


def test_report_of_lab_measurements_says_so_at_the_top(tmp_path: Path) -> None:
    lab = blocked_instagram()
    lab["annotations"] = {"engine_name": "didban", "x_didban_lab_profile": "iran-2022"}
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(lab, ok_page()))
    out = tmp_path / "r.html"
    assert runner.invoke(app, ["report", "-i", str(src), "-o", str(out)]).exit_code == 0
    html = " ".join(out.read_text().split())
    assert "Lab measurements, not a real network." in html
    assert "1 of these 2 measurements was made in didban's emulated censorship lab" in html
    assert html.index("Lab measurements") < html.index("<h2>Summary</h2>")
    src.write_bytes(jsonl(ok_page()))
    assert runner.invoke(app, ["report", "-i", str(src), "-o", str(out)]).exit_code == 0
    assert "Lab measurements" not in out.read_text()


def test_report_summary_rows_link_to_their_evidence(tmp_path: Path) -> None:
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(blocked_instagram(), ok_page()))
    out = tmp_path / "r.html"
    assert runner.invoke(app, ["report", "-i", str(src), "-o", str(out)]).exit_code == 0
    html = out.read_text()
    links = re.findall(r'<a href="#(g\d+)">([^<]*)</a>', html)
    assert len(links) == 2
    for anchor, label in links:
        assert f'id="{anchor}"><bdi dir="ltr">{label}</bdi> — ' in html  # its section


def test_report_opens_with_a_summary_window_and_vantage_and_collapses_evidence(
    tmp_path: Path,
) -> None:
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(blocked_instagram(), ok_page()))
    out = tmp_path / "r.html"
    assert runner.invoke(app, ["report", "-i", str(src), "-o", str(out)]).exit_code == 0
    html = " ".join(out.read_text().split())
    assert html.index("Executive summary") < html.index("<h2>Summary</h2>")
    assert "<strong>2</strong> measurements" in html
    assert "Blocked, by method: <code>dns.hijack</code> 1" in html
    assert 'Vantage points</th><td>IR <bdi class="ltr">AS197207</bdi>' in html
    assert "Glossary" in html
    assert "the system (ISP) resolver answered an address that is not the site" in html
    assert "<details" in html and "<details open" not in html
    assert "@media print" in html and "<link" not in html


def test_report_in_farsi_and_with_permalinks_to_the_explorer(tmp_path: Path) -> None:
    from didban.store.ingest import ingest
    from didban.store.store import Store

    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(blocked_instagram()))
    out = tmp_path / "r.html"
    r = runner.invoke(
        app,
        ["report", "-i", str(src), "-o", str(out), "--lang", "fa",
         "--explorer", "http://127.0.0.1:8080/"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert '<html lang="fa" dir="rtl">' in html and "خلاصهٔ مدیریتی" in html
    assert re.search("[۰-۹]", html)
    with Store(tmp_path / "data") as store:
        ingest(store, [src])
        uid = store.reader.rows("SELECT measurement_uid FROM {measurements}")[0]["measurement_uid"]
    assert f'href="http://127.0.0.1:8080/fa/m/{uid}"' in html  # the uid ingest gave it

    for bad, sentence in (
        (["--lang", "de"], "--lang must be one of en, fa"),
        (["--explorer", "127.0.0.1:8080"], "--explorer must be an http:// or https:// URL"),
    ):
        r = runner.invoke(app, ["report", "-i", str(src), "-o", str(tmp_path / "x.html"), *bad])
        assert r.exit_code == 2 and sentence in r.stderr
        assert not (tmp_path / "x.html").exists()


def test_a_farsi_reports_headings_and_labels_are_in_farsi(tmp_path: Path) -> None:
    """Each measurement's heading names its state, and its table its labels, in the
    report's language (they said '— blocked', 'in the measurement:', 'report', 'uid',
    'observed:' in the Farsi report)."""
    m = blocked_instagram()
    m["test_keys"]["blocking"] = False
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(m, ok_page()))
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", "-i", str(src), "-o", str(out), "--lang", "fa"])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    headings = re.findall(r'<h2 id="g\d+">(.*?)</h2>', html)
    assert len(headings) == 2 and all(h.endswith(("— مسدود", "— سالم")) for h in headings)
    assert "دیدبان: <code>" in html and "در خود سنجش: <code>false</code>" in html
    assert "مشاهده‌شده: <code>" in html
    for english in ("— blocked<", "— ok<", "in the measurement:", "observed:", " · report <"):
        assert english not in html, english
