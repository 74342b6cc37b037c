"""The explorer's pages over OONI's fixture measurements: every page in both languages,
what each must show, the same data as JSON, CSV and Parquet, htmx fragments, the
remembered language, the parameters' refusals, and the Farsi catalogue."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from markupsafe import escape
from web_helpers import EVENT, FACEBOOK

from didban.analysis.rules import RULES_VERSION
from didban.store import rollups
from didban.store.ingest import ingest
from didban.store.store import Store
from didban.web import i18n
from didban.web.app import create_app

HTML = {"accept": "text/html"}
IR_AUG = "since=2022-08-01&until=2022-09-01"
PAGES = [
    "/",
    f"/country/IR?{IR_AUG}",
    "/service/facebook?since=2022-08-01&until=2022-09-01",
    f"/event/{EVENT}",
    f"/m/{FACEBOOK}",
    "/timeline/IR",
    "/search?probe_cc=IR&since=2020-01-01",
    "/methods",
]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("lang", ["en", "fa"])
def test_every_page_answers_in_both_languages_with_the_right_direction(
    client: TestClient, path: str, lang: str
) -> None:
    url = path if lang == "en" else "/fa" + path
    r = client.get(url, headers=HTML)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    want = '<html lang="fa" dir="rtl">' if lang == "fa" else '<html lang="en" dir="ltr">'
    assert want in r.text
    if lang == "fa":
        assert re.search("[۰-۹]", r.text), "Persian digits"
        assert "دیدبان" in r.text
    assert 'rel="icon"' in r.text  # no favicon request, no console error


def test_country_grid_shows_the_blocked_service_with_its_method(client: TestClient) -> None:
    page = client.get(f"/country/IR?{IR_AUG}", headers=HTML).text
    row = re.search(r'<a href="/service/facebook">Facebook</a></th>(.*?)</tr>', page, re.S)
    assert row is not None
    cell = re.search(r'<td class="blocked"><a [^>]*title="([^"]*)"', row.group(1))
    assert cell is not None and "dns.hijack" in cell.group(1) and "2022-08-15" in cell.group(1)
    assert "Mordad 1401" in page  # the Solar Hijri date beside the Gregorian one
    assert "AS197207" in page  # the networks table


def test_current_blocks_name_the_method_since_when_and_a_witness(client: TestClient) -> None:
    page = client.get("/country/IR?since=2022-08-10&until=2022-08-16", headers=HTML).text
    block = re.search(r'<tr class="blocked">(.*?)</tr>', page, re.S)
    assert block is not None and "Facebook" in block.group(1)
    assert "dns.hijack" in block.group(1) and "100%" in block.group(1)
    assert "at least since 15 Aug 2022" in " ".join(block.group(1).split())
    assert f"/m/{FACEBOOK}" in block.group(1)  # the witness


def test_the_timeline_keeps_a_block_but_not_an_old_outage_without_an_end(
    client: TestClient,
) -> None:
    """Autumn 2022: the 2009 block of Facebook, Twitter and YouTube (no end recorded) is
    there, drawn to the axis' end; IODA's Qazvin outage of January 2020 (no end recorded
    either) is not."""
    page = client.get("/timeline/IR?since=2022-09-01&until=2022-10-15", headers=HTML).text
    assert "Facebook, Twitter, YouTube blocked" in page
    assert "regional (Qazvin)" not in page
    rows = client.get("/timeline/IR.json?since=2022-09-01&until=2022-10-15").json()["entries"]
    block = next(r for r in rows if r["id"] == "ir-1")
    assert block["end"] is None and block["open_ended"] is True


def test_measurement_page_highlights_the_evidence_and_cites_the_verdict(
    client: TestClient,
) -> None:
    page = client.get(f"/m/{FACEBOOK}", headers=HTML).text

    def step(pointer: str) -> str:
        found = re.search(rf'<tr class="([^"]*)" id="step-{pointer}"', page)
        assert found is not None, pointer
        return found.group(1)

    assert step("-test_keys-queries-0") == "evidence"  # the answer the rule matched
    assert step("-test_keys-requests-0") == "evidence"  # the failed request
    assert step("-test_keys-tcp_connect-0") == "context"  # evidence names the whole list
    assert "10.10.34.36" in page and "generic_timeout_error" in page  # answer, failure
    assert "wc.dns.fingerprint" in page and RULES_VERSION in page
    assert "Cite this" in page and f"http://testserver/m/{FACEBOOK}" in page
    assert f"/api/v1/raw_measurement?measurement_uid={FACEBOOK}" in page
    assert "The control" in page and "157.240.192.35" in page  # the control's DNS view


def test_event_page_shows_its_brackets_known_event_and_feed(client: TestClient) -> None:
    page = client.get(f"/event/{EVENT}", headers=HTML).text
    assert "Onset and resolution brackets" in page
    assert "20 Sep 2022" in page and "22:00 UTC" in page and "01:00 UTC" in page
    assert "ir-21" in page and "Instagram blocked" in page
    assert 'href="/feeds/country/IR.atom"' in page and "AS197207" in page
    assert f"/m/{FACEBOOK}" in page
    fa = client.get(f"/fa/event/{EVENT}", headers=HTML).text
    assert "۳۰ شهریور ۱۴۰۱" in fa  # 2022-09-21 in the Solar Hijri calendar, Persian digits


def test_every_table_downloads_with_the_pages_parameters(client: TestClient) -> None:
    r = client.get(f"/country/IR.csv?table=grid&{IR_AUG}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="didban-country-IR-grid.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {"service": "facebook", "day": "2022-08-15", "state": "blocked"}.items() <= next(
        x for x in rows if x["service"] == "facebook"
    ).items()
    assert all("2022-08-01" <= x["day"] <= "2022-08-31" for x in rows)
    r = client.get(f"/country/IR.parquet?table=networks&{IR_AUG}")
    table = pq.read_table(io.BytesIO(r.content)).to_pylist()
    assert table[0]["probe_asn"] == 197207 and table[0]["blocked"] == 1
    body = client.get(f"/country/IR.json?{IR_AUG}").json()
    assert body["cc"] == "IR" and body["tables"]["grid"]
    asked = client.get(f"/country/IR?{IR_AUG}", headers={"accept": "application/json"})
    assert asked.json()["cc"] == "IR"
    m = client.get(f"/m/{FACEBOOK}.json").json()
    assert m["verdict"]["method"] == "dns.hijack" and m["measurement_uid"] == FACEBOOK
    search = client.get("/search.csv?probe_cc=IR&since=2020-01-01&anomaly=true").text
    assert FACEBOOK in search
    r = client.get("/country/IR.csv?table=nothing")
    assert r.status_code == 404 and "no table 'nothing'" in r.json()["detail"]


def test_filters_answer_htmx_with_the_fragment(client: TestClient) -> None:
    hx = {**HTML, "HX-Request": "true", "HX-Request-Type": "partial"}
    r = client.get(f"/country/IR?{IR_AUG}&probe_asn=AS1", headers=hx)
    assert r.status_code == 200 and "<html" not in r.text
    assert "Services by day" in r.text and '<td class="blocked">' not in r.text
    assert "Accept" in r.headers["vary"] and "HX-Request" in r.headers["vary"]
    full = client.get(f"/country/IR?{IR_AUG}&probe_asn=AS197207", headers=HTML).text
    assert "<html" in full and 'class="blocked"' in full


def test_the_language_is_remembered_and_switched(client: TestClient) -> None:
    r = client.get("/fa/methods", headers=HTML)
    assert r.cookies.get("didban_lang") == "fa"
    assert 'dir="rtl"' in client.get("/methods", headers=HTML).text  # remembered
    r = client.get("/methods?lang=en", headers=HTML)
    assert 'dir="ltr"' in r.text and r.cookies.get("didban_lang") == "en"
    assert 'dir="ltr"' in client.get("/methods", headers=HTML).text


def test_bad_parameters_are_refused_as_the_api_refuses_them(client: TestClient) -> None:
    r = client.get("/search?probe_asn=nope", headers=HTML)
    api = client.get("/api/v1/measurements?probe_asn=nope")
    assert r.status_code == api.status_code == 400
    assert str(escape(api.json()["detail"])) in r.text
    assert client.get("/event/ev-0000000000000000", headers=HTML).status_code == 404
    assert client.get("/m/20200101000000.000000_IR_webconnectivity_0000").status_code == 404
    assert client.get("/service/nothing", headers=HTML).status_code == 404
    r = client.get("/country/IR?since=0094-09-26&until=2026-12-08", headers=HTML)
    assert r.status_code == 400 and "at most 366 days" in r.text


def test_root_is_the_api_description_unless_a_browser_asks(client: TestClient) -> None:
    assert client.get("/").json() == client.get("/", headers={"accept": "application/json"}).json()
    assert client.get("/").json()["service"] == "didban"
    assert "<html" in client.get("/", headers=HTML).text


def test_every_message_has_its_farsi() -> None:
    extracted = {m.id for m in i18n.extract() if m.id}
    with i18n.PO_FILE.open("rb") as fh:
        catalog = read_po(fh, locale="fa")
    translated = {m.id for m in catalog if m.id and m.string}
    assert extracted - translated == set(), "run `make i18n` and translate the new messages"


def test_a_serving_store_refreshes_its_stale_rollups(tmp_path: Path) -> None:
    from analysis_builders import blocked_instagram, jsonl, ok_page

    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(blocked_instagram(), ok_page()))
    with Store(tmp_path / "data") as store:
        ingest(store, [src])  # the ingest path does not refresh here: the days are stale
        store.flush()
        assert rollups.stale_days(store)
        with TestClient(create_app(store, refresh_every=3600)) as live:
            deadline = time.monotonic() + 60
            while rollups.stale_days(store) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert rollups.stale_days(store) == []
            assert live.get("/country/IR.json?since=2026-11-01&until=2026-12-01").status_code == 200
