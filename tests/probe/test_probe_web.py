"""web_connectivity and ``didban run`` against loopback peers: a complete, valid measurement,
the JSONL output, scrubbing, consent, bad flags and Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
from probe_peers import Handler, Loopback, free_port
from typer.testing import CliRunner

from didban.cli import app
from didban.model.validate import problems
from didban.probe.config import ProbeConfig
from didban.probe.envelope import REPORT_ID_RE, ProbeIdentity
from didban.probe.lists import ListEntry
from didban.probe.scrub import local_addresses
from didban.probe.webconnectivity import WebConnectivity


def _config(lb: Loopback) -> ProbeConfig:
    return lb.web_config(lb.dns_inject_port)


async def test_complete_measurement_validates(loopback: Loopback) -> None:
    exp = WebConnectivity(_config(loopback), ProbeIdentity("IR", "AS197207", "lab"))
    m = msgspec.to_builtins(await exp.measure(ListEntry(loopback.url("/old")), 30))
    assert problems(m) == []
    assert m["test_name"] == "web_connectivity"
    assert m["software_name"] == "didban"
    assert m["data_format_version"] == "0.2.0"
    assert m["probe_ip"] == "127.0.0.1"
    assert REPORT_ID_RE.match(m["report_id"])
    assert "_webconnectivity_IR_197207_n1_" in m["report_id"]
    tk = m["test_keys"]
    engines = {q["engine"]: q for q in tk["queries"] if "depth=0" in q["tags"]}
    assert set(engines) == {"getaddrinfo", "udp", "doh"}
    assert engines["getaddrinfo"]["query_type"] == "ANY"
    # the injected reply is the query's answer, the genuine one a duplicate
    assert [a["ipv4"] for a in engines["udp"]["answers"]] == ["127.0.0.2"]
    assert [a["ipv4"] for d in tk["x_dns_duplicate_responses"] for a in d["answers"]] == [
        "127.0.0.1"
    ]
    endpoint = [c for c in tk["tcp_connect"] if "x_didban_redirect" not in c["tags"]]
    by_ip = {c["ip"]: c["status"] for c in endpoint}
    assert len(endpoint) == 2  # the flow that worked also fetched the first hop
    assert by_ip["127.0.0.2"]["failure"] == "connection_refused"
    assert by_ip["127.0.0.1"]["failure"] is None
    hs = [h for h in tk["tls_handshakes"] if "tcptls_experiment" in h["tags"]]
    assert hs and hs[0]["failure"] is None and hs[0]["server_name"] == "localhost"
    assert hs[0]["peer_certificates"]
    # requests newest first: the final 200 page, then the 302
    assert [r["response"]["code"] for r in tk["requests"]] == [200, 302]
    assert "didban loopback site" in tk["requests"][0]["response"]["body"]
    assert tk["http_experiment_failure"] is None
    assert tk["dns_experiment_failure"] is None
    # the control helper answered, and saw the same page
    assert tk["control_failure"] is None
    assert tk["control"]["http_request"]["status_code"] == 200
    assert tk["control"]["http_request"]["title"] == "didban loopback site"
    assert tk["x_control_request"]["http_request"] == loopback.url("/old")
    assert f"127.0.0.1:{loopback.https_port}" in tk["x_control_request"]["tcp_connect"]
    # the probe never judges
    for key in ("blocking", "accessible", "dns_consistency", "body_length_match"):
        assert tk[key] is None
    assert any(e["operation"] == "tls_handshake_done" for e in tk["network_events"])


async def test_deadline_during_the_late_reply_wait_keeps_the_replies(loopback: Loopback) -> None:
    # the URL's deadline falls while the UDP lookup still listens for late replies: the
    # injected answer and the genuine reply that followed it are evidence, and are kept
    cfg = _config(loopback)
    cfg.duplicate_wait = 60.0
    exp = WebConnectivity(cfg, ProbeIdentity("IR", "AS197207", "lab"))
    m = msgspec.to_builtins(await exp.measure(ListEntry(loopback.url("/")), 6))
    assert problems(m) == []
    tk = m["test_keys"]
    udp = [q for q in tk["queries"] if q["engine"] == "udp"]
    assert [a["ipv4"] for q in udp for a in q["answers"]] == ["127.0.0.2"]
    assert [a["ipv4"] for d in tk["x_dns_duplicate_responses"] for a in d["answers"]] == [
        "127.0.0.1"
    ]
    assert [a["ipv4"] for d in tk["x_do53"]["duplicates"] for a in d["answers"]] == ["127.0.0.1"]
    assert tk["x_do53"]["queries"][0]["answers"][0]["ipv4"] == "127.0.0.2"
    # everything else had finished: nothing is marked as cut off by the deadline
    assert tk["http_experiment_failure"] is None
    assert tk["dns_experiment_failure"] is None
    assert tk["control_failure"] is None


async def test_deadline_before_any_udp_reply_records_the_query_as_timed_out(
    loopback: Loopback,
) -> None:
    # the UDP resolver never answers and the URL's deadline comes first: the lookup is
    # still in queries (generic_timeout_error), and the system resolver, which answered,
    # is not marked failed
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        cfg = _config(loopback)
        cfg.udp_resolver = ("127.0.0.1", silent.getsockname()[1])
        cfg.dns_timeout = 60.0
        exp = WebConnectivity(cfg, ProbeIdentity("IR", "AS197207", "lab"))
        m = msgspec.to_builtins(await exp.measure(ListEntry(loopback.url("/")), 4))
    assert problems(m) == []
    tk = m["test_keys"]
    udp = [q for q in tk["queries"] if q["engine"] == "udp"]
    assert [q["failure"] for q in udp] == ["generic_timeout_error"]
    assert tk["dns_experiment_failure"] is None
    assert tk["x_do53"]["queries"][0]["failure"] == "generic_timeout_error"


async def test_unreachable_port_is_recorded_not_raised(loopback: Loopback) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    exp = WebConnectivity(_config(loopback), ProbeIdentity())
    m = msgspec.to_builtins(await exp.measure(ListEntry(f"https://localhost:{port}/"), 30))
    assert problems(m) == []
    tk = m["test_keys"]
    assert tk["http_experiment_failure"] == "connection_refused"
    assert {c["status"]["failure"] for c in tk["tcp_connect"]} == {"connection_refused"}
    assert tk["tls_handshakes"] == []


def _didban(
    args: list[str], env: dict[str, str], stdin: int | None = None, sigint_ignored: bool = False
) -> subprocess.Popen[str]:
    """``sigint_ignored``: started as a script's background job is (SIGINT ignored)."""
    return subprocess.Popen(
        [sys.executable, "-m", "didban.cli", *args],
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )


