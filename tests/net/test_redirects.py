"""The redirect and cookie decisions as values in, values out: no socket, no event loop."""

from __future__ import annotations

import pytest

from didban.net.redirects import Next, Request, cookie_header, follow, keep_cookies

PAGE = "https://www.example.org/a/b?x=1"


def test_a_response_that_is_not_a_redirect_is_final() -> None:
    assert follow(Request(PAGE), 200, [("Location", "/elsewhere")]) == Next()
    assert follow(Request(PAGE), 302, [("Content-Type", "text/html")]) == Next()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_relative_location_is_resolved_against_the_current_url(status: int) -> None:
    nxt = follow(Request(PAGE, hop=2), status, [("location", "  ../c  ")])
    assert nxt == Next(Request("https://www.example.org/c", "GET", b"", 3))


def test_the_first_location_header_wins() -> None:
    nxt = follow(Request(PAGE), 302, [("Location", "/one"), ("Location", "/two")])
    assert nxt.request is not None and nxt.request.url == "https://www.example.org/one"


def test_303_and_301_302_after_post_become_a_bodyless_get() -> None:
    post = Request(PAGE, "POST", b"q=1")
    for status in (301, 302, 303):
        nxt = follow(post, status, [("Location", "/done")])
        assert nxt.request is not None
        assert (nxt.request.method, nxt.request.body) == ("GET", b"")
    for status in (307, 308):
        nxt = follow(post, status, [("Location", "/done")])
        assert nxt.request is not None
        assert (nxt.request.method, nxt.request.body) == ("POST", b"q=1")


def test_the_redirect_limit_stops_the_chain_with_the_number_followed() -> None:
    assert follow(Request(PAGE, hop=9), 302, [("Location", "/x")]).request is not None
    stop = follow(Request(PAGE, hop=10), 302, [("Location", "/x")])
    assert stop == Next(failure="unknown_failure: stopped after 10 redirects")
    assert follow(Request(PAGE), 302, [("Location", "/x")], max_redirects=0) == Next(
        failure="unknown_failure: stopped after 0 redirects"
    )


def test_a_location_without_a_host_is_an_invalid_location_host() -> None:
    stop = follow(Request(PAGE), 302, [("Location", "http:///nohost")])
    assert stop == Next(failure="http_invalid_redirect_location_host")


@pytest.mark.parametrize("where", ["ftp://www.example.org/file", "https://www.example.org:99999/"])
def test_a_url_that_cannot_be_fetched_is_an_unexpected_redirect_url(where: str) -> None:
    stop = follow(Request(PAGE, hop=1), 301, [("Location", where)])
    assert stop.failure == "http_unexpected_redirect_url"
    assert stop.request is not None and stop.request.url == where and stop.request.hop == 2


def test_cookies_are_kept_per_host_and_sent_only_to_it() -> None:
    headers = [
        ("Set-Cookie", "a=1; Path=/; HttpOnly"),
        ("set-cookie", " b = 2 "),
        ("Set-Cookie", "flag; Secure"),  # no name=value pair: ignored (RFC 6265 §5.2)
        ("Set-Cookie", "=orphan"),  # empty name: ignored
        ("Set-Cookie", "a=3"),  # set again: the new value
    ]
    jar = keep_cookies({}, "https://WWW.Example.org/login", headers)
    assert jar == {"www.example.org": {"a": "3", "b": "2"}}
    assert cookie_header(jar, "http://www.example.org/other") == "a=3; b=2"
    assert cookie_header(jar, "https://example.org/") is None
    assert cookie_header(jar, "https://cdn.www.example.org/") is None


def test_keeping_cookies_leaves_the_old_jar_as_it_was() -> None:
    old = keep_cookies({}, "https://a.test/", [("Set-Cookie", "s=1")])
    new = keep_cookies(old, "https://b.test/", [("Set-Cookie", "t=2")])
    assert old == {"a.test": {"s": "1"}}
    assert new == {"a.test": {"s": "1"}, "b.test": {"t": "2"}}
