"""The lab's network under the clean profile: names, interfaces, routes, and reachability of
every service, resolver and domestic host from the client (curl with the lab CA, HTTP/2,
HTTP/3 over QUIC), plus 1,000 distinct bench URLs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from didban.data import catalog
from didban.lab import plan, zone
from didban.lab.services import pages

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab
LAB_PROFILE = "clean"
LAB_CONTROL = True

_CONNECT_ALL = r"""
import json, socket
from concurrent.futures import ThreadPoolExecutor
def one(t):
    host, port = t
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((host, port)); return None
    except OSError as e:
        return f"{host}:{port} {e!r}"
    finally:
        s.close()
with ThreadPoolExecutor(32) as ex:
    print(json.dumps([r for r in ex.map(one, TARGETS) if r]))
"""


def _links(lab: Lab, role: str) -> dict[str, str]:
    """interface name -> peer namespace name, from `ip -o link`."""
    out = lab.run(["ip", "-o", "link", "show"], role=role).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"\d+: ([^:@]+)(?:@[^:]+)?: .*?(?:link-netns (\S+))?$", line)
        if m and m.group(1) != "lo":
            found[m.group(1)] = m.group(2) or ""
    return found


def test_namespaces_and_interfaces_follow_the_plan(lab: Lab) -> None:
    prefix = lab.desc.prefix
    assert re.fullmatch(r"db[0-9a-f]{4}-", prefix)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for role in plan.ROLES:
        assert f"{prefix}{role}" in listed
        assert lab.ns(role) == f"{prefix}{role}"
    for a, b, addr_a, _, _ in plan.LINKS:
        assert _links(lab, a)[f"v-{b}"] == lab.ns(b)
        assert _links(lab, b)[f"v-{a}"] == lab.ns(a)
        addrs = lab.run(["ip", "-4", "-o", "addr", "show", "dev", f"v-{b}"], role=a).stdout
        assert f"{addr_a}/" in addrs
    # No interface of this lab exists in the root namespace.
    root = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert all(lab.ns(r) not in root for r in plan.ROLES)


def test_ipv6_off_forwarding_on_and_no_default_route(lab: Lab) -> None:
    for role in plan.ROLES:
        r = lab.run(
            ["sh", "-c", "cat /proc/sys/net/ipv6/conf/all/disable_ipv6 "
             "/proc/sys/net/ipv4/ip_forward; ip route show default; ip -6 -o addr"],
            role=role,
        )  # fmt: skip
        lines = r.stdout.split()
        assert lines[0] == "1", role
        assert lines[1] == ("1" if role in ("isp", "intl") else "0"), role
        assert len(lines) == 2, f"{role} has a default route or IPv6 addresses: {r.stdout}"


def test_client_reaches_every_service_resolver_and_domestic_host(lab: Lab) -> None:
    targets: list[tuple[str, int]] = []
    for addr in zone.addresses(domestic=False):
        targets += [(addr, 80), (addr, 443)]
    for addr in zone.resolver_addrs():
        targets += [(addr, 53), (addr, 853), (addr, 443)]
    for addr in zone.addresses(domestic=True):
        targets += [(addr, 80), (addr, 443)]
    targets += [(a, 80) for a in plan.BLOCKPAGE_HOSTS]
    targets.append((plan.ISP_RESOLVER, 53))
    code = f"TARGETS = {json.dumps(targets)}\n" + _CONNECT_ALL
    r = lab.python(code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    assert len(targets) > 100


def _curl(lab: Lab, url: str, *extra: str, role: str = "client") -> tuple[str, str]:
    """(body, "status http_version") of a curl with the lab CA from ``role``."""
    r = lab.run(
        ["curl", "-sS", "--max-time", "5", "--cacert", lab.desc.ca_file, *extra,
         "-w", "\n%{http_code} %{http_version}", url],
        role=role,
    )  # fmt: skip
    assert r.returncode == 0, f"{url}: {r.stderr}"
    body, _, meta = r.stdout.rpartition("\n")
    return body, meta


def _title(body: str) -> str:
    m = re.search(r"<title>(.*?)</title>", body)
    assert m, body[:200]
    return m.group(1)


def test_each_service_serves_its_own_page_over_https_with_http2(lab: Lab) -> None:
    titles: dict[str, str] = {}
    for svc in catalog.services():
        host = svc.urls[0].split("/")[2]
        body, meta = _curl(lab, f"https://{host}/")
        assert meta == "200 2", f"{host}: {meta}"
        site = zone.site_for_host(host)
        assert site is not None
        expected_body, _ = pages.render(host, site.key)
        assert body.encode() == expected_body, host
        titles[svc.id] = _title(body)
    assert titles["instagram"] == "Instagram"
    assert titles["telegram"] == "Telegram Messenger"
    # Distinct pages: no two services share a title (Twitter/X shares with nobody either).
    assert len(set(titles.values())) == len(titles)


def test_http1_and_plain_http_also_work(lab: Lab) -> None:
    body, meta = _curl(lab, "https://www.facebook.com/", "--http1.1")
    assert (meta, _title(body)) == ("200 1.1", "Facebook - log in or sign up")
    body, meta = _curl(lab, "http://www.tabnak.ir/")
    assert meta == "200 1.1"
    assert "TABNAK" in _title(body)


def test_domestic_sites_resolve_through_the_isp_resolver(lab: Lab) -> None:
    body, meta = _curl(lab, "https://www.digikala.com/")
    assert meta == "200 2"
    assert "دیجی‌کالا" in _title(body)
    r = lab.run(["getent", "hosts", "www.aparat.com"])
    assert r.stdout.split()[0] == plan.DOMESTIC_SITES["aparat"][0]


def test_alt_svc_advertised_and_http3_works_for_an_http3_service(lab: Lab) -> None:
    r = lab.run(["curl", "-sS", "-I", "--max-time", "5", "https://www.instagram.com/"])
    assert 'alt-svc: h3=":443"' in r.stdout.lower()
    code = r"""
