"""The HTTP rules of Web Connectivity: blockpages, pages authenticated by HTTPS,
server-side challenges, error statuses, OONI's HTTP-diff (match and differ), and redirects
to private addresses."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from didban.analysis import httpdiff, netaddr
from didban.analysis.fingerprints import header_text
from didban.analysis.outcome import Hit
from didban.analysis.records import HTTPExchange
from didban.analysis.web_connectivity.evidence import hit
from didban.analysis.web_connectivity.facts import WebFacts, ctrl_http_ok
from didban.analysis.web_connectivity.steps import REQ, is_https
from didban.model.ooni import page_title
from didban.model.verdict import Evidence


def r_http_blockpage(f: WebFacts) -> Hit | None:
    table = f.fps.blocking
    for i, r in enumerate(f.requests):
        resp = r.response
        if resp is None or _authenticated(r):
            continue
        m = table.match_headers(f.headers(i))
        where = f"{REQ}{i}/response/headers"
        # the final page when it is the control's is not searched (cost): see _same_page
        if m is None and not (i == 0 and _same_page(f, len(resp.body) <= SCAN_ALWAYS)):
            body = f.final_body() if i == 0 else httpdiff.body_text(resp.body)
            m = table.match_body(body)
            where = f"{REQ}{i}/response/body"
        if m is not None:
            url = r.request.url if r.request else None
            ev = [
                Evidence(
                    where,
                    f"response {resp.code} for {url} matches {m.fingerprint.id}",
                    m.excerpt,
                    m.fingerprint.pattern,
                )
            ]
            return hit(
                f,
                "wc.http.blockpage",
                f"the response for {url} is a known blockpage ({m.fingerprint.id}, "
                f"{m.fingerprint.country})",
                ev,
                m.fingerprint,
            )
    return None


SCAN_ALWAYS: Final = 8192  # raw JSON bytes of a body below which "same page" needs the same title


def _same_page(f: WebFacts, small: bool) -> bool:
    """The final page has the control's status, length (within 30 %) and title: it is the
    site's own page, so scanning its body for blockpage patterns is pointless. A ``small``
    page (where blockpages live: under ``SCAN_ALWAYS`` bytes) must carry the control's own
    title, exactly — OONI's looser title match calls any two titles without a word of five
    or more bytes ("NTE1", "Home") the same."""
    d = f.final_diff()
    return (
        d is not None
        and bool(d.status_code_match and d.body_length_match and d.title_match)
        and (d.same_title or not small)
    )


def _authenticated(r: HTTPExchange) -> bool:
    """Fetched over HTTPS without error: the certificate proves the page is the site's own."""
    url = r.request.url if r.request else None
    return r.failure is None and url is not None and is_https(url)


def r_https_ok(f: WebFacts) -> Hit | None:
    if f.final_ok and is_https(f.final_url):
        r = f.requests[0]
        code = r.response.code if r.response else None
        return hit(
            f,
            "wc.https.ok",
            f"the page arrived over HTTPS (status {code}) with a certificate valid for the name",
            [Evidence(f"{REQ}0/response", "final response over HTTPS", str(code))],
        )
    return None


# Challenge pages come with these statuses (Cloudflare: 403 managed/JS challenge, 503 "under
# attack" mode, 429 rate limiting); other pages are not searched for challenge markers.
CHALLENGE_STATUS: Final = frozenset({403, 429, 503})


def r_http_captcha(f: WebFacts) -> Hit | None:
    if not f.final_ok:
        return None
    resp = f.requests[0].response
    assert resp is not None
    table = f.fps.server_side
    m = table.match_headers(f.headers(0))
    if m is None and resp.code in CHALLENGE_STATUS:
        m = table.match_body(f.final_body())
    if m is None:
        return None
    return hit(
        f,
        "wc.http.captcha",
        f"the page is a server-side challenge ({m.fingerprint.id}), not network censorship",
        [Evidence(f"{REQ}0/response", f"matches {m.fingerprint.id}", m.excerpt)],
    )


def r_http_status(f: WebFacts) -> Hit | None:
    if not f.final_ok or f.ctrl is None or f.ctrl.http_request is None:
        return None
    resp = f.requests[0].response
    assert resp is not None
    p, c = resp.code or 0, f.ctrl.http_request.status_code or 0
    ev = [Evidence(f"{REQ}0/response/code", "status codes", str(p), str(c))]
    if p >= 400 and c >= 400:
        return hit(
            f,
            "wc.http.error_everywhere",
            f"the site answered {p} to the probe and {c} to the "
            "control: a server-side error, not censorship",
            ev,
        )
    if not ctrl_http_ok(f.ctrl.http_request) or not 200 <= c < 400:
        return hit(
            f,
            "wc.http.ctrl_error",
            f"the control got {c or f.ctrl.http_request.failure}; the pages cannot be compared",
            ev,
        )
    return None


def r_http_match(f: WebFacts) -> Hit | None:
    d = f.final_diff()
    if d is None or d.different:
        return None
    what = d.describe()
    return hit(
        f,
        "wc.http.match",
        f"the page matches the control's ({what})",
        [Evidence(f"{REQ}0/response", "final response compared with the control", what)],
    )


def _url_host(url: str) -> str | None:
    """The host of ``url``; None when there is none or the URL does not parse."""
    try:
        return urlsplit(url).hostname if url else None
    except ValueError:  # "http://[x/": an unclosed IPv6 bracket
        return None


def r_redirect_bogon(f: WebFacts) -> Hit | None:
    if f.ctrl is None or not ctrl_http_ok(f.ctrl.http_request):
        return None
    for i, r in enumerate(f.requests):
        resp = r.response
        if resp is None or not 300 <= (resp.code or 0) < 400:
            continue
        location = (f.headers(i) or {}).get("location")
        if location is not None:
            loc = header_text(location[1])
            host = _url_host(loc)
            if host and netaddr.is_bogon(host):
                return hit(
                    f,
                    "wc.http.redirect.bogon",
                    f"the response redirected to the private address {host} ({loc[:120]}), a "
                    "filtering portal, while the control fetched the page",
                    [Evidence(f"{REQ}{i}/response/headers", f"{resp.code} redirect", loc[:300])],
                )
    return None


def r_http_diff(f: WebFacts) -> Hit | None:
    d = f.final_diff()
    if d is None:
        return None
    diff, body = d, f.final_body()
    resp = f.requests[0].response
    assert resp is not None
    conf = 0.7 if diff.status_code_match is False else 0.6
    title = page_title(body)
    ctrl_code = f.ctrl.http_request.status_code if f.ctrl and f.ctrl.http_request else None
    return hit(
        f,
        "wc.http.diff",
        f"the page differs from the control's ({diff.describe()})",
        [
            Evidence(
                f"{REQ}0/response",
                "final response differs from the control's",
                f"status {resp.code}, title {title[:80]!r}, {len(body)} chars",
                f"status {ctrl_code}",
            )
        ],
        confidence=conf,
    )
