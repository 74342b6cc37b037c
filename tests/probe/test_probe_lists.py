"""Test lists: Citizen Lab CSV parsing, bad rows as file:line, filters, the default list."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from didban.data import categories
from didban.probe import lists

HEADER = "url,category_code,category_description,date_added,source,notes\n"


def write(tmp_path: Path, body: str, name: str = "l.csv") -> Path:
    p = tmp_path / name
    p.write_text(HEADER + body, encoding="utf-8")
    return p


def test_real_iranian_list_reads_every_row(ooni_fixtures: Path) -> None:
    path = ooni_fixtures / "reference_data" / "test-lists_ir.csv"
    entries = lists.read_csv(path)
    assert len(entries) == 903
    radiofarda = [e for e in entries if e.url == "https://www.radiofarda.com/"]
    assert radiofarda and radiofarda[0].category_code == "NEWS"
    assert radiofarda[0].notes == "blocked with 503 error code."


def test_category_filter_on_real_lists(ooni_fixtures: Path) -> None:
    ref = ooni_fixtures / "reference_data"
    entries = lists.build(
        files=[ref / "test-lists_ir.csv", ref / "test-lists_global.csv"], categories=["anon"]
    )
    assert entries and all(e.category_code == "ANON" for e in entries)
    # ir.csv has 21 ANON rows (ooni-methodology.md §7.3) and global.csv adds 132
    assert len(entries) == 21 + 132


def test_bad_rows_are_reported_with_file_and_line(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "https://ok.example.org/,NEWS,News Media,2020-01-02,me,\n"
        "ftp://files.example.org/,NEWS,News Media,2020-01-02,me,\n"
        "https://two.example.org/,NEWS,News Media,2020-01-02,me\n"
        "https://three.example.org/,NEWS,News Media,2020-13-40,me,\n"
        "https://ok.example.org/,NEWS,News Media,2020-01-02,me,\n"
        "https://bad_host!.example.org/,NEWS,News Media,2020-01-02,me,\n",
    )
    with pytest.raises(lists.ListError) as ei:
        lists.read_csv(p)
    probs = ei.value.problems
    assert probs[0].startswith(f"{p}:3: bad URL 'ftp://files.example.org/'")
    assert probs[1] == f"{p}:4: 5 columns, expected 6"
    assert probs[2].startswith(f"{p}:5: bad date_added '2020-13-40'")
    assert probs[3].startswith(f"{p}:6: duplicate of line 2")
    assert probs[4].startswith(f"{p}:7: bad URL")
    assert str(ei.value).startswith(f"{p} has 5 bad rows; first: {p}:3:")


def test_wrong_header_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    p.write_text("link,category\nhttps://a.example.org/,NEWS\n")
    with pytest.raises(lists.ListError, match=r"h\.csv:1: the header must be url,"):
        lists.read_csv(p)
    with pytest.raises(lists.ListError, match="no such test-list file"):
        lists.read_csv(tmp_path / "missing.csv")


def test_urls_and_files_merge_without_duplicates(tmp_path: Path) -> None:
    p = write(tmp_path, "https://a.example.org/,NEWS,News Media,2020-01-02,me,note a\n")
    entries = lists.build(files=[p], urls=["https://a.example.org/", "http://b.example.org/x?y=1"])
    assert [e.url for e in entries] == ["https://a.example.org/", "http://b.example.org/x?y=1"]
    assert entries[0].notes == "note a"


def test_explicit_url_survives_category_filter(tmp_path: Path) -> None:
    p = write(tmp_path, "https://a.example.org/,NEWS,News Media,2020-01-02,me,\n")
    entries = lists.build(files=[p], urls=["https://c.example.org/"], categories=["HUMR"])
    assert [e.url for e in entries] == ["https://c.example.org/"]


def test_empty_result_is_one_clear_error(tmp_path: Path) -> None:
    p = write(tmp_path, "")
    with pytest.raises(lists.ListError, match=r"^no URL to measure: the given lists are empty$"):
        lists.build(files=[p])
    with pytest.raises(lists.ListError, match="no entry has category XED"):
        lists.build(categories=["XED"])


def test_bad_url_flag() -> None:
    with pytest.raises(lists.ListError, match=r"^--url: bad URL 'example\.org'"):
        lists.build(urls=["example.org"])


def test_default_list_names_the_mission_services() -> None:
    hosts = {e.host for e in lists.default_list()}
    for h in (
        "www.instagram.com",
        "telegram.org",
        "signal.org",
        "www.whatsapp.com",
        "www.facebook.com",
        "twitter.com",
        "www.youtube.com",
        "www.flickr.com",
        "www.cloob.com",
        "mail.google.com",
        "mail.yahoo.com",
        "www.tabnak.ir",
    ):
        assert h in hosts


def test_category_codes_are_checked_against_citizen_labs(tmp_path: Path) -> None:
    # shaped like a code, but not one: a list row and --category are refused by name
    p = write(tmp_path, "https://a.example.org/,NEWZ,News Media,2020-01-02,me,\n")
    with pytest.raises(lists.ListError) as ei:
        lists.read_csv(p)
    assert ei.value.problems == [
        f"{p}:2: bad category_code: 'NEWZ' is not a Citizen Lab category code (one of: "
        "ALDR, ANON, COMM, COMT, CTRL, CULTR, DATE, ECON, ENV, FILE, GAME, GMB, GOVT, GRP, "
        "HACK, HATE, HOST, HUMR, IGO, LGBT, MILX, MISC, MMED, NEWS, POLR, PORN, PROV, PUBH, "
        "REL, SRCH, XED)"
    ]
    with pytest.raises(lists.ListError, match=r"^--category 'ABCD' is not a Citizen Lab"):
        lists.build(categories=["abcd"])
    # the old codes (and the longer ones the legend names as replaced) are codes too
    old = write(tmp_path, "https://b.example.org/,SELFHARM,Self harm,2020-01-02,me,\n")
    assert [e.category_code for e in lists.read_csv(old)] == ["SELFHARM"]
    assert [e.url for e in lists.build(files=[old], categories=["FEXP", "SELFHARM"])] == [
        "https://b.example.org/"
    ]


def test_the_shipped_codes_are_the_legend_s(ooni_fixtures: Path) -> None:
    ref = ooni_fixtures / "reference_data"
    with (ref / "test-lists_00-LEGEND-new_category_codes.csv").open() as fh:
        legend = list(csv.DictReader(fh))
    assert categories.current() == sorted(r["New Code"] for r in legend)
    for row in legend:
        for old in row["Replaces old code(s)"].split():
            if old not in ("N/A", row["New Code"]):
                assert categories.categories()[old].replaced_by == row["New Code"]
