"""Words and dates as a reader of each language sees them: the known record's dates in
the page's digits and both calendars, a measurement step's result in Farsi, one
measurement in the singular."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from web_helpers import FACEBOOK

HTML = {"accept": "text/html"}


def _main(html: str) -> str:
    found = re.search(r"<main[^>]*>(.*?)</main>", html, re.S)
    assert found, html[:300]
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def test_known_events_give_their_dates_in_the_pages_digits_and_both_calendars(
    client: TestClient,
) -> None:
    # ir-21 (data/known-events.csv): Instagram blocked from 2022-09-21
    fa = client.get("/fa/service/instagram", headers=HTML).text
    known = fa[fa.index("رویدادهای شناخته‌شده") :]
    assert "۳۰ شهریور ۱۴۰۱" in known and "۲۰۲۲-۰۹-۲۱" in known
    assert "2022-09-21" not in known
    en = client.get("/service/instagram?lang=en", headers=HTML).text
    assert "21 Sep 2022 · 30 Shahrivar 1401" in en


def test_one_measurement_is_not_plural(client: TestClient) -> None:
    page = client.get("/service/facebook?since=2022-08-01&until=2022-09-01", headers=HTML).text
    assert "1 measurement ·" in _main(page)


def test_a_steps_result_is_in_farsi_on_a_farsi_page(client: TestClient) -> None:
    # the control fetched Facebook's page: 200 and 70958 bytes
    fa = _main(client.get(f"/fa/m/{FACEBOOK}", headers=HTML).text)
    assert "۷۰۹۵۸ بایت" in fa
    for english in (" bytes", "connected", "certificate(s)"):
        assert english not in fa, english
    en = _main(client.get(f"/m/{FACEBOOK}?lang=en", headers=HTML).text)
    assert "200 · 70958 bytes" in en
    csv = client.get(f"/fa/m/{FACEBOOK}.csv?table=control").text
    assert "200 · 70958 bytes" in csv  # the data stays in its own words
