"""``didban analyze`` (and where it shares rules with ``didban report``): formats, malformed
lines, outputs, exit codes."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq
import zstandard
from analysis_builders import blocked_instagram, ctrl, jsonl, ok_page, q, req, tcp, web
from typer.testing import CliRunner

from didban.analysis import batch
from didban.analysis.rules import RULES_VERSION
from didban.cli import app

runner = CliRunner()


def test_analyze_reports_bad_line_and_keeps_going(tmp_path: Path) -> None:
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(blocked_instagram()) + b"{broken\n" + jsonl(ok_page()))
    out = tmp_path / "v.jsonl"
    r = runner.invoke(app, ["analyze", str(src), "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{src}:2: invalid JSON" in r.stderr
    verdicts = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    assert [(x["state"], x.get("method")) for x in verdicts] == [
        ("blocked", "dns.hijack"),
        ("ok", None),
    ]
    assert verdicts[0]["rules_version"] == RULES_VERSION
    assert (
        "instagram" in r.stdout
        and "dns.hijack" in r.stdout
        and "2 measurements classified" in r.stdout
    )


def test_analyze_reads_gzip_zstd_json_and_directories(tmp_path: Path) -> None:
    d = tmp_path / "archive" / "2026" / "11"
    d.mkdir(parents=True)
    (d / "a.jsonl.gz").write_bytes(gzip.compress(jsonl(blocked_instagram(), ok_page())))
    (d / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl(ok_page())))
    (d / "c.json").write_bytes(
        msgspec.json.format(msgspec.json.encode(blocked_instagram()), indent=2)
    )
    (d / "notes.txt").write_text("not a measurement")
    out = tmp_path / "v.parquet"
    r = runner.invoke(app, ["analyze", str(tmp_path / "archive"), "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    table = pq.read_table(out)
    assert table.num_rows == 4
    assert sorted(table.column("state").to_pylist()) == ["blocked", "blocked", "ok", "ok"]
    assert set(table.column("blocking").to_pylist()) == {'"dns"', "false"}


def test_analyze_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"nope\n[1]\n")
    r = runner.invoke(app, ["analyze", str(bad), "-o", str(tmp_path / "v.jsonl")])
    assert r.exit_code == 1
    assert "no measurement could be classified" in r.stderr
    assert not (tmp_path / "v.jsonl").exists()
    assert not list(tmp_path.glob(".v.jsonl.*"))

    r = runner.invoke(app, ["analyze", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2 and "does not exist" in r.stderr

    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(ok_page()))
    r = runner.invoke(app, ["analyze", str(good), "-o", str(tmp_path / "v.csv")])
    assert r.exit_code == 2 and ".jsonl or .parquet" in r.stderr
    assert not (tmp_path / "v.csv").exists()


def test_analyze_reports_corrupt_compressed_file(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl.gz").write_bytes(b"not gzip at all")
    (tmp_path / "y.jsonl").write_bytes(jsonl(ok_page()))
    r = runner.invoke(app, ["analyze", str(tmp_path), "-q"])
    assert r.exit_code == 0
    assert "x.jsonl.gz: cannot read" in r.stderr


def _no_temp_files(d: Path) -> None:
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == []


def test_output_that_would_destroy_an_input_or_cannot_be_written_is_refused(
    tmp_path: Path,
) -> None:
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(blocked_instagram(), ok_page()))
    before = src.read_bytes()
    r = runner.invoke(app, ["analyze", str(src), "-q", "-o", str(src)])
    assert r.exit_code == 2 and "is one of the inputs" in r.stderr
    assert src.read_bytes() == before  # the measurements are untouched
    (tmp_path / "d.jsonl").mkdir()
    r = runner.invoke(app, ["analyze", str(src), "-o", str(tmp_path / "d.jsonl")])
    assert r.exit_code == 2 and "is a directory" in r.stderr
    (tmp_path / "d.html").mkdir()
    r = runner.invoke(app, ["report", "-i", str(src), "-o", str(tmp_path / "d.html")])
    assert r.exit_code == 2 and "is a directory" in r.stderr
    for args in (
        ["analyze", str(src), "-o", "/proc/x.jsonl"],
        ["report", "-i", str(src), "-o", "/proc/x.html"],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "cannot write --output /proc/x." in r.stderr, r.output
        assert "Traceback" not in r.output
    _no_temp_files(tmp_path)
    # an output inside an input directory would replace a measurement file there (or be
    # read as one next time)
    d = tmp_path / "in"
    d.mkdir()
    inner = d / "m.jsonl"
    inner.write_bytes(before)
    r = runner.invoke(app, ["analyze", str(d), "-q", "-o", str(inner)])
    assert r.exit_code == 2 and "is inside the input directory" in r.stderr
    assert inner.read_bytes() == before


def test_verdicts_given_as_measurements_are_refused_with_the_reason(tmp_path: Path) -> None:
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(blocked_instagram()))
    verdicts = tmp_path / "v.jsonl"
    assert runner.invoke(app, ["analyze", str(src), "-q", "-o", str(verdicts)]).exit_code == 0
    r = runner.invoke(app, ["analyze", str(verdicts), "-q"])
    assert r.exit_code == 1
    assert f"{verdicts}:1: a didban verdict, not a measurement" in r.stderr
    r = runner.invoke(app, ["report", "-i", str(verdicts), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 1 and "a didban verdict, not a measurement" in r.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_truncated_archive_keeps_every_record_before_the_damage(tmp_path: Path) -> None:
    # records of ~40 KB: the damage is far past the first megabyte of whole records
    pages = []
    for i in range(120):
        m = ok_page()
        m["input"] = f"http://site{i}.example.org/"
        m["test_keys"]["requests"][0]["response"]["body"] = f"<p>{i}</p>" + "x" * 40_000
        pages.append(m)
    data = jsonl(*pages)
    for name, packed, unpack in (
        ("m.jsonl.gz", gzip.compress(data), lambda b: zlib.decompressobj(31).decompress(b)),
        (
            "m.jsonl.zst",
            zstandard.ZstdCompressor().compress(data),
            lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
        ),
    ):
        cut = packed[: len(packed) * 3 // 4]
        whole = unpack(cut).count(b"\n")  # the records wholly inside the intact part
        src = tmp_path / name
        src.write_bytes(cut)
        out = tmp_path / f"{name}.verdicts.jsonl"
        r = runner.invoke(app, ["analyze", str(src), "-q", "-o", str(out)])
        assert r.exit_code == 0, r.output
        assert f"{src}: cannot read:" in r.stderr  # the damage is reported, not passed over
        assert len(out.read_bytes().splitlines()) == whole > 60, name
        assert "invalid JSON" not in r.stderr  # no half record is classified


def test_files_a_directory_holds_that_are_not_measurements_are_mentioned(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_bytes(jsonl(ok_page()))
    (tmp_path / "README.yaml").write_text("not a measurement\n")
    r = runner.invoke(app, ["analyze", str(tmp_path), "-q"])
    assert r.exit_code == 0
    assert "note: 1 file in the given directories is not a measurement file" in r.stderr
    assert "README.yaml" in r.stderr


def test_summary_names_the_domain_only_where_a_service_fared_differently(
    tmp_path: Path,
) -> None:
    def ok(url: str, host: str, ip: str) -> dict[str, Any]:
        return web(
            url,
            queries=[q(host, [ip])],
            tcp_connect=[tcp(ip, 80)],
            requests=[req(url)],
            control=ctrl([ip]),
        )

    fa = web(
        "http://fa.wikipedia.org/",
        queries=[q("fa.wikipedia.org", ["10.10.34.35"])],
        control=ctrl(["198.51.100.50"]),
    )
    records = [fa, ok("http://en.wikipedia.org/", "en.wikipedia.org", "198.51.100.50")]
    records += [ok(f"http://{h}/", h, "203.0.113.9") for h in ("telegram.org", "web.telegram.org")]
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(*records))
    r = runner.invoke(app, ["analyze", str(src)], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    rows = [" ".join(line.replace("│", " ").split()) for line in r.stdout.splitlines()]
    assert "wikipedia: fa.wikipedia.org IR blocked dns.hijack 1 1" in rows
    assert "wikipedia: en.wikipedia.org IR ok - 1 0" in rows
    assert "telegram IR ok - 2 0" in rows  # same outcome on both domains: one row
    assert "confirmed: matched a known censor fingerprint" in r.stdout


def test_zstd_archives_of_many_frames_skippable_ones_included_are_read_whole(
    tmp_path: Path,
) -> None:
    c = zstandard.ZstdCompressor()
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    data = skippable + c.compress(jsonl(blocked_instagram())) + skippable
    data += c.compress(jsonl(ok_page()))
    src = tmp_path / "m.jsonl.zst"
    src.write_bytes(data)
    r = runner.invoke(app, ["analyze", str(src), "-q", "-o", str(tmp_path / "v.jsonl")])
    assert r.exit_code == 0 and r.stderr == "", r.output
    assert len((tmp_path / "v.jsonl").read_bytes().splitlines()) == 2


def _deep(m: dict[str, Any], levels: int) -> bytes:
    """``m`` as one JSON line with a value ``levels`` arrays deep in its test keys (written
    by hand: no JSON encoder writes a thousand levels)."""
    m = {**m, "test_keys": {**m["test_keys"], "x": "__DEEP__"}}
    nested = "[" * levels + "1" + "]" * levels
    return msgspec.json.encode(m).replace(b'"__DEEP__"', nested.encode()) + b"\n"


def test_a_record_too_deep_to_decode_is_skipped_and_the_others_judged(tmp_path: Path) -> None:
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(blocked_instagram()) + _deep(ok_page(), 5000) + jsonl(ok_page()))
    out = tmp_path / "v.jsonl"
    r = runner.invoke(app, ["analyze", str(src), "-q", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{src}:2: the record nests objects and arrays too deeply to be read" in r.stderr
    assert "RecursionError" not in r.output
    assert len(out.read_bytes().splitlines()) == 2
    # in worker processes too
    errors: list[str] = []
    judged = list(batch.classify_paths([src], errors.append, jobs=2))
    assert len(judged) == 2 and errors == [r.stderr.splitlines()[0]]
    html = tmp_path / "r.html"
    r = runner.invoke(app, ["report", "-i", str(src), "-o", str(html)])
    assert r.exit_code == 0, r.output
    assert f"{src}:2: the record nests objects and arrays too deeply" in r.stderr
    assert "report with 2 verdicts" in r.stdout and html.exists()
    # a .json file holding only such a record: refused as that one record
    one = tmp_path / "deep.json"
    one.write_bytes(_deep(ok_page(), 5000))
    r = runner.invoke(app, ["analyze", str(one), "-q"])
    assert r.exit_code == 1 and f"{one}:1: the record nests" in r.stderr


def test_an_empty_input_is_said_and_not_an_error_for_analyze_report_and_ingest(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    blank_dir = tmp_path / "nothing"
    blank_dir.mkdir()
    for given in (empty, blank_dir):
        out = tmp_path / "v.parquet"
        r = runner.invoke(app, ["analyze", str(given), "-o", str(out)])
        assert r.exit_code == 0, r.output
        assert "note: the input holds no measurement" in r.stderr
        assert pq.read_table(out).num_rows == 0  # written, empty: the next step can run
        html = tmp_path / "r.html"
        r = runner.invoke(app, ["report", "-i", str(given), "-o", str(html)])
        assert r.exit_code == 0, r.output
        assert "note: the input holds no measurement" in r.stderr
        assert "report with 0 verdicts" in r.stdout
        assert "<strong>0</strong> measurements" in html.read_text()
        r = runner.invoke(app, ["ingest", str(given), "--data-dir", str(tmp_path / "d")])
        assert r.exit_code == 0, r.output
        assert "note: the input holds no measurement" in r.stderr
    # records that are all bad are still a failure, the same for the three
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"{broken\n")
    for args in (
        ["analyze", str(bad)],
        ["report", "-i", str(bad), "-o", str(tmp_path / "b.html")],
        ["ingest", str(bad), "--data-dir", str(tmp_path / "d")],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 1, (args, r.output)
        assert f"{bad}:1: " in r.stderr


def test_report_and_ingest_mention_the_files_they_pass_over_as_analyze_does(
    tmp_path: Path,
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "m.jsonl").write_bytes(jsonl(ok_page()))
    (tmp_path / "in" / "README.yaml").write_text("not a measurement\n")
    note = "note: 1 file in the given directories is not a measurement file and was skipped"
    for args in (
        ["analyze", str(tmp_path / "in"), "-q"],
        ["report", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "r.html")],
        ["ingest", str(tmp_path / "in"), "--data-dir", str(tmp_path / "d")],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert note in r.stderr and "README.yaml" in r.stderr, args
