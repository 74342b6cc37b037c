"""The fake services as a client sees them: distinct pages and headers per service, the
/bytes endpoint, HEAD, Iran's blockpage host, and a half-open flow left by an injected RST
that must not stall the next connection (pitfall P9)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from didban.lab import plan

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab
LAB_PROFILE = "clean"


def _head(lab: Lab, url: str, *extra: str) -> dict[str, str]:
    r = lab.run(["curl", "-sS", "-I", "--max-time", "5", *extra, url])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    headers = {"status": lines[0].split()[1]}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return headers


def test_services_differ_in_size_and_server_headers(lab: Lab) -> None:
    urls = {
        "instagram": "https://www.instagram.com/",
        "telegram": "https://telegram.org/",
        "youtube": "https://www.youtube.com/",
        "yahoomail": "https://mail.yahoo.com/",
        "wikipedia": "https://fa.wikipedia.org/",
    }
    seen = {sid: _head(lab, url) for sid, url in urls.items()}
    assert all(h["status"] == "200" for h in seen.values())
    assert len({h["content-length"] for h in seen.values()}) == len(urls)
    assert seen["telegram"]["server"] == "nginx/1.18.0"
    assert seen["youtube"]["server"] == "ESF"
    assert seen["instagram"]["server"] == "proxygen-bolt"
    assert "alt-svc" in seen["instagram"] and "alt-svc" not in seen["telegram"]


def test_bytes_endpoint_returns_exactly_n_bytes(lab: Lab) -> None:
    for url, proto in (
        ("https://www.youtube.com/bytes/3000000", "2"),
        ("http://www.cloob.com/bytes/123457", "1.1"),
    ):
        r = lab.run(["curl", "-sS", "--max-time", "10", "-o", "/dev/null",
                     "-w", "%{http_code} %{size_download} %{http_version}", url])  # fmt: skip
        n = url.rsplit("/", 1)[1]
        assert r.stdout == f"200 {n} {proto}", r.stderr
    r = lab.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                 "https://www.youtube.com/bytes/99999999999"])  # fmt: skip
    assert r.stdout == "400"


def test_blockpage_host_serves_the_peyvandha_landing_page_and_refuses_443(lab: Lab) -> None:
    for addr in plan.BLOCKPAGE_HOSTS:
        r = lab.run(["curl", "-sS", "--max-time", "5", f"http://{addr}/?type=Invalid%20Site"])
        assert r.returncode == 0, r.stderr
        assert "peyvandha.ir/1-2" in r.stdout
        assert re.search(r"<title>M5-8</title>", r.stdout)
    code = (
        "import socket\n"
        "s = socket.socket(); s.settimeout(3)\n"
        "try:\n    s.connect(('10.10.34.36', 443)); print('open')\n"
        "except ConnectionRefusedError: print('refused')\n"
    )
    assert lab.python(code).stdout.strip() == "refused"


def test_unknown_host_on_a_service_address_gets_that_services_page(lab: Lab) -> None:
    r = lab.run(["curl", "-sS", "--max-time", "5", "-H", "Host: 203.0.113.58",
                 "http://203.0.113.58/"])  # fmt: skip
    assert "<title>Wikipedia</title>" in r.stdout


_HALF_OPEN = r"""
import http.client, json, socket, ssl, sys, time
ca, addr = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
out = {}
s = socket.create_connection((addr, 443), timeout=3)
try:
    ctx.wrap_socket(s, server_hostname="p9-halfopen.test")
    out["first"] = "handshake completed"
except ConnectionResetError:
    out["first"] = "reset"
except OSError as e:
    out["first"] = repr(e)
t = time.monotonic()
c = http.client.HTTPSConnection(addr, 443, timeout=3, context=ctx)
c.request("GET", "/", headers={"Host": "www.flickr.com"})
r = c.getresponse()
body = r.read()
out["second"] = [r.status, body.split(b"<title>")[1].split(b"<")[0].decode()]
print(json.dumps(out))
"""


def test_half_open_flow_after_injected_rst_does_not_stall_the_next_connection(lab: Lab) -> None:
    """P9: the censor resets only the client; the server keeps an ESTABLISHED flow that
    waits for a ClientHello which never comes. The next connection must still be served."""
    addr = plan.SERVICE_ADDRS["flickr"][0]
    rule = ["FORWARD", "-p", "tcp", "-d", addr, "--dport", "443", "-m", "string",
            "--string", "p9-halfopen.test", "--algo", "bm", "-m", "comment",
            "--comment", "didban-test-p9",
            "-j", "REJECT", "--reject-with", "tcp-reset"]  # fmt: skip
    ipt = ["ip", "netns", "exec", lab.ns("isp"), "iptables", "-w"]
    subprocess.run([*ipt, "-I", *rule], check=True)
    try:
        r = lab.run([sys.executable, "-c", _HALF_OPEN, lab.desc.ca_file, addr], timeout=30)
        half_open = lab.run(
            ["ss", "-Htn", "state", "established", "src", f"{addr}:443"], role="inet"
        ).stdout
    finally:
        subprocess.run([*ipt, "-D", *rule], check=True)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)
    assert result["first"] == "reset"
    assert result["second"] == [200, "Find your inspiration. | Flickr"]
    # The precondition of P9 really held: the server still had the reset flow open.
    assert f"{plan.CLIENT_ADDR}:" in half_open
