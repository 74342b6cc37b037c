"""OONI's HTTP-diff: the probe's final response compared with the test helper's.

Implements the four comparisons of Web Connectivity (body proportion, status code, headers,
title; ooni-methodology.md §3.7, probe-cli ``webconnectivity/httpanalysis.go`` and
``minipipeline/httpdiff.go``) and the decision rule shared by v0.4, LTE and the spec: the
page is *not* different when the status codes match and at least one of body length,
headers or title matches. Also the small text helpers (body text, title, base64).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from didban.analysis.records import Binary, CtrlHTTP, HTTPResponse, raw_body, raw_headers
from didban.model.ooni import page_title

# The 25 header names OONI treats as common (compared lower-cased).
COMMON_HEADERS: Final = frozenset(
    {
        "date",
        "content-type",
        "server",
        "cache-control",
        "vary",
        "set-cookie",
        "location",
        "expires",
        "x-powered-by",
        "content-encoding",
        "last-modified",
        "accept-ranges",
        "pragma",
        "x-frame-options",
        "etag",
        "x-content-type-options",
        "age",
        "via",
        "p3p",
        "x-xss-protection",
        "content-language",
        "cf-ray",
        "strict-transport-security",
        "link",
        "x-varnish",
    }
)

BODY_MATCH_THRESHOLD: Final = 0.7


def b64text(data: str) -> str:
    """Base64 ``data`` decoded and read as UTF-8 (invalid bytes replaced); '' if not base64."""
    try:
        return base64.b64decode(data, validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def body_text(raw: msgspec.Raw | None) -> str:
    """The text of a raw response body (base64 bodies decoded as UTF-8)."""
    body = raw_body(raw)
    if isinstance(body, str):
        return body
    if isinstance(body, Binary):
        return b64text(body.data)
    return ""


def _long_words(title: str) -> set[str]:
    return {w.lower() for w in title.split(" ") if len(w.encode()) >= 5}


@dataclass(slots=True)
class HTTPDiff:
    """The HTTP-diff keys."""

    status_code_match: bool | None
    body_proportion: float | None
    body_length_match: bool | None
    headers_match: bool | None
    title_match: bool | None
    # the page's title is the control's, character for character, and not empty (OONI's
    # title_match is looser: two titles without a word of 5+ bytes always "match")
    same_title: bool = False

    @property
    def different(self) -> bool:
        """OONI's decision: different unless status matches and one other key matches."""
        if self.status_code_match is not True:
            return True
        return not (self.body_length_match or self.headers_match or self.title_match)

    def describe(self) -> str:
        return (
            f"status_code_match={self.status_code_match}, "
            f"body_proportion={_fmt(self.body_proportion)}, "
            f"headers_match={self.headers_match}, title_match={self.title_match}"
        )


def _fmt(x: float | None) -> str:
    return "null" if x is None else f"{x:.2f}"


def text_length_title(body: str) -> tuple[int, str]:
    """(byte length as OONI counts it, ``page_title``) of a decoded body."""
    return len(body.encode("utf-8", "replace")), page_title(body)


def compare(
    resp: HTTPResponse,
    body: Callable[[], tuple[int, str]],
    headers: frozenset[str] | None,
    ctrl: CtrlHTTP,
) -> HTTPDiff:
    """The HTTP-diff keys for the probe's final response ``resp`` against the control.

    ``headers``: the response's lower-cased header names; ``body()``: the body's byte length
    and title, asked for only when the response lacks didban's ``x_didban_body_length`` /
    ``x_didban_title``."""
    p_code = resp.code or 0
    c_code = ctrl.status_code or 0
    status: bool | None
    if p_code <= 0 or c_code <= 0:
        status = None
    elif p_code == c_code:
        status = True
    elif not 200 <= c_code < 300:
        status = None
    else:
        status = False

    c_len = ctrl.body_length or 0
    p_len = resp.x_didban_body_length
    p_title = resp.x_didban_title
    truncated = bool(resp.body_is_truncated) and p_len is None
    if p_len is None or p_title is None:
        measured_len, measured_title = body()
        p_len = measured_len if p_len is None else p_len
        p_title = measured_title if p_title is None else p_title
    proportion: float | None = None
    if c_len > 0 and not truncated:
        proportion = 0.0 if p_len <= 0 else min(p_len, c_len) / max(p_len, c_len)
    body_match = None if proportion is None else proportion > BODY_MATCH_THRESHOLD

    headers_match = _headers_match(headers, raw_headers(ctrl.headers))

    title: bool | None = None
    same_title = False
    if p_title and not truncated:
        c_title = ctrl.title or ""
        same_title = p_title == c_title
        title = same_title or _long_words(p_title) == _long_words(c_title)
    return HTTPDiff(status, proportion, body_match, headers_match, title, same_title)


def _headers_match(p: frozenset[str] | None, ctrl: dict[str, Any] | None) -> bool | None:
    if p is None or ctrl is None:
        return None
    c = {str(k).lower() for k in ctrl}
    if p == c:
        return True
    return bool((p - COMMON_HEADERS) & (c - COMMON_HEADERS))
