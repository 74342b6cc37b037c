"""The redirect and cookie decisions of an HTTP fetch, as pure functions of what was sent
and what came back: no I/O, tested with values (the h11 way).

``fetch`` and the probe's redirect flow make each hop themselves and ask this module
what comes next: :func:`follow` takes the request a hop made and the response's status
and headers and says whether the chain ends, with which OONI failure, or which request
the next hop makes (RFC 9110 §15.4: 301/302/303/307/308, the ``Location`` resolved
against the current URL; 303 — and 301/302 after a POST — turn into a bodyless GET).
Cookies are kept per host, sent back only to the host that set them (RFC 6265 §5.3 for a
cookie without a Domain attribute; didban ignores Domain and Path, so a cookie is never
sent wider than the host that set it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from didban.model import failures
from didban.net.httpwire import target

MAX_REDIRECTS = 10
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

# host → cookie name → value, in the order they were first set
Cookies = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class Request:
    """The request one hop makes: ``hop`` 0 is the URL asked for, 1 the first redirect."""

    url: str
    method: str = "GET"
    body: bytes = b""
    hop: int = 0


@dataclass(frozen=True, slots=True)
class Next:
    """What follows a response.

    * ``request`` set, ``failure`` None: the chain goes on with that request;
    * ``request`` and ``failure`` None: the response is the final one;
    * ``failure`` set: the chain stops there; ``request`` is then set only when the
      redirect named a URL didban cannot fetch (``http_unexpected_redirect_url``), so
      that the attempt can be recorded.
    """

    request: Request | None = None
    failure: str | None = None


def location(headers: Sequence[tuple[str, str]]) -> str | None:
    """The first ``Location`` header, if any."""
    return next((v for k, v in headers if k.lower() == "location"), None)


def follow(
    request: Request,
    status: int,
    headers: Sequence[tuple[str, str]],
    max_redirects: int = MAX_REDIRECTS,
) -> Next:
    """What comes after ``request`` got ``status`` and ``headers``."""
    where = location(headers)
    if status not in REDIRECT_CODES or where is None:
        return Next()
    if request.hop >= max_redirects:
        return Next(failure=failures.unknown(f"stopped after {max_redirects} redirects"))
    url = urljoin(request.url, where.strip())
    if not urlsplit(url).hostname:
        return Next(failure=failures.HTTP_INVALID_REDIRECT_LOCATION_HOST)
    method, body = request.method, request.body
    if status == 303 or (status in (301, 302) and method == "POST"):
        method, body = "GET", b""
    nxt = Request(url, method, body, request.hop + 1)
    try:
        target(url)
    except ValueError:  # not http(s), or a port out of range
        return Next(nxt, failures.HTTP_UNEXPECTED_REDIRECT_URL)
    return Next(nxt)


def keep_cookies(cookies: Cookies, url: str, headers: Sequence[tuple[str, str]]) -> Cookies:
    """``cookies`` with those the response to ``url`` set: each ``Set-Cookie``'s
    name=value pair (before the first ``;``, blanks around name and value removed); a
    pair without ``=`` or with an empty name is ignored (RFC 6265 §5.2), a name set again
    takes the new value."""
    setting = [v for k, v in headers if k.lower() == "set-cookie"]
    if not setting:
        return cookies
    host = urlsplit(url).hostname or ""
    jar = {h: dict(values) for h, values in cookies.items()}
    for v in setting:
        name, eq, value = v.split(";", 1)[0].partition("=")
        if eq and name.strip():
            jar.setdefault(host, {})[name.strip()] = value.strip()
    return jar


def cookie_header(cookies: Cookies, url: str) -> str | None:
    """The ``Cookie`` header a request to ``url`` sends, or None."""
    if not cookies:
        return None
    values = cookies.get(urlsplit(url).hostname or "")
    if not values:
        return None
    return "; ".join(f"{k}={v}" for k, v in values.items())
