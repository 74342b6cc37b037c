"""Fixtures of the probe tests: loopback peers (probe_peers.py) and the control helper, all on
127.0.0.1, started and stopped here; a private config dir for the consent state."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
from probe_peers import Handler, Loopback, free_port, udp_dns


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loopback]:
    tmp = tmp_path_factory.mktemp("loopback")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(ctx)
    ctx.set_alpn_protocols(["http/1.1"])
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    web = threading.Thread(target=httpd.serve_forever, daemon=True)
    web.start()
    stop = threading.Event()
    inject_port, t1 = udp_dns(True, stop)
    plain_port, t2 = udp_dns(False, stop)

    helper: subprocess.Popen[bytes] | None = None
    control_url: str | None = None
    cport = free_port()
    cmd = [
        sys.executable,
        "-m",
        "didban.cli",
        "control",
        "serve",
        "--listen",
        f"127.0.0.1:{cport}",
        "--resolver",
        f"127.0.0.1:{plain_port}",
        "--ca-file",
        str(ca_file),
    ]
    helper = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ)
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and helper.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", cport), timeout=0.2).close()
            control_url = f"http://127.0.0.1:{cport}/"
            break
        except OSError:
            time.sleep(0.05)
    if control_url is None:
        err = helper.stderr.read().decode() if helper.poll() is not None and helper.stderr else ""
        helper.kill()
        helper.wait()
        helper = None
        pytest.fail(f"the control helper did not start: {err.strip()[-300:]}")
    try:
        yield Loopback(str(ca_file), httpd.server_address[1], inject_port, plain_port, control_url)
    finally:
        if helper is not None:
            helper.terminate()
            try:
                helper.wait(5)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()
        httpd.shutdown()
        httpd.server_close()
        stop.set()
        t1.join(2)
        t2.join(2)


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    return tmp_path / "cfg"