def _flags(lb: Loopback) -> list[str]:
    return [
        "--resolver", f"127.0.0.1:{lb.dns_inject_port}",
        "--doh", lb.doh_url,
        "--doh-bootstrap", f"127.0.0.1:{lb.https_port}",
        "--control", str(lb.control_url),
        "--ca-file", lb.ca_file,
        "--no-progress",
    ]  # fmt: skip


def _env(config_home: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(config_home), "COLUMNS": "200"}


def test_cli_run_writes_scrubbed_valid_jsonl(
    loopback: Loopback, config_home: Path, tmp_path: Path
) -> None:
    mine = sorted(local_addresses())
    if not mine:
        pytest.skip("this host has no non-loopback address to scrub")
    Handler.echo = ", ".join(mine)
    out = tmp_path / "run.jsonl"
    p = _didban(
        ["run", "--accept-risk", "--output", str(out), "--probe-cc", "IR",
         "--probe-asn", "AS58224", *_flags(loopback),
         "--url", loopback.url("/"), "--url", loopback.url("/whoami")],
        _env(config_home),
    )  # fmt: skip
    _, stderr = p.communicate(timeout=90)
    assert p.returncode == 0, stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    ms = [msgspec.json.decode(x) for x in lines]
    assert all(problems(m) == [] for m in ms)
    assert {m["input"] for m in ms} == {loopback.url("/"), loopback.url("/whoami")}
    assert {m["probe_cc"] for m in ms} == {"IR"} and {m["probe_asn"] for m in ms} == {"AS58224"}
    assert len({m["report_id"] for m in ms}) == 1  # one report per run
    text = out.read_text()
    for addr in mine:
        assert addr not in text
    who = next(m for m in ms if m["input"].endswith("/whoami"))
    resp = who["test_keys"]["requests"][0]["response"]
    assert "Your address: 127.0.0.1" in resp["body"]
    assert resp["headers"]["X-Your-Ip"].startswith("127.0.0.1")
    # the summary table: outcome strings per step, no verdicts
    assert "whoami" in stderr and "200" in stderr
    assert "2 measurements written" in stderr
    # consent given with --accept-risk is remembered
    assert (config_home / "didban" / "consent.json").is_file()


