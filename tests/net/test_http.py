"""HTTP/1.1 and h2 fetches on loopback: redirects, title, cap, binary bodies, failures."""

from __future__ import annotations

import asyncio
import base64

import trustme
from peers import (
    BIG_SIZE,
    Site,
    closed_port,
    fin_after_hello,
    rst_after_hello,
    silent,
    tcp_server,
)

from didban.model.ooni import BinaryData
from didban.net import dns, http, httpwire
from didban.net.httprecord import extract_title
from didban.net.trace import EventLog

# a first hop to an address given (or an IP literal) needs no lookup: the system resolver
# is there only in case a test's site redirects to a name
SYSTEM = dns.resolver(dns.System())


async def test_h2_redirects_are_followed_newest_first(site: Site, ca_file: str) -> None:
    log = EventLog()
    base = f"https://site.test:{site.https_port}"
    r = await http.fetch(
        f"{base}/redirect/3",
        tracer=log.tagged(),
        options=http.FetchOptions(ca_file=ca_file),
        resolver=_loopback,
    )
    assert r.failure is None
    assert len(r.requests) == 5  # /redirect/3 → 2 → 1 → 0 → /
    final = r.requests[0]
    assert final.request.url == f"{base}/"
    assert final.response is not None and final.response.code == 200
    assert final.response.x_didban_title == "Hello didban"
    assert final.alpn == "h2"
    assert [t.response.code for t in r.requests if t.response] == [200, 302, 302, 302, 302]
    assert r.requests[-1].request.url == f"{base}/redirect/3"
    assert len(r.tls_handshakes) == 5
    ops = {e.operation for e in log.events}
    assert {"http_transaction_start", "http_transaction_done", "tls_handshake_done"} <= ops


async def _loopback(host: str) -> list[str] | str:
    return ["127.0.0.1"] if host.endswith("site.test") else "dns_nxdomain_error"


async def test_h11_plain_get_with_title(site: Site) -> None:
    r = await http.fetch(
        "http://site.test/", resolver=SYSTEM, address=f"127.0.0.1:{site.http_port}"
    )
    assert r.failure is None
    t = r.requests[0]
    assert t.response is not None and t.response.code == 200
    assert (
        t.response.body == "<html><head><title>Hello didban</title></head><body>hello</body></html>"
    )
    assert t.alpn == ""
    assert t.request.headers["Host"] == "site.test"
    assert "Mozilla/5.0" in t.request.headers["User-Agent"]
    assert t.address == f"127.0.0.1:{site.http_port}"


async def test_h11_over_tls_when_h2_not_offered(site: Site, ca_file: str) -> None:
    r = await http.fetch(
        "https://site.test/",
        resolver=SYSTEM,
        options=http.FetchOptions(alpn=("http/1.1",), ca_file=ca_file),
        address=f"127.0.0.1:{site.https_port}",
    )
    assert r.failure is None
    assert r.requests[0].alpn == "http/1.1"
    assert r.requests[0].response is not None
    assert r.requests[0].response.x_didban_title == "Hello didban"


async def test_body_cap_truncates_h11_and_h2(site: Site, ca_file: str) -> None:
    for alpn in (("h2",), ("http/1.1",)):
        r = await http.fetch(
            "https://site.test/big",
            resolver=SYSTEM,
            options=http.FetchOptions(alpn=alpn, ca_file=ca_file, body_cap=100_000),
            address=f"127.0.0.1:{site.https_port}",
        )
        assert r.failure is None
        resp = r.requests[0].response
        assert resp is not None and resp.body_is_truncated
        assert isinstance(resp.body, str) and len(resp.body) == 100_000
        assert r.throughput is not None and r.throughput > 0


async def test_full_body_under_default_cap_is_not_truncated(site: Site) -> None:
    r = await http.fetch(
        "http://site.test/big",
        resolver=SYSTEM,
        options=http.FetchOptions(body_cap=2 * BIG_SIZE),
        address=f"127.0.0.1:{site.http_port}",
    )
    resp = r.requests[0].response
    assert resp is not None and not resp.body_is_truncated
    assert resp.x_didban_body_length == BIG_SIZE


async def test_binary_body_is_base64(site: Site) -> None:
    r = await http.fetch(
        "http://site.test/binary", resolver=SYSTEM, address=f"127.0.0.1:{site.http_port}"
    )
    resp = r.requests[0].response
    assert resp is not None and isinstance(resp.body, BinaryData)
    assert base64.b64decode(resp.body.data) == bytes(range(256)) * 4


async def test_redirect_to_other_host_uses_resolver(site: Site) -> None:
    asked: list[str] = []

    async def resolver(host: str) -> list[str] | str:
        asked.append(host)
        return "dns_nxdomain_error"

    r = await http.fetch(
        "http://site.test/elsewhere", resolver=resolver, address=f"127.0.0.1:{site.http_port}"
    )
    assert asked == ["other.test"]
    assert r.failure == "dns_nxdomain_error"
    assert r.requests[0].request.url == "http://other.test/"
    assert r.requests[1].response is not None and r.requests[1].response.code == 301