import asyncio, ssl, sys
from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration

class Client(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.h3 = H3Connection(self._quic); self.done = asyncio.Event()
        self.status = None; self.body = b""
    def quic_event_received(self, ev):
        for e in self.h3.handle_event(ev):
            if isinstance(e, HeadersReceived):
                self.status = dict(e.headers)[b":status"].decode()
            if isinstance(e, DataReceived):
                self.body += e.data
            if getattr(e, "stream_ended", False):
                self.done.set()

async def main():
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                            server_name="www.instagram.com")
    cfg.load_verify_locations(sys.argv[1])
    async with connect("203.0.113.10", 443, configuration=cfg, create_protocol=Client) as c:
        sid = c._quic.get_next_available_stream_id()
        c.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
            (b":authority", b"www.instagram.com"), (b":path", b"/")], end_stream=True)
        c.transmit()
        await asyncio.wait_for(c.done.wait(), 5)
        print(c.status, len(c.body), c.body.split(b"<title>")[1].split(b"<")[0].decode())
asyncio.run(main())
"""
    r = lab.run([sys.executable, "-c", code, lab.desc.ca_file])
    assert r.returncode == 0, r.stderr[-2000:]
    status, size, title = r.stdout.split(maxsplit=2)
    assert (status, title.strip()) == ("200", "Instagram")
    assert int(size) == len(pages.render("www.instagram.com", "instagram")[0])


def test_control_vantage_reaches_the_services(lab: Lab) -> None:
    body, meta = _curl(lab, "https://www.youtube.com/", role="control")
    assert (meta, _title(body)) == ("200 2", "YouTube")


def test_client_reaches_the_control_helper(lab: Lab) -> None:
    """`lab up` started the test helper in the control namespace; it answers the client
    (OONI oohelperd protocol) with what it measured unfiltered."""
    request = {
        "http_request": "https://www.instagram.com/",
        "http_request_headers": {},
        "tcp_connect": ["203.0.113.10:443"],
    }
    r = lab.run(["curl", "-sS", "--max-time", "20", "-X", "POST",
                 "-H", "content-type: application/json", "-d", json.dumps(request),
                 plan.CONTROL_URL])  # fmt: skip
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["tcp_connect"]["203.0.113.10:443"]["status"] is True
    assert answer["http_request"]["title"] == "Instagram"


def test_a_thousand_distinct_bench_urls(lab: Lab) -> None:
    code = r"""
import http.client, ssl, sys, collections
import dns.message, dns.query
conns = {}
titles = set()
bad = []
for n in range(1, 1001):
    host = f"site{n}.bench.didban.test"
    ans = dns.query.udp(dns.message.make_query(host, "A"), "198.51.100.8", timeout=2)
    addr = ans.answer[0][0].address
    c = conns.get(addr) or http.client.HTTPConnection(addr, 80, timeout=5)
    conns[addr] = c
    c.request("GET", f"/page{n}", headers={"Host": host})
    r = c.getresponse(); body = r.read()
    if r.status != 200:
        bad.append((n, r.status))
    titles.add(body.split(b"<title>")[1].split(b"<")[0])
print(len(titles), len(conns), bad)
"""
    r = lab.python(code, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().split(maxsplit=2) == ["1000", str(len(plan.BENCH_ADDRS)), "[]"]