class _ReportingHelper(BaseHTTPRequestHandler):
    """didban's helper as seen from behind NAT: ``whoami`` reports a public address
    (Iran's TCI/ITC space); ``POST /`` is passed to the real helper on loopback."""

    protocol_version = "HTTP/1.1"
    real = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/x-didban/whoami":
            self._send(200, b'{"address": "2.176.0.1"}')
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = urllib.request.Request(self.real, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            self._send(r.status, r.read())


def test_cli_run_looks_up_and_scrubs_the_public_address_the_helper_reports(
    loopback: Loopback, config_home: Path, tmp_path: Path
) -> None:
    assert loopback.control_url is not None
    _ReportingHelper.real = loopback.control_url
    helper = ThreadingHTTPServer(("127.0.0.1", 0), _ReportingHelper)
    threading.Thread(target=helper.serve_forever, daemon=True).start()
    flags = _flags(loopback)
    flags[flags.index("--control") + 1] = f"http://127.0.0.1:{helper.server_address[1]}/"
    Handler.echo = "2.176.0.1"  # the site echoes the probe's public address
    out = tmp_path / "public.jsonl"
    args = ["run", "--accept-risk", "--output", str(out), *flags, "--url", loopback.url("/whoami")]
    try:
        p = _didban(args, _env(config_home))
        _, stderr = p.communicate(timeout=90)
    finally:
        helper.shutdown()
        Handler.echo = ""
    assert p.returncode == 0, stderr
    text = out.read_text()
    assert "2.176.0.1" not in text  # never written, though the page echoed it
    (m,) = [msgspec.json.decode(x) for x in text.splitlines()]
    assert (m["probe_cc"], m["probe_asn"]) == ("IR", "AS12880")  # offline lookup of it
    assert m["test_keys"]["control"] is not None  # the helper still measured
    assert "Your address: 127.0.0.1" in m["test_keys"]["requests"][0]["response"]["body"]


def test_cli_consent_refused_measures_nothing(
    loopback: Loopback, config_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no.jsonl"
    p = _didban(
        ["run", "--output", str(out), *_flags(loopback), "--url", loopback.url("/")],
        _env(config_home),
        stdin=subprocess.PIPE,
    )
    _, stderr = p.communicate("no\n", timeout=30)
    assert p.returncode == 1
    assert "can be a crime where censorship is practised" in stderr
    assert "the risk notice was not accepted" in stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "ftp://x.example.org/"], "the scheme must be http or https"),
        (["--resolver", "not-an-ip"], "--resolver 'not-an-ip' is not an IP address"),
        (["--concurrency", "0"], "--concurrency must be between 1 and 4096"),
        (["--list", "/nonexistent/list.csv"], "no such test-list file"),
        (["--probe-asn", "ASX"], "is not an AS number"),
        (["--control", "gopher://h/"], "must be an http or https URL"),
        (["--doh-bootstrap", "nothost"], "--doh-bootstrap 'nothost' is not an IP address"),
    ],
)
def test_cli_bad_input_is_one_sentence_exit_2(
    args: list[str], message: str, config_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bad.jsonl"
    r = CliRunner().invoke(app, ["run", "--accept-risk", "--output", str(out), *args])
    assert r.exit_code == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_refuses_to_clobber_output(config_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "exists.jsonl"
    out.write_text("keep me\n")
    r = CliRunner().invoke(
        app, ["run", "--accept-risk", "--output", str(out), "--url", "https://a.example.org/"]
    )
    assert r.exit_code == 2
    assert "already exists; choose another --output or pass --append" in r.stderr
    assert out.read_text() == "keep me\n"


def test_cli_output_is_checked_before_the_risk_notice_and_any_traffic(
    config_home: Path, tmp_path: Path
) -> None:
    # no --accept-risk and no answer on stdin: a bad --output must be refused first
    for out, message in (
        (tmp_path / "missing" / "x.jsonl", "does not exist"),
        (tmp_path, "is a directory; give a file name"),
        (Path("/proc/x.jsonl"), "cannot write --output /proc/x.jsonl"),
    ):
        r = CliRunner().invoke(app, ["run", "--url", "https://a.example.org/", "-o", str(out)])
        assert r.exit_code == 2, r.output
        assert message in r.stderr
        assert "risk" not in r.stderr.lower()  # the notice was not shown
        r = CliRunner().invoke(app, ["dnscheck", "a.example.org", "-o", str(out)])
        assert r.exit_code == 2 and message in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_lab_mode_without_a_lab_is_one_sentence(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIDBAN_LAB", str(tmp_path / "no-such-lab" / "lab.json"))
    r = CliRunner().invoke(app, ["run", "--lab", "--output", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2
    assert "no lab is up" in r.stderr and "didban lab up" in r.stderr


@pytest.mark.parametrize(
    ("stop", "background"),
    [
        (signal.SIGINT, False),
        (signal.SIGTERM, False),
        (signal.SIGHUP, False),
        (signal.SIGTERM, True),  # a background job of a script: SIGINT ignored
    ],
)
def test_a_stop_signal_leaves_a_valid_file_of_what_finished(
    stop: signal.Signals, background: bool, loopback: Loopback, config_home: Path, tmp_path: Path
) -> None:
    hole = socket.socket()  # accepts connections (kernel backlog) and never speaks
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    out = tmp_path / "int.jsonl"
    try:
        p = _didban(
            ["run", "--accept-risk", "--output", str(out), *_flags(loopback),
             "--url", loopback.url("/"), "--url", loopback.url("/old"),
             "--url", f"https://localhost:{hole.getsockname()[1]}/"],
            _env(config_home),
            sigint_ignored=background,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_bytes().splitlines()) >= 2:
                break
            assert p.poll() is None, p.communicate()[1]
            time.sleep(0.05)
        p.send_signal(stop)  # SIGTERM and SIGHUP stop it as Ctrl-C does, not kill it
        _, stderr = p.communicate(timeout=30)
    finally:
        hole.close()
    assert p.returncode == 130
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2
    assert all(problems(msgspec.json.decode(x)) == [] for x in lines)
    said = " ".join(stderr.split())  # the console may wrap the line of a long path
    assert "2 measurements written" in said and "interrupted" in said


def _start_collector(data_dir: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """``didban serve`` on a free loopback port, once it accepts connections."""
    port = free_port()
    collector = subprocess.Popen(
        [sys.executable, "-m", "didban.cli", "serve", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert collector.poll() is None, collector.communicate()[1]
            time.sleep(0.1)
    return port, collector


def test_cli_run_uploads_through_the_durable_queue(
    loopback: Loopback, config_home: Path, tmp_path: Path
) -> None:
    port, collector = _start_collector(tmp_path / "store")
    try:
        out = tmp_path / "up.jsonl"
        env = {**_env(config_home), "XDG_STATE_HOME": str(tmp_path / "state")}
        p = _didban(
            ["run", "--accept-risk", "--output", str(out), *_flags(loopback),
             "--url", loopback.url("/"), "--upload", f"http://127.0.0.1:{port}"],
            env,
        )  # fmt: skip
        _, stderr = p.communicate(timeout=90)
    finally:
        collector.terminate()
        collector.wait(10)
    assert p.returncode == 0, stderr
    assert f"uploaded 1 to http://127.0.0.1:{port}" in stderr
    queue = tmp_path / "state" / "didban" / "upload-queue"
    assert not list((queue / "pending").glob("*.json"))
    sent = (queue / "sent.jsonl").read_text().splitlines()
    assert len(sent) == 1 and "measurement_uid" in sent[0]


def test_an_upload_to_a_collector_that_is_down_says_why_and_where_and_fails(
    loopback: Loopback, config_home: Path, tmp_path: Path
) -> None:
    env = {**_env(config_home), "XDG_STATE_HOME": str(tmp_path / "state")}
    dead = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    out = tmp_path / "up.jsonl"
    p = _didban(
        ["run", "--accept-risk", "--output", str(out), *_flags(loopback),
         "--url", loopback.url("/"), "--upload", dead],
        env,
    )  # fmt: skip
    _, stderr = p.communicate(timeout=120)
    pending = tmp_path / "state" / "didban" / "upload-queue" / "pending"
    said = " ".join(stderr.split())  # the console may wrap a long line
    assert p.returncode == 3, stderr
    assert f"error: uploaded 0 to {dead}; 1 not sent (could not connect to the collector)" in said
    assert f"kept in {pending} for the next 'didban run --upload'" in said
    assert len(out.read_bytes().splitlines()) == 1  # measured and written all the same
    assert len(list(pending.glob("*.json"))) == 1


def test_append_without_an_output_file_is_refused(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["run", "--url", "https://x.example.org/"], ["dnscheck", "x.example.org"]):
        r = CliRunner().invoke(app, [*command, "--accept-risk", "--append"])
        assert r.exit_code == 2, r.output
        assert "--append needs --output FILE, the file to append to" in r.stderr
        assert list(tmp_path.iterdir()) == []  # no new file in the current directory


def test_probe_killed_mid_run_loses_nothing_it_measured(
    loopback: Loopback, config_home: Path, tmp_path: Path
) -> None:
    """Each measurement is queued as it is written: after SIGKILL, the next --upload run
    sends what the killed run measured (and its own)."""
    hole = socket.socket()  # accepts and never speaks: keeps the first run busy
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    env = {**_env(config_home), "XDG_STATE_HOME": str(tmp_path / "state")}
    queue = tmp_path / "state" / "didban" / "upload-queue"
    dead = f"http://127.0.0.1:{free_port()}"  # no collector listens here yet
    out1 = tmp_path / "killed.jsonl"
    try:
        p = _didban(
            ["run", "--accept-risk", "--output", str(out1), *_flags(loopback),
             "--url", loopback.url("/"), "--url", f"https://localhost:{hole.getsockname()[1]}/",
             "--upload", dead],
            env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list((queue / "pending").glob("*.json")):
            assert p.poll() is None, p.communicate()[1]
            time.sleep(0.05)
        p.kill()
        p.communicate(timeout=30)
    finally:
        hole.close()
    assert len(list((queue / "pending").glob("*.json"))) == 1
    port, collector = _start_collector(tmp_path / "store")
    try:
        p = _didban(
            ["run", "--accept-risk", "--output", str(tmp_path / "next.jsonl"), *_flags(loopback),
             "--url", loopback.url("/old"), "--upload", f"http://127.0.0.1:{port}"],
            env,
        )  # fmt: skip
        _, stderr = p.communicate(timeout=90)
    finally:
        collector.terminate()
        collector.wait(10)
    assert p.returncode == 0, stderr
    assert f"uploaded 2 to http://127.0.0.1:{port}" in stderr
    assert not list((queue / "pending").glob("*.json"))


def test_a_ca_file_without_certificates_is_refused_not_measured_with(
    config_home: Path, tmp_path: Path
) -> None:
    # it would make every handshake "ssl_unknown_authority": false interception evidence
    broken_pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    for content in (b"", b"not pem\n", broken_pem):
        bundle = tmp_path / "ca.pem"
        bundle.write_bytes(content)
        out = tmp_path / "x.jsonl"
        for args in (
            ["run", "--accept-risk", "--url", "https://a.example.org/", "-o", str(out)],
            ["dnscheck", "--accept-risk", "a.example.org", "-o", str(out)],
            ["control", "query", "https://a.example.org/", "--helper", "http://127.0.0.1:9/"],
        ):
            r = CliRunner().invoke(app, [*args, "--ca-file", str(bundle)])
            assert r.exit_code == 2, (args, r.output)
            assert f"--ca-file {bundle} holds no PEM certificate" in r.stderr
        assert not out.exists()


def test_a_run_whose_control_failed_says_what_that_means(
    loopback: Loopback, config_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "noctl.jsonl"
    flags = _flags(loopback)
    flags[flags.index("--control") + 1] = f"http://127.0.0.1:{free_port()}/"  # nobody there
    p = _didban(
        ["run", "--accept-risk", "--output", str(out), *flags, "--url", loopback.url("/")],
        _env(config_home),
    )
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    said = " ".join(stderr.split())
    assert "warning: the control (test helper) failed for 1 of 1 measurements" in said
    assert "didban analyze will call them inconclusive" in said
