"""Network-wide censor policies seen from the client with plain sockets, ssl and curl:
throttling, the protocol whitelister, total shutdown, NIN isolation and the curfew switch;
each with the censor-log line of its rule, and none of it under ``clean``.

One lab for the module; profiles are switched live (``lab switch``) between tests.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from censor_support import fired, switch

pytestmark = pytest.mark.lab

PROFILES = Path(__file__).resolve().parent / "censor-profiles"
LAB_PROFILE = str(PROFILES / "censor-shape.yaml")
LIMIT_BYTES_PER_S = 1_000_000 / 8  # the 1mbit of censor-shape.yaml

HELPERS = r"""
import json, socket, ssl, sys, time
def err(e):
    return type(e).__name__
def tls(addr, sni, timeout=1.5, port=443):
    try:
        raw = socket.create_connection((addr, port), timeout=timeout)
    except Exception as e:
        return "connect " + err(e)
    try:
        with ssl.create_default_context().wrap_socket(raw, server_hostname=sni):
            return "ok"
    except Exception as e:
        return "handshake " + err(e)
def connect(addr, port=443, timeout=1.5):
    try:
        socket.create_connection((addr, port), timeout=timeout).close()
        return "ok"
    except Exception as e:
        return err(e)
"""

WHITELIST = r"""
res = {"before": tls("203.0.113.38", "www.flickr.com")}
s = socket.create_connection(("203.0.113.38", 443), timeout=1.5)
s.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")  # not DNS, HTTP or TLS
s.close()
res["penalised"] = tls("203.0.113.38", "www.flickr.com")
res["other_destination"] = tls("203.0.113.42", "www.cloob.com")
time.sleep(PENALTY + 0.5)
res["after_penalty"] = tls("203.0.113.38", "www.flickr.com")
print(json.dumps(res))
"""

REACH = r"""
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(3) as pool:
    checks = {
        "domestic": pool.submit(tls, "192.0.2.40", "www.digikala.com"),
        "international": pool.submit(connect, "203.0.113.58"),
        "isp_resolver": pool.submit(connect, "192.0.2.53", 53),
    }
    print(json.dumps({k: f.result() for k, f in checks.items()}))
"""

CURFEW = r"""
seen = []
deadline = time.monotonic() + 12
while time.monotonic() < deadline:
    seen.append(connect("203.0.113.58", timeout=0.5) == "ok")
    if True in seen and False in seen and seen[-1] != seen[0]:
        break
    time.sleep(0.2)
print(json.dumps({"seen": seen}))
"""


def client(lab: Any, code: str, timeout: float = 60.0) -> dict[str, Any]:
    r = lab.python(HELPERS + code, timeout=timeout)
    assert r.returncode == 0, r.stderr
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def download_speed(lab: Any) -> float:
    """Bytes per second curl measured fetching 250 kB from the throttled YouTube host."""
    r = lab.run(["curl", "-sS", "-m", "20", "-o", "/dev/null", "-w", "%{speed_download}",
                 "http://www.youtube.com/bytes/250000"])  # fmt: skip
    assert r.returncode == 0, r.stderr
    return float(r.stdout)


def test_throttle_keeps_throughput_under_the_limit(lab: Any) -> None:
    t0 = time.time()
    speed = download_speed(lab)
    assert speed < LIMIT_BYTES_PER_S * 1.2, f"{speed * 8 / 1e6:.2f} Mbit/s"
    assert speed > LIMIT_BYTES_PER_S * 0.3  # slowed, not cut
    assert fired(lab, "t-throttle", t0)[0]["action"] == "flow shaped to 1mbit (down)"


def test_whitelister_penalises_the_destination_of_a_non_conforming_flow(lab: Any) -> None:
    t0 = time.time()
    res = client(lab, "PENALTY = 3\n" + WHITELIST)  # the test profile's penalty
    assert res == {
        "before": "ok",  # TLS conforms
        "penalised": "handshake TimeoutError",  # a fresh, conforming flow is dropped too
        "other_destination": "ok",
        "after_penalty": "ok",
    }
    actions = [e["action"] for e in fired(lab, "t-whitelist", t0)]
    assert "non-conforming flow, 203.0.113.38 penalised 3 s" in actions
    assert "penalty drop" in actions


def test_total_shutdown_cuts_domestic_and_international(lab: Any) -> None:
    switch(lab, str(PROFILES / "censor-shutdown.yaml"))
    t0 = time.time()
    assert client(lab, REACH) == {
        "domestic": "connect TimeoutError",
        "international": "TimeoutError",
        "isp_resolver": "TimeoutError",
    }
    assert fired(lab, "t-shutdown", t0)


def test_nin_isolation_keeps_the_national_network_up(lab: Any) -> None:
    switch(lab, "iran-2019-shutdown")
    t0 = time.time()
    assert client(lab, REACH) == {
        "domestic": "ok",
        "international": "TimeoutError",
        "isp_resolver": "ok",
    }
    assert "203.0.113.58:443" in [e["dst"] for e in fired(lab, "nin-2019", t0)]
    curl = lab.run(["curl", "-sS", "-m", "5", "https://www.digikala.com/"])
    assert curl.returncode == 0 and "<title>" in curl.stdout


def test_curfew_switches_international_access_on_and_off(lab: Any) -> None:
    switch(lab, str(PROFILES / "censor-curfew.yaml"))
    t0 = time.time()
    seen = client(lab, CURFEW)["seen"]
    assert True in seen and False in seen
    switches = [e["action"] for e in fired(lab, "t-curfew", t0 - 1)
                if e["action"].startswith("curfew")]  # fmt: skip
    assert "curfew on (nin_isolation)" in switches and "curfew off (nin_isolation)" in switches
    assert any(e["action"] == "curfew drop" for e in fired(lab, "t-curfew", t0))


def test_clean_none_of_it(lab: Any) -> None:
    switch(lab, "clean")
    t0 = time.time()
    assert download_speed(lab) > LIMIT_BYTES_PER_S * 3
    res = client(lab, "PENALTY = -0.5\n" + WHITELIST)  # no penalty to wait for
    assert set(res.values()) == {"ok"}
    assert client(lab, REACH) == {"domestic": "ok", "international": "ok", "isp_resolver": "ok"}
    assert [e for e in lab.censor_log() if e["ts"] >= t0 and e["rule"] != "engine"] == []


def running(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its parent has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_sigterm_removes_everything_the_censor_installed(lab: Any) -> None:
    switch(lab, str(PROFILES / "censor-shape.yaml"))  # chains, queue rules and qdiscs
    assert "DIDBAN-FWD" in lab.run(["iptables", "-S"], role="isp").stdout
    assert "htb" in lab.run(["tc", "qdisc", "show", "dev", "v-client"], role="isp").stdout
    pid = lab.desc.pids["censor"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(pid)
    assert not (lab.state_dir / "censor.ready").exists()
    assert "DIDBAN" not in lab.run(["iptables", "-S"], role="isp").stdout
    assert "DIDBAN" not in lab.run(["iptables", "-t", "raw", "-S"], role="isp").stdout
    for dev in ("v-client", "v-intl", "v-domestic"):
        assert "htb" not in lab.run(["tc", "qdisc", "show", "dev", dev], role="isp").stdout
    assert json.loads((lab.state_dir / "resolver-policy.json").read_text()) == {"rules": []}
    assert lab.censor_log()[-1]["action"] == "stopped"
