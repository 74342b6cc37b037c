"""The lab's name zone and request handler without a network (no root needed): which address
a lab name gets, what a request to a fake site, a DoH endpoint or a blockpage host returns."""

from __future__ import annotations

import base64
import csv
from urllib.parse import urlsplit

import dns.message
import dns.rcode

from didban.data import catalog
from didban.data import path as data_path
from didban.lab import plan, zone
from didban.lab.services import dnsanswer, routes


def _req(
    target: str,
    host: str | None,
    *,
    method: str = "GET",
    local: str = "203.0.113.10",
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
) -> routes.Request:
    return routes.Request(method, target, host, headers or [], body, local, "https", "2")


def test_extra_hosts_take_the_pool_in_list_order() -> None:
    with data_path("default-list.csv").open(encoding="utf-8") as fh:
        hosts = [urlsplit(r["url"]).hostname for r in csv.DictReader(fh)]
    extras = [h for h in dict.fromkeys(hosts) if h and catalog.service_for_host(h) is None]
    assert [h for h, _ in zone.extra_hosts()] == extras
    assert [a for _, a in zone.extra_hosts()] == list(plan.EXTRA_POOL[: len(extras)])
    assert zone.resolve(extras[0]) == (plan.EXTRA_POOL[0],)


def test_zone_names() -> None:
    assert zone.resolve("WWW.Instagram.com.") == plan.SERVICE_ADDRS["instagram"]
    assert zone.resolve("scontent.cdninstagram.com") == plan.SERVICE_ADDRS["instagram"]
    assert zone.resolve("www.digikala.com") == plan.DOMESTIC_SITES["digikala"]
    assert zone.resolve("dns.google") == plan.PUBLIC_RESOLVERS["google"][0]
    assert zone.resolve("site1.bench.didban.test") == (plan.BENCH_ADDRS[0],)
    assert zone.resolve("site1234.bench.didban.test") == (plan.BENCH_ADDRS[1233 % 16],)
    assert zone.resolve("site0.bench.didban.test") is None
    assert zone.resolve("instagram.com.evil.example") is None
    assert zone.is_domestic_name("aparat.com") and not zone.is_domestic_name("tabnak.ir")


def test_dns_answers() -> None:
    a = dnsanswer.answer(dns.message.make_query("web.whatsapp.com", "A"))
    assert sorted(rr.address for rr in a.answer[0]) == sorted(plan.SERVICE_ADDRS["whatsapp"])
    aaaa = dnsanswer.answer(dns.message.make_query("web.whatsapp.com", "AAAA"))
    assert (aaaa.rcode(), aaaa.answer) == (dns.rcode.NOERROR, [])
    nx = dnsanswer.answer(dns.message.make_query("not-in-the-lab.example", "A"))
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority
    assert dnsanswer.answer_wire(b"\x00\x01garbage") is None


def test_site_pages_bytes_and_head() -> None:
    page = routes.handle(_req("/", "www.instagram.com"))
    assert page.status == 200 and b"<title>Instagram</title>" in page.body
    assert ("alt-svc", 'h3=":443"; ma=86400') in page.headers
    tg = routes.handle(_req("/", "telegram.org", local="203.0.113.14"))
    assert b"<title>Telegram Messenger</title>" in tg.body and len(tg.body) != len(page.body)
    data = routes.handle(_req("/bytes/70000", "www.youtube.com"))
    assert (data.status, data.length, b"".join(data.chunks())) == (200, 70000, bytes(70000))
    head = routes.handle(_req("/", "www.flickr.com", method="HEAD"))
    assert head.body == b"" and ("content-length", "43900") in head.headers
    assert routes.handle(_req("/bytes/99999999999", "x.com")).status == 400
    assert routes.handle(_req("/", "unknown.example", local="192.0.2.99")).status == 404


def test_doh_handler() -> None:
    q = dns.message.make_query("signal.org", "A")
    q.id = 0
    b64 = base64.urlsafe_b64encode(q.to_wire()).rstrip(b"=").decode()
    ok = routes.handle(_req(f"/dns-query?dns={b64}", "dns.google", local="198.51.100.8"))
    assert ok.status == 200 and ("content-type", "application/dns-message") in ok.headers
    answer = dns.message.from_wire(ok.body)
    assert [rr.address for rr in answer.answer[0]] == list(plan.SERVICE_ADDRS["signal"])
    post = routes.handle(_req("/dns-query", "cloudflare-dns.com", method="POST", body=q.to_wire(),
                           headers=[("content-type", "application/dns-message")],
                           local="198.51.100.1"))  # fmt: skip
    assert post.status == 200 and post.body == ok.body
    assert (
        routes.handle(_req("/dns-query?dns=%%%", "dns.google", local="198.51.100.8")).status == 400
    )
    assert routes.handle(_req("/dns-query", "dns.google", method="POST", body=b"x",
                           local="198.51.100.8")).status == 415  # fmt: skip
    # /dns-query on an ordinary site is just a page.
    assert routes.handle(_req("/dns-query", "www.instagram.com")).status == 200


def test_blockpage_host_landing() -> None:
    r = routes.handle(
        _req("/?type=Invalid Site&policy=MainPolicy ", "10.10.34.34", local="10.10.34.34")
    )
    assert r.status == 200 and b"peyvandha.ir/1-2" in r.body and b"<title>M5-8</title>" in r.body
