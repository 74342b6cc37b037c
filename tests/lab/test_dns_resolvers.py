"""The lab's DNS from the client: public resolvers over UDP, TCP, DoT and DoH (GET and POST,
HTTP/1.1 and HTTP/2), and the ISP resolver (domestic names, forwarding, hijack policy,
failure of foreign names when the international link is cut)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import dns.message
import dns.rcode
import pytest

from didban.lab import plan

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab
LAB_PROFILE = "clean"

_DNS_ALL = r"""
import json, ssl, sys
import dns.message, dns.query, dns.rcode
ca = sys.argv[1]
ctx = ssl.create_default_context(cafile=ca)
out = {}
for name, (addrs, hostnames) in json.loads(sys.argv[2]).items():
    for addr in addrs:
        for kind in ("udp", "tcp", "dot"):
            for qname in ("www.instagram.com", "no-such-name.didban-lab.test"):
                q = dns.message.make_query(qname, "A")
                if kind == "udp":
                    r = dns.query.udp(q, addr, timeout=2)
                elif kind == "tcp":
                    r = dns.query.tcp(q, addr, timeout=2)
                else:
                    r = dns.query.tls(q, addr, timeout=2, ssl_context=ctx,
                                      server_hostname=hostnames[0])
                out[f"{addr} {kind} {qname}"] = [dns.rcode.to_text(r.rcode()),
                    sorted(rr.address for rrset in r.answer for rr in rrset)]
print(json.dumps(out))
"""


def test_public_resolvers_answer_udp_tcp_and_dot(lab: Lab) -> None:
    import sys

    r = lab.run(
        [sys.executable, "-c", _DNS_ALL, lab.desc.ca_file, json.dumps(plan.PUBLIC_RESOLVERS)]
    )
    assert r.returncode == 0, r.stderr[-2000:]
    answers = json.loads(r.stdout)
    n_addrs = sum(len(a) for a, _ in plan.PUBLIC_RESOLVERS.values())
    assert len(answers) == n_addrs * 3 * 2
    for key, (rcode, addrs) in answers.items():
        if "instagram" in key:
            assert (rcode, addrs) == ("NOERROR", sorted(plan.SERVICE_ADDRS["instagram"])), key
        else:
            assert (rcode, addrs) == ("NXDOMAIN", []), key


def _doh(lab: Lab, args: list[str]) -> tuple[dns.message.Message | bytes, str]:
    """Run curl in the client namespace; (parsed answer or raw body, "version status")."""
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.ns("client"), "curl", "-sS", "--max-time", "5",
         "--cacert", lab.desc.ca_file, "-w", "%{stderr}%{http_version} %{http_code}", *args],
        capture_output=True, timeout=20, check=False,
    )  # fmt: skip
    meta = proc.stderr.decode(errors="replace").strip()
    try:
        return dns.message.from_wire(proc.stdout), meta
    except Exception:
        return proc.stdout, meta


@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_doh_get_and_post_over_http1_and_http2(lab: Lab, version: str, method: str) -> None:
    query = dns.message.make_query("web.telegram.org", "A")
    query.id = 0
    wire = query.to_wire()
    url = plan.DEFAULT_DOH_URL  # https://dns.google/dns-query, resolved by the ISP resolver
    if method == "GET":
        b64 = base64.urlsafe_b64encode(wire).rstrip(b"=").decode()
        args = [version, "-H", "accept: application/dns-message", f"{url}?dns={b64}"]
    else:
        args = [version, "-H", "content-type: application/dns-message",
                "--data-binary", f"@{_tmp(lab, wire)}", url]  # fmt: skip
    answer, meta = _doh(lab, args)
    assert meta == ("1.1 200" if version == "--http1.1" else "2 200")
    assert isinstance(answer, dns.message.Message)
    addrs = sorted(rr.address for rrset in answer.answer for rr in rrset)
    assert addrs == sorted(plan.SERVICE_ADDRS["telegram"])


def _tmp(lab: Lab, data: bytes) -> str:
    path = Path(lab.desc.state_dir) / f"doh-{time.monotonic_ns()}.bin"
    path.write_bytes(data)
    return str(path)


def test_doh_rejects_malformed_requests(lab: Lab) -> None:
    body, meta = _doh(lab, ["https://dns.google/dns-query?dns=!!!notbase64"])
    assert meta == "2 400"
    body, meta = _doh(lab, ["-H", "content-type: text/plain", "--data-binary", "x",
                            "https://cloudflare-dns.com/dns-query"])  # fmt: skip
    assert meta == "2 415"
    assert isinstance(body, bytes) and b"application/dns-message" in body


def test_curl_resolves_over_doh_end_to_end(lab: Lab) -> None:
    r = lab.run(["curl", "-sS", "--max-time", "5", "--doh-url",
                 "https://mozilla.cloudflare-dns.com/dns-query", "-o", "/dev/null",
                 "-w", "%{remote_ip} %{http_code}", "https://signal.org/"])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{plan.SERVICE_ADDRS['signal'][0]} 200"


_ISP_QUERY = r"""
import json, sys
from concurrent.futures import ThreadPoolExecutor
import dns.exception, dns.message, dns.query, dns.rcode
def one(name):
    q = dns.message.make_query(name, "A")
    try:
        r = dns.query.udp(q, "192.0.2.53", timeout=3)
        return [dns.rcode.to_text(r.rcode()),
                sorted(rr.address for s in r.answer for rr in s), [s.ttl for s in r.answer]]
    except dns.exception.Timeout:
        return ["TIMEOUT", [], []]