async def test_too_many_redirects(site: Site) -> None:
    r = await http.fetch(f"http://site.test:{site.http_port}/redirect/20", resolver=_loopback)
    assert len(r.requests) == 11
    assert r.failure is not None and "redirects" in r.failure


async def test_refused_is_recorded_as_a_failed_transaction() -> None:
    port = closed_port()
    r = await http.fetch("http://site.test/", resolver=SYSTEM, address=f"127.0.0.1:{port}")
    assert r.failure == "connection_refused"
    assert len(r.requests) == 1 and r.requests[0].failure == "connection_refused"
    assert r.tcp_connect[0].status.failure == "connection_refused"


async def test_reset_during_request() -> None:
    server, port = await tcp_server(rst_after_hello)
    r = await http.fetch("http://site.test/", resolver=SYSTEM, address=f"127.0.0.1:{port}")
    server.close()
    assert r.failure == "connection_reset"


def test_title_regexp() -> None:
    assert extract_title(b"<TITLE>Blocked</TITLE>") == "Blocked"
    assert extract_title("<title></title>") == ""
    assert len(extract_title("<title>" + "a" * 600 + "</title>")) == 0


async def test_fin_after_request_is_eof_error() -> None:
    server, port = await tcp_server(fin_after_hello)
    r = await http.fetch("http://site.test/", resolver=SYSTEM, address=f"127.0.0.1:{port}")
    server.close()
    assert r.failure == "eof_error"


async def test_silent_server_times_out() -> None:
    server, port = await tcp_server(silent)
    r = await http.fetch(
        "http://site.test/",
        resolver=SYSTEM,
        options=http.FetchOptions(timeout=0.3),
        address=f"127.0.0.1:{port}",
    )
    server.close()
    assert r.failure == "generic_timeout_error"
    assert r.requests[0].response is not None and r.requests[0].response.code == 0


class CookieSite(Site):
    """Sets a cookie on site.test, then redirects to www.site.test and back."""

    def respond(
        self, method: str, path: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        base = f"https://{{}}:{self.https_port}"
        cookie = next((v for k, v in headers if k.lower() == "cookie"), "")
        if path == "/login":
            return 302, [("Location", "/home"), ("Set-Cookie", "sid=42; Path=/; Secure")], b""
        if path == "/home":
            return 302, [("Location", base.format("www.site.test") + "/away")], b""
        if path == "/away":
            return 302, [("Location", base.format("site.test") + "/back")], b""
        return 200, [("Content-Type", "text/plain")], f"cookie={cookie}".encode()


async def test_cookies_go_back_only_to_the_host_that_set_them(ca: trustme.CA, ca_file: str) -> None:
    site = await CookieSite(ca).start()
    try:
        r = await http.fetch(
            f"https://site.test:{site.https_port}/login",
            resolver=_loopback,
            options=http.FetchOptions(ca_file=ca_file),
        )
    finally:
        await site.stop()
    assert r.failure is None
    sent = [(t.request.url.split("/")[-1], t.request.headers.get("Cookie")) for t in r.requests]
    assert sent == [("back", "sid=42"), ("away", None), ("home", "sid=42"), ("login", None)]
    assert r.final_body == b"cookie=sid=42"


async def test_each_connection_of_a_fetch_is_a_flow_of_its_own(site: Site, ca_file: str) -> None:
    log = EventLog()
    r = await http.fetch(
        f"https://site.test:{site.https_port}/redirect/1",
        resolver=_loopback,
        tracer=log.tagged(["mine"]),
        options=http.FetchOptions(ca_file=ca_file),
    )
    ids = [t.transaction_id for t in reversed(r.requests)]
    assert ids == [c.transaction_id for c in r.tcp_connect] == [1, 2, 3]
    assert all(t.tags == ["mine"] for t in r.requests)
    for tid in ids:
        ops = [e.operation for e in log.events if e.transaction_id == tid]
        assert ops[0] == "connect" and "http_transaction_done" in ops


async def test_a_fetch_that_is_not_measured_records_no_ids(site: Site) -> None:
    r = await http.fetch(
        "http://site.test/", resolver=SYSTEM, address=f"127.0.0.1:{site.http_port}"
    )
    assert r.failure is None
    assert [t.transaction_id for t in r.requests] == [0]
    assert r.requests[0].tags is None and r.tcp_connect[0].tags is None


async def test_rate_is_taken_over_the_probes_window_whatever_the_cap() -> None:
    """The helper reads up to 16 MiB, the probe 512 KiB: both time the first 512 KiB."""
    sink = httpwire.BodySink(1 << 24, rate_window=1000)
    sink.start()
    sink.add(b"x" * 600)
    assert sink.t_window is None
    sink.add(b"x" * 600)  # the window's last byte is in here
    window_end = sink.t_window
    await asyncio.sleep(0.01)
    sink.add(b"x" * 5000)  # later bytes change neither the end of the window nor the rate
    assert sink.t_window == window_end and window_end is not None
    rate = sink.throughput()
    assert rate is None or rate == 1000 / (window_end - sink.t_start)
    short = httpwire.BodySink(1 << 24, rate_window=1000)
    short.start()
    short.add(b"x" * 10)
    assert short.t_window is None  # a body under the window is timed whole
