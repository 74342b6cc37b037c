"""What a reader sees when an address is wrong (an unknown country, a bad ``lang``, a
path nobody serves): a 4xx page in the page's language with one sentence, never the
API's JSON in a browser."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

HTML = {"accept": "text/html"}


def _main(html: str) -> str:
    """The text of the page's ``<main>``, tags removed."""
    found = re.search(r"<main[^>]*>(.*?)</main>", html, re.S)
    assert found, html[:300]
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


@pytest.mark.parametrize("path", ["/country/XX", "/timeline/XX", "/country/QQ.csv"])
def test_an_unknown_country_is_a_404_that_says_so(client: TestClient, path: str) -> None:
    r = client.get(path, headers=HTML)
    assert r.status_code == 404
    text = r.text if path.endswith(".csv") else _main(r.text)
    assert "there is no country" in text and "a code like IR" in text


def test_a_known_country_without_data_and_oonis_unknown_country_still_answer(
    client: TestClient,
) -> None:
    assert client.get("/country/DE", headers=HTML).status_code == 200
    assert client.get("/country/ZZ", headers=HTML).status_code == 200  # OONI: unknown country


def test_a_bad_lang_is_refused_with_one_sentence(client: TestClient) -> None:
    r = client.get("/search?lang=de", headers=HTML)
    assert r.status_code == 400
    assert "lang must be en or fa, not &#39;de&#39;" in _main(r.text)
    assert "didban_lang" not in r.cookies
    assert client.get("/methods?lang=fa", headers=HTML).status_code == 200


def test_a_browser_gets_a_page_for_a_path_nobody_serves(client: TestClient) -> None:
    r = client.get("/fa/nothing/here", headers=HTML)
    assert r.status_code == 404
    assert '<html lang="fa" dir="rtl">' in r.text
    assert "there is no page at /fa/nothing/here" in _main(r.text)
    # the API's clients keep its JSON, a browser too under /api/
    assert client.get("/fa/nothing/here").json() == {"detail": "Not Found"}
    assert client.get("/api/v1/nothing", headers=HTML).json() == {"detail": "Not Found"}


def test_a_farsi_error_page_says_in_farsi_that_the_reason_follows_in_english(
    client: TestClient,
) -> None:
    r = client.get("/fa/search?since=yesterday", headers=HTML)
    assert r.status_code == 400
    text = _main(r.text)
    assert "این صفحه نمایش داده نمی‌شود" in text
    assert "since must be a date" in text
    assert "The reason, in English" not in client.get("/search?since=x", headers=HTML).text
