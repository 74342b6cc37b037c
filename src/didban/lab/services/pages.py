"""The content of every fake site: a distinct page per service (title, size, headers).

Pages are deterministic (same bytes on every run and in every lab), so a probe comparing
the client's body with the control's body and title sees exactly what it would see for the
real site: equal when nothing interferes, different when a blockpage is injected. Sizes and
``Server`` headers are modelled on the real sites' front pages (orders of magnitude, not
exact figures).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from didban.lab import plan, zone


@dataclass(frozen=True)
class Page:
    title: str
    size: int  # body length in bytes
    headers: tuple[tuple[str, str], ...]
    lang: str = "en"
    heading: str = ""


# Per hostname (exact) first, then per site key; the first entry of a site is its default.
_HOST_PAGES: Final[dict[str, Page]] = {
    "web.telegram.org": Page("Telegram Web", 9_412, (("server", "nginx/1.18.0"),)),
    "chat.signal.org": Page("Signal Chat Service", 1_210, (("server", "envoy"),)),
    "web.whatsapp.com": Page("WhatsApp Web", 18_930, (("server", "proxygen-bolt"),)),
    "x.com": Page("X. It's what's happening / X", 27_744, (("server", "tsa_b"),)),
    "fa.wikipedia.org": Page(
        "ویکی‌پدیا، دانشنامهٔ آزاد", 61_500, (("server", "mw-web.eqiad.main"),), "fa"
    ),
    "en.wikipedia.org": Page(
        "Wikipedia, the free encyclopedia", 88_200, (("server", "mw-web.eqiad.main"),)
    ),
}

_SITE_PAGES: Final[dict[str, Page]] = {
    "instagram": Page("Instagram", 46_300, (("server", "proxygen-bolt"), ("x-fb-debug", "lab"))),
    "telegram": Page("Telegram Messenger", 21_870, (("server", "nginx/1.18.0"),)),
    "signal": Page("Signal >> Home", 31_060, (("server", "AmazonS3"), ("via", "1.1 cloudfront"))),
    "whatsapp": Page(
        "WhatsApp | Secure and Reliable Free Private Messaging and Calling",
        74_120,
        (("server", "proxygen-bolt"),),
    ),
    "facebook": Page(
        "Facebook - log in or sign up", 58_640, (("server", "proxygen-bolt"), ("x-fb-debug", "lab"))
    ),
    "twitter": Page("X. It's what's happening / X", 27_744, (("server", "tsa_b"),)),
    "youtube": Page("YouTube", 96_410, (("server", "ESF"), ("x-frame-options", "SAMEORIGIN"))),
    "flickr": Page("Find your inspiration. | Flickr", 43_900, (("server", "Apache"),)),
    "cloob": Page("کلوب | شبکه اجتماعی کلوب", 23_510, (("server", "nginx"),), "fa"),
    "gmail": Page("Gmail", 12_780, (("server", "GSE"),)),
    "yahoomail": Page("Yahoo Mail", 39_330, (("server", "ATS"),)),
    "tabnak": Page("تابناک | TABNAK - اخبار ایران و جهان", 67_020, (("server", "nginx"),), "fa"),
    "wikipedia": Page("Wikipedia", 71_430, (("server", "mw-web.eqiad.main"),)),
    "bbcpersian": Page("خانه - BBC News فارسی", 84_650, (("server", "BBC-GTM"),), "fa"),
    "digikala": Page("فروشگاه اینترنتی دیجی‌کالا", 52_270, (("server", "nginx"),), "fa"),
    "aparat": Page("آپارات - سرویس اشتراک ویدیو", 47_880, (("server", "nginx"),), "fa"),
    "isp:portal": Page("Notice", 1_830, (("server", "isp-portal"),), "fa", "دسترسی ممکن نیست"),
    "extra:www.iranintl.com": Page("ایران اینترنشنال", 56_200, (("server", "cloudflare"),), "fa"),
    "extra:www.radiofarda.com": Page("رادیو فردا", 49_870, (("server", "Apache"),), "fa"),
    "extra:www.dw.com": Page("DW فارسی", 62_540, (("server", "nginx"),), "fa"),
    "extra:www.hrw.org": Page("Human Rights Watch", 38_760, (("server", "nginx"),)),
    "extra:www.amnesty.org": Page("Amnesty International", 41_230, (("server", "nginx"),)),
    "extra:iranhumanrights.org": Page(
        "Center for Human Rights in Iran", 35_090, (("server", "nginx"),)
    ),
    "extra:www.torproject.org": Page(
        "The Tor Project | Privacy & Freedom Online", 19_640, (("server", "Apache"),)
    ),
    "extra:psiphon.ca": Page(
        "Psiphon | Uncensored Internet access", 22_810, (("server", "nginx"),)
    ),
}

_WORDS: Final = [
    "news",
    "world",
    "account",
    "share",
    "photo",
    "video",
    "message",
    "story",
    "follow",
    "friends",
    "community",
    "privacy",
    "people",
    "update",
    "search",
    "help",
    "terms",
    "policy",
    "settings",
    "connect",
    "download",
    "learn",
    "more",
    "about",
    "language",
    "popular",
    "today",
    "latest",
    "free",
    "secure",
    "fast",
    "open",
    "global",
    "local",
    "report",
    "stay",
]


def _filler(seed: str, size: int) -> str:
    """Deterministic paragraph text of exactly ``size`` bytes (ASCII)."""
    out: list[str] = []
    length = 0
    counter = 0
    while length < size:
        digest = hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
        words = " ".join(_WORDS[b % len(_WORDS)] for b in digest[:12])
        para = f"<p>{words}.</p>\n"
        out.append(para)
        length += len(para)
    return "".join(out)[:size]


def page_for(host: str | None, site_key: str | None) -> Page:
    """The page description for a request's host (or the local address's site)."""
    if host and host in _HOST_PAGES:
        return _HOST_PAGES[host]
    if host:
        n = zone.bench_index(host)
        if n is not None:
            return Page(f"Bench site {n}", 2_048 + (n % 97) * 16, (("server", "didban-bench"),))
    if site_key and site_key in _SITE_PAGES:
        return _SITE_PAGES[site_key]
    if site_key == "bench":
        return Page("Bench site", 2_048, (("server", "didban-bench"),))
    name = host or site_key or "lab"
    return Page(name, 8_192, (("server", "nginx"),))


def render(host: str | None, site_key: str | None) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """(body, headers) of the page for ``host``; the body has the page's exact size."""
    page = page_for(host, site_key)
    seed = host or site_key or "lab"
    head = (
        f'<!DOCTYPE html>\n<html lang="{page.lang}" dir="{"rtl" if page.lang == "fa" else "ltr"}">'
        f'<head><meta charset="utf-8"><title>{page.title}</title>'
        f'<meta name="description" content="{page.title} (didban lab copy of {seed})">'
        f"</head>\n<body><h1>{page.heading or page.title}</h1>\n"
    ).encode()
    tail = b"</body></html>\n"
    room = max(page.size - len(head) - len(tail), 0)
    body = head + _filler(seed, room).encode() + tail
    headers = (("content-type", "text/html; charset=utf-8"), *page.headers)
    return body, headers


def blockpage_landing() -> bytes:
    """The page of Iran's blockpage hosts (10.10.34.34-36), pointing at peyvandha.ir/1-2."""
    return (
        b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
        b"<title>M5-8</title>"
        b'<meta http-equiv="refresh" content="30;url=http://www.peyvandha.ir/1-2.html">'
        b'</head><body><iframe src="http://www.peyvandha.ir/1-2.html" style="width: 100%; '
        b'height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0" '
        b'vspace="0" hspace="0"></iframe></body></html>'
    )


def is_blockpage_addr(addr: str) -> bool:
    return addr in plan.BLOCKPAGE_HOSTS