with ThreadPoolExecutor(8) as ex:
    out = dict(zip(sys.argv[1:], ex.map(one, sys.argv[1:])))
print(json.dumps(out))
"""


def _isp(lab: Lab, *names: str) -> dict[str, list[object]]:
    import sys

    r = lab.run([sys.executable, "-c", _ISP_QUERY, *names], timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    result: dict[str, list[object]] = json.loads(r.stdout)
    return result


def test_isp_resolver_is_the_system_resolver_and_forwards_foreign_names(lab: Lab) -> None:
    r = lab.run(["getent", "ahosts", "www.bbc.com"])
    assert r.stdout.split()[0] == plan.SERVICE_ADDRS["bbcpersian"][0]
    got = _isp(lab, "www.digikala.com", "www.youtube.com", "nonexistent.example")
    assert got["www.digikala.com"][:2] == ["NOERROR", sorted(plan.DOMESTIC_SITES["digikala"])]
    assert got["www.youtube.com"][:2] == ["NOERROR", sorted(plan.SERVICE_ADDRS["youtube"])]
    assert got["nonexistent.example"][0] == "NXDOMAIN"


def test_isp_resolver_applies_the_hijack_policy_and_logs_it(lab: Lab) -> None:
    policy = Path(lab.desc.state_dir) / "resolver-policy.json"
    before = policy.read_bytes() if policy.exists() else None
    rules = [
        {"id": "t-bogon", "suffix": "instagram.com", "action": "bogon",
         "answer": "10.10.34.34", "ttl": 418},
        {"id": "t-nx", "suffix": "telegram.org", "action": "nxdomain"},
        {"id": "t-drop", "suffix": "signal.org", "action": "drop"},
        {"id": "t-refused", "suffix": "x.com", "action": "refused"},
    ]  # fmt: skip
    try:
        policy.write_text(json.dumps({"rules": rules}))
        got = _isp(lab, "www.instagram.com", "web.telegram.org", "signal.org", "x.com",
                   "www.flickr.com")  # fmt: skip
        assert got["www.instagram.com"] == ["NOERROR", ["10.10.34.34"], [418]]
        assert got["web.telegram.org"][0] == "NXDOMAIN"
        assert got["signal.org"][0] == "TIMEOUT"
        assert got["x.com"][0] == "REFUSED"
        assert got["www.flickr.com"][:2] == ["NOERROR", sorted(plan.SERVICE_ADDRS["flickr"])]
        fired = [e for e in lab.censor_log() if str(e["rule"]).startswith("t-")]
        assert sorted((e["rule"], e["detail"], e["dst"]) for e in fired) == [
            ("t-bogon", "www.instagram.com", "192.0.2.53:53"),
            ("t-drop", "signal.org", "192.0.2.53:53"),
            ("t-nx", "web.telegram.org", "192.0.2.53:53"),
            ("t-refused", "x.com", "192.0.2.53:53"),
        ]
        assert all(e["src"].startswith(plan.CLIENT_ADDR + ":") for e in fired)
        bogon = next(e for e in fired if e["rule"] == "t-bogon")
        assert bogon["action"] == "resolver bogon 10.10.34.34"
    finally:
        if before is None:
            policy.unlink(missing_ok=True)
        else:
            policy.write_bytes(before)
    assert _isp(lab, "www.instagram.com")["www.instagram.com"][:2] == [
        "NOERROR", sorted(plan.SERVICE_ADDRS["instagram"])]  # fmt: skip


def test_foreign_names_fail_at_the_isp_resolver_when_the_border_is_cut(lab: Lab) -> None:
    """As in November 2019: the ISP resolver still answers domestic names, not foreign."""
    route = ["ip", "-n", lab.ns("isp"), "route"]
    gw = "192.0.2.10"
    subprocess.run([*route, "replace", "blackhole", "198.51.100.0/24"], check=True)
    try:
        got = _isp(lab, "www.aparat.com", "www.wikipedia.org")
    finally:
        subprocess.run([*route, "replace", "198.51.100.0/24", "via", gw], check=True)
    assert got["www.aparat.com"][:2] == ["NOERROR", sorted(plan.DOMESTIC_SITES["aparat"])]
    assert got["www.wikipedia.org"][0] == "SERVFAIL"
