"""The test helper on loopback: oohelperd's answers, failure mappings and 400s."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import trustme
from peers import PAGE, Site, closed_port, start_h3

from didban.control import client
from didban.control.helper import HelperConfig, load_asn_map, measure
from didban.model.ooni import THRequest, THResponse
from didban.net import dns, http

if TYPE_CHECKING:
    from conftest import Lab


async def test_https_site_is_measured(lab: Lab) -> None:
    port = lab.site.https_port
    req = THRequest(
        http_request=f"https://site.test:{port}/",
        tcp_connect=[f"127.0.0.1:{port}"],
        http_request_headers={"User-Agent": ["didban-test"]},
    )
    res = await client.query(lab.helper_url, req, 10)
    assert isinstance(res, THResponse), res
    assert res.dns.failure is None and res.dns.addrs == ["127.0.0.1"]
    assert res.tcp_connect[f"127.0.0.1:{port}"].status is True
    tls = res.tls_handshake[f"127.0.0.1:{port}"]
    assert tls.status is True and tls.server_name == "site.test" and tls.failure is None
    assert res.http_request is not None
    assert res.http_request.status_code == 200
    assert res.http_request.title == "Hello didban"
    assert res.http_request.body_length == len(PAGE)
    assert res.http_request.headers["content-type"].startswith("text/html")
    # didban's extension: the helper's own body rate, for the throttling rule
    assert res.http_request.x_didban_throughput is not None
    assert res.http_request.x_didban_throughput > 0
    # probe (1) + helper (2) + bogon (4: loopback) + valid for the domain (8)
    assert res.ip_info["127.0.0.1"].flags == 15
    assert lab.dns.queries.count("site.test") >= 1


async def test_plain_http_with_redirects(lab: Lab) -> None:
    port = lab.site.http_port
    req = THRequest(http_request=f"http://site.test:{port}/redirect/2")
    res = await client.query(lab.helper_url, req, 10)
    assert isinstance(res, THResponse)
    assert res.http_request is not None and res.http_request.status_code == 200
    assert res.http_request.title == "Hello didban"
    assert f"127.0.0.1:{port}" in res.tcp_connect
    assert res.tls_handshake == {}  # an explicit http port gets no TLS probe
    assert res.ip_info["127.0.0.1"].flags & 1 == 0  # the probe did not resolve it


async def test_nxdomain_and_refused(lab: Lab) -> None:
    dead = closed_port()
    req = THRequest(http_request=f"http://missing.test:{dead}/", tcp_connect=[f"127.0.0.1:{dead}"])
    res = await client.query(lab.helper_url, req, 10)
    assert isinstance(res, THResponse)
    assert res.dns.failure == "dns_name_error" and res.dns.addrs == []
    assert res.tcp_connect[f"127.0.0.1:{dead}"].status is False
    assert res.tcp_connect[f"127.0.0.1:{dead}"].failure == "connection_refused_error"
    assert res.http_request is not None
    assert res.http_request.failure == "dns_lookup_error"
    assert res.http_request.status_code == -1 and res.http_request.body_length == -1


async def test_wrong_certificate_is_reported_in_tls(lab: Lab) -> None:
    port = lab.site.https_port
    lab.dns.table["other.test"] = ["127.0.0.1"]
    req = THRequest(http_request=f"https://other.test:{port}/")
    res = await client.query(lab.helper_url, req, 10)
    assert isinstance(res, THResponse)
    assert res.tls_handshake[f"127.0.0.1:{port}"].failure == "ssl_invalid_hostname"
    assert res.http_request is not None and res.http_request.failure == "unknown_error"
    assert res.ip_info["127.0.0.1"].flags & 8 == 0


async def test_bogons_are_not_connected_without_allow_loopback(lab: Lab) -> None:
    cfg = HelperConfig(resolver=f"127.0.0.1:{lab.dns.port}")
    req = THRequest(
        http_request=f"http://site.test:{lab.site.http_port}/", tcp_connect=["10.10.34.36:80"]
    )
    res = await measure(req, cfg)
    assert res.tcp_connect == {}
    assert res.ip_info["10.10.34.36"].flags == 1 | 4
    assert res.ip_info["127.0.0.1"].flags == 2 | 4
    assert res.http_request is not None and res.http_request.failure == "dns_lookup_error"


async def _post(
    lab: Lab, body: bytes, method: str = "POST", path: str = "/"
) -> tuple[int, dict[str, str]]:
    res = await http.fetch(
        lab.helper_url.rstrip("/") + path,
        resolver=dns.resolver(dns.System()),
        options=http.FetchOptions(
            headers=(("Content-Type", "application/json"),), body_cap=1 << 20, max_redirects=0
        ),
        method=method,
        body=body,
    )
    resp = res.requests[0].response
    assert resp is not None and isinstance(resp.body, str)
    return resp.code, json.loads(resp.body)


async def test_hello(lab: Lab) -> None:
    assert await _post(lab, b"", "GET") == (200, {"message": "Hello OONItarian!"})


async def test_whoami_reports_the_address_the_helper_sees(lab: Lab) -> None:
    assert await _post(lab, b"", "GET", path="/x-didban/whoami") == (200, {"address": "127.0.0.1"})
    # ... but the client ignores an answer equal to the helper's own address (on loopback
    # they are the same; behind a reverse proxy the helper would report the proxy)
    assert await client.whoami(lab.helper_url) is None
    status, doc = await _post(lab, b"{}", "POST", path="/x-didban/whoami")
    assert status == 405 and "use GET" in doc["error"]
    # a helper without the resource (OONI's, or not a helper at all) gives no answer
    assert await client.whoami(f"http://127.0.0.1:{lab.site.http_port}/") is None
    assert await client.whoami(f"http://127.0.0.1:{closed_port()}/", 5) is None


async def test_bad_requests_get_400_with_a_sentence(lab: Lab) -> None:
    cases = [
        b"not json",
        b'{"tcp_connect": []}',
        b'{"http_request": 42}',
        b'{"http_request": "ftp://example.org/"}',
        b'{"http_request": "http://x.test/", "tcp_connect": ["nope"]}',
        b"[" + b"1," * (600 * 1024) + b"1]",
    ]
    for body in cases:
        status, doc = await _post(lab, body)
        assert status == 400, body[:40]
        assert set(doc) == {"error"} and doc["error"].count(". ") == 0 and doc["error"]


async def test_session_reuses_its_connection_and_recovers_when_the_helper_drops_it(
    lab: Lab,
) -> None:
    port = lab.site.https_port
    req = THRequest(http_request=f"https://site.test:{port}/", tcp_connect=[f"127.0.0.1:{port}"])
    session = client.HelperSession(lab.helper_url)
    try:
        first = [await session.query(req, 10) for _ in range(3)]
        assert all(isinstance(r, THResponse) and r.dns.addrs == ["127.0.0.1"] for r in first)
        assert session.connections == 1  # one kept-alive connection served all three
        # the helper closes the idle connection (restart, idle timeout): the next query
        # notices and goes over a fresh one
        for stream in session._idle:
            stream.close()
        again = await session.query(req, 10)
        assert isinstance(again, THResponse) and session.connections == 2
        parallel = await asyncio.gather(*(session.query(req, 10) for _ in range(4)))
        assert all(isinstance(r, THResponse) for r in parallel)
    finally:
        session.close()
    dead = client.HelperSession(f"http://127.0.0.1:{closed_port()}/")
    assert await dead.query(req, 5) == "connection_refused"
    not_helper = client.HelperSession(f"http://127.0.0.1:{lab.site.http_port}/binary")
    assert await not_helper.query(req, 5) in ("json_parse_error", "http_unexpected_status_code")
    not_helper.close()


async def test_client_reports_failures_as_strings(lab: Lab) -> None:
    req = THRequest(http_request="http://site.test/")
    assert await client.query(f"http://127.0.0.1:{closed_port()}/", req, 5) == "connection_refused"
    not_helper = f"http://127.0.0.1:{lab.site.http_port}/binary"
    assert await client.query(not_helper, req, 5) == "json_parse_error"


def test_client_decodes_ooni_nulls() -> None:
    body = (
        b'{"tcp_connect": null, "tls_handshake": null, "quic_handshake": null,'
        b'"http_request": {"body_length": -1, "failure": "unknown_error", "title": "",'
        b'"headers": null, "status_code": -1}, "dns": {"failure": null, "addrs": null},'
        b'"ip_info": null}'
    )
    res = client.decode_response(body)
    assert res.tcp_connect == {} and res.dns.addrs == []
    assert res.http_request is not None and res.http_request.failure == "unknown_error"


def test_asn_map(tmp_path: Path) -> None:
    good = tmp_path / "asn.json"
    good.write_text(
        json.dumps(
            [["203.0.113.0/25", 64500, "NL", "x"], ["203.0.113.10/32", 32934, "US", "Facebook"]]
        )
    )
    cfg = HelperConfig(asn_map=load_asn_map(str(good)))
    assert cfg.asn("203.0.113.10") == 32934
    assert cfg.asn("203.0.113.11") == 64500
    assert cfg.asn("192.0.2.1") == 0
    # public addresses the map lacks: the shipped offline snapshot (as oohelperd's GeoIP)
    assert cfg.asn("157.240.192.35") == 32934
    assert cfg.asn("10.10.34.36") == 0
    bad = tmp_path / "bad.json"
    bad.write_text('[["203.0.113.0/25", "AS1"]]')
    try:
        load_asn_map(str(bad))
    except ValueError as exc:
        assert "row 0 must be [cidr, asn, cc, org]" in str(exc)
    else:
        raise AssertionError("a bad row must be refused")


def test_serve_command_starts_and_answers(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "didban.cli", "control", "serve", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("didban control: listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        res = asyncio.run(http.fetch(url, resolver=dns.resolver(dns.System())))
        resp = res.requests[0].response
        assert resp is not None and resp.code == 200
        assert msgspec.json.decode(str(resp.body)) == {"message": "Hello OONItarian!"}
        # listening on loopback implies measuring loopback endpoints
        dead = closed_port()
        req = THRequest(http_request=f"http://127.0.0.1:{dead}/")
        answer = asyncio.run(client.query(url, req, 10))
        assert isinstance(answer, THResponse)
        assert answer.tcp_connect[f"127.0.0.1:{dead}"].failure == "connection_refused_error"
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_serve_bad_flags_exit_2() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "didban.cli", "control", "serve", "--listen", "nowhere"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "--listen must be IP:PORT" in r.stderr


class _AltSvcSite(Site):
    def respond(
        self, method: str, path: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        status, hdrs, payload = super().respond(method, path, body, headers)
        return status, [*hdrs, ("Alt-Svc", f'h3=":{self.https_port}"; ma=86400')], payload


async def test_quic_when_enabled_and_advertised(
    lab: Lab, ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    site = await _AltSvcSite(ca).start()
    h3, _ = await start_h3(ca, tmp_path, port=site.https_port)
    try:
        cfg = HelperConfig(
            resolver=f"127.0.0.1:{lab.dns.port}", ca_file=ca_file, allow_loopback=True
        )
        url = f"https://site.test:{site.https_port}/"
        res = await measure(THRequest(http_request=url, x_quic_enabled=True), cfg)
        plain = await measure(THRequest(http_request=url), cfg)
    finally:
        h3.close()
        await site.stop()
    assert res.http_request is not None
    assert res.http_request.discovered_h3_endpoint == f"site.test:{site.https_port}"
    assert res.quic_handshake[f"127.0.0.1:{site.https_port}"].status is True
    assert res.http3_request is not None and res.http3_request.status_code == 200
    assert res.http3_request.title == "Hello didban"
    assert plain.quic_handshake == {} and plain.http3_request is None


def test_cli_query_refuses_what_a_helper_would_refuse_with_its_reason() -> None:
    from typer.testing import CliRunner

    from didban.cli import app

    helper = f"http://127.0.0.1:{closed_port()}/"  # never contacted: refused before
    for args, reason in (
        (["not a url"], "the URL 'not a url' must be an absolute http:// or https:// URL"),
        (["https://a.example/", "--endpoint", "bogus"], "--endpoint 'bogus' is not an IP:PORT"),
        (["https://a.example/", "--timeout", "-1"], "--timeout must be a positive number"),
        (["https://a.example/", "--ca-file", "/nonexistent.pem"], "is not a readable file"),
    ):
        r = CliRunner().invoke(app, ["control", "query", *args, "--helper", helper])
        assert r.exit_code == 2
        assert reason in r.stderr
        assert "did not answer" not in r.stderr


def test_cli_query_says_what_a_server_that_is_not_a_helper_answered() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from typer.testing import CliRunner

    from didban.cli import app

    class NotAHelper(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = b"<h1>Not Found</h1>" if self.path == "/missing" else b"<p>a page</p>"
            self.send_response(404 if self.path == "/missing" else 200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotAHelper)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        r = CliRunner().invoke(
            app, ["control", "query", "https://a.example/", "--helper", f"{base}/missing"]
        )
        assert r.exit_code == 2
        assert f"{base}/missing answered HTTP 404, not a test helper's answer" in r.stderr
        assert "did not answer" not in r.stderr
        r = CliRunner().invoke(
            app, ["control", "query", "https://a.example/", "--helper", f"{base}/"]
        )
        assert r.exit_code == 2
        assert f"{base}/ answered HTTP 200, but not with a test helper's JSON" in r.stderr
    finally:
        server.shutdown()
        server.server_close()
