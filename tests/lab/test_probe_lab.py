"""``didban run --lab`` and ``didban dnscheck --lab`` against the censorship lab.

For every technique of the clean, iran-2022, iran-protocol-filter and iran-2019-shutdown
profiles, the probe's measurement records the expected failure string at the expected
step (the profile's ground truth names the method; ``EXPECT`` below says what that method
looks like in a measurement). One lab per profile, brought up and always torn down by the
``probe_run`` fixture; the probe runs as a user would run it, through the CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from didban.data import catalog
from didban.lab import profiles, runtime
from didban.model.labinfo import LabDescriptor
from didban.model.validate import problems
from didban.probe.lists import default_list

pytestmark = pytest.mark.lab

BLOCKPAGE_ADDRS = {"10.10.34.34", "10.10.34.35", "10.10.34.36"}


@dataclass
class ProbeRun:
    desc: LabDescriptor
    profile: profiles.Profile
    out: Path
    text: str
    by_url: dict[str, dict[str, Any]]
    stderr: str
    returncode: int


def _didban(
    desc: LabDescriptor, args: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DIDBAN_LAB": str(Path(desc.state_dir) / "lab.json"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "didban.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(
    scope="module", params=["clean", "iran-2022", "iran-protocol-filter", "iran-2019-shutdown"]
)
def probe_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProbeRun]:
    name = request.param
    desc = runtime.up(name, control=True, make_current=False)
    try:
        out = tmp_path_factory.mktemp(name) / "out.jsonl"
        r = _didban(desc, ["run", "--lab", "--no-progress", "--output", str(out)], 240)
        text = out.read_text() if out.exists() else ""
        by_url = {}
        for line in text.splitlines():
            m = msgspec.json.decode(line)
            by_url[m["input"]] = m
        yield ProbeRun(desc, profiles.load(name), out, text, by_url, r.stderr, r.returncode)
    finally:
        runtime.down(desc.state_dir)


# ------------------------------------------------------------------ reading a measurement


def _endpoint(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flows of the endpoint step (URL port, every address), not redirect hops or the
    :443 address check of http URLs."""
    return [
        x for x in items
        if not {"x_didban_ip_check", "x_didban_redirect"} & set(x.get("tags") or [])
    ]  # fmt: skip


def _classic(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for x in _endpoint(items) if "classic" in (x.get("tags") or [])]


def _answers(q: dict[str, Any]) -> list[str]:
    return [a.get("ipv4") or a.get("ipv6") for a in q.get("answers") or []]


def _query(tk: dict[str, Any], engine: str) -> dict[str, Any]:
    return next(q for q in tk["queries"] if q["engine"] == engine and "depth=0" in q["tags"])


def _tcp_failures(tk: dict[str, Any]) -> set[str | None]:
    return {c["status"]["failure"] for c in _classic(tk["tcp_connect"])}


def _tls_failures(tk: dict[str, Any]) -> set[str | None]:
    return {h["failure"] for h in _classic(tk["tls_handshakes"])}


# ---------------------------------------------- what each ground-truth method looks like


def _ok(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    assert tk["dns_experiment_failure"] is None
    assert _tcp_failures(tk) == {None}
    if m["input"].startswith("https://"):
        assert _tls_failures(tk) == {None}
    assert tk["http_experiment_failure"] is None
    assert tk["requests"][0]["response"]["code"] == 200
    assert tk["requests"][0]["response"]["body"]


def _tls_sni_reset(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    assert _tcp_failures(tk) == {None}
    assert _tls_failures(tk) == {"connection_reset"}
    assert tk["http_experiment_failure"] == "connection_reset"


def _tls_sni_timeout(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    assert _tcp_failures(tk) == {None}
    assert _tls_failures(tk) == {"generic_timeout_error"}
    assert tk["http_experiment_failure"] == "generic_timeout_error"


def _tcp_timeout(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    assert _tcp_failures(tk) == {"generic_timeout_error"}
    assert tk["tls_handshakes"] == [] or _tls_failures(tk) == set()
    assert tk["http_experiment_failure"] == "generic_timeout_error"


def _tcp_reset(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    # an RST answering the SYN is what connect(2) reports as "connection refused"
    assert _tcp_failures(tk) == {"connection_refused"}
    assert tk["http_experiment_failure"] == "connection_refused"


def _dns_injection(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    udp = _query(tk, "udp")
    assert _answers(udp) == ["10.10.34.36"]  # the injected reply arrives first
    assert "10.10.34.36" in _answers(_query(tk, "getaddrinfo"))
    host = m["input"].split("/")[2]
    rule = run.profile.rule(run.profile.truth(m["input"]).rule or "")
    if rule.params.get("original") == "pass":
        # ... and the genuine reply after it, kept as a duplicate
        dups = [a for d in tk["x_dns_duplicate_responses"] for a in _answers(d)]
        assert dups and not set(dups) & BLOCKPAGE_ADDRS, host
    tcp = {c["ip"]: c["status"]["failure"] for c in _endpoint(tk["tcp_connect"])}
    assert tcp["10.10.34.36"] is not None


def _dns_hijack(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    rule = run.profile.rule(run.profile.truth(m["input"]).rule or "")
    assert _answers(_query(tk, "getaddrinfo")) == [rule.params["answer"]]
    # the ISP resolver lies; the public resolver over UDP does not
    udp = _answers(_query(tk, "udp"))
    assert udp and not set(udp) & BLOCKPAGE_ADDRS


def _http_blockpage(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    assert _tcp_failures(tk) == {None}
    resp = tk["requests"][0]["response"]
    assert resp["code"] == 403
    assert "<iframe" in resp["body"] and "10.10.34.36" in resp["body"]


def _throttled(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    assert tk["http_experiment_failure"] is None
    rate = tk["x_didban_http_throughput"]
    assert rate is not None
    # a page large enough to outlast the token bucket's burst, read under the 1 Mbit/s
    # limit (plus the burst): the recorded body rate shows the throttling
    assert tk["requests"][0]["response"]["x_didban_body_length"] > 50_000
    assert rate * 8 <= 1.5e6


def _nin_isolated(m: dict[str, Any], run: ProbeRun) -> None:
    tk = m["test_keys"]
    # the public resolver abroad is unreachable; the domestic ISP resolver may still answer
    assert _query(tk, "udp")["failure"] == "generic_timeout_error"
    assert _query(tk, "doh")["failure"] == "generic_timeout_error"
    # and no international address can be reached at all
    assert _tcp_failures(tk) <= {"generic_timeout_error"}
    assert tk["http_experiment_failure"] == "generic_timeout_error"


EXPECT: dict[str, Callable[[dict[str, Any], ProbeRun], None]] = {
    "ok": _ok,
    "tls.sni.reset": _tls_sni_reset,
    "tls.sni.timeout": _tls_sni_timeout,
    "tcp.timeout": _tcp_timeout,
    "tcp.reset": _tcp_reset,
    "dns.injection.bogon": _dns_injection,
    "dns.hijack": _dns_hijack,
    "http.blockpage": _http_blockpage,
    "throttled": _throttled,
    "nin.isolated": _nin_isolated,
}


# ------------------------------------------------------------------------------- tests


def test_one_valid_measurement_per_default_url(probe_run: ProbeRun) -> None:
    assert probe_run.returncode == 0, probe_run.stderr[-2000:]
    urls = [e.url for e in default_list()]
    assert sorted(probe_run.by_url) == sorted(urls)
    assert len(probe_run.text.splitlines()) == len(urls)
    for url, m in probe_run.by_url.items():
        assert problems(m) == [], url
        assert (m["probe_cc"], m["probe_asn"]) == ("IR", "AS197207")
        assert m["annotations"]["x_didban_lab_profile"] == probe_run.profile.name
    # the summary table and the closing line
    assert f"{len(urls)} measurements written" in probe_run.stderr
    assert "https://www.instagram.com/" in probe_run.stderr


def test_probe_address_never_written(probe_run: ProbeRun) -> None:
    client = "192.0.2.2"
    assert f'"{client}' not in probe_run.text and f"{client}:" not in probe_run.text
    assert all(m["probe_ip"] == "127.0.0.1" for m in probe_run.by_url.values())


def test_each_url_shows_its_ground_truth_method(probe_run: ProbeRun) -> None:
    checked: dict[str, int] = {}
    for url, m in sorted(probe_run.by_url.items()):
        truth = probe_run.profile.truth(url)
        key = "ok" if truth.outcome == "ok" else str(truth.method)
        assert key in EXPECT, f"no expectation for method {key} ({url})"
        try:
            EXPECT[key](m, probe_run)
        except AssertionError as exc:
            raise AssertionError(f"{url} ({key}): {exc}") from exc
        checked[key] = checked.get(key, 0) + 1
    assert checked


def test_control_answers_from_the_unfiltered_vantage(probe_run: ProbeRun) -> None:
    for url, m in probe_run.by_url.items():
        tk = m["test_keys"]
        if probe_run.profile.name == "iran-2019-shutdown":
            # the helper is abroad: during an international shutdown the probe cannot
            # reach it, and says so instead of leaving the control empty
            assert tk["control"] is None
            assert tk["control_failure"] == "generic_timeout_error", url
            continue
        assert tk["control_failure"] is None, url
        assert tk["x_control_request"]["http_request"] == url
        if catalog.service_for_url(url) in ("digikala", "aparat"):
            continue  # domestic sites: the control vantage abroad need not reach them
        # blocked for the probe or not, the helper outside the censor fetched the page
        assert tk["control"]["http_request"]["status_code"] == 200, url
        assert tk["control"]["dns"]["addrs"], url
        assert not set(tk["control"]["dns"]["addrs"]) & BLOCKPAGE_ADDRS, url


def test_quic_attempted_for_http3_services(probe_run: ProbeRun) -> None:
    name = probe_run.profile.name
    for url, m in probe_run.by_url.items():
        sid = catalog.service_for_url(url)
        if not (sid and catalog.by_id(sid).http3 and url.startswith("https://")):
            continue
        tk = m["test_keys"]
        if name == "iran-2019-shutdown" or tk["http_experiment_failure"] is not None:
            continue  # no working address: nothing to try QUIC on beyond the endpoint step
        quic = tk["x_didban_quic"]
        assert quic, url
        if name in ("iran-2022", "iran-protocol-filter"):
            # UDP 443 dropped (quic_drop), or QUIC Initials by their bytes (udp_protocol_filter)
            assert quic[0]["failure"] == "generic_timeout_error", url
        else:
            assert quic[0]["failure"] is None, url
            assert quic[0]["handshake"]["negotiated_protocol"] == "h3"


def test_doh_is_reset_by_sni_in_iran_2022(probe_run: ProbeRun) -> None:
    if probe_run.profile.name != "iran-2022":
        pytest.skip("DoH blocking is part of iran-2022")
    for url, m in probe_run.by_url.items():
        assert _query(m["test_keys"], "doh")["failure"] == "connection_reset", url


def test_dnscheck_records_injection_and_dot_blocking(probe_run: ProbeRun, tmp_path: Path) -> None:
    if probe_run.profile.name != "iran-2022":
        pytest.skip("dnscheck's lab expectations are iran-2022's")
    out = tmp_path / "dnscheck.jsonl"
    r = _didban(
        probe_run.desc,
        ["dnscheck", "--lab", "--output", str(out), "www.flickr.com", "www.instagram.com"],
        60,
    )
    assert r.returncode == 0, r.stderr
    ms = {m["input"]: m for m in map(msgspec.json.decode, out.read_text().splitlines())}
    assert all(problems(m) == [] for m in ms.values())
    flickr = ms["www.flickr.com"]["test_keys"]["lookups"]
    udp = flickr["udp://198.51.100.8:53"]
    a_query = next(q for q in udp["queries"] if q["query_type"] == "A")
    assert _answers(a_query) == ["10.10.34.36"]
    genuine = [a for d in udp["x_dns_duplicate_responses"] for a in _answers(d)]
    assert genuine and not set(genuine) & BLOCKPAGE_ADDRS
    # the same question over TCP is recorded too (one reply per query on a stream)
    tcp = flickr["tcp://198.51.100.8:53"]
    assert {q["engine"] for q in tcp["queries"]} == {"tcp"}
    assert tcp["x_dns_duplicate_responses"] == []
    assert flickr["dot://198.51.100.8:853"]["failure"] == "generic_timeout_error"
    assert flickr["https://dns.google/dns-query"]["failure"] == "connection_reset"
    insta = ms["www.instagram.com"]["test_keys"]["lookups"]["udp://198.51.100.8:53"]
    assert insta["x_dns_duplicate_responses"] == []  # not DNS-blocked
    assert "10.10.34.36" in r.stderr  # the answers table


def test_unusable_ipv6_answer_is_address_not_available(probe_run: ProbeRun) -> None:
    # Iran's injected AAAA answer d0::11 reaches the system resolver; the client namespace
    # has no IPv6, so connect(2) fails with EADDRNOTAVAIL before sending anything: OONI's
    # probe calls that address_not_available (netxlite errno.go), not an unknown failure.
    injected = [
        m
        for m in probe_run.by_url.values()
        if "d0::11" in _answers(_query(m["test_keys"], "getaddrinfo"))
    ]
    if not injected:
        pytest.skip("this profile injects no AAAA answer")
    for m in injected:
        flows = [c for c in m["test_keys"]["tcp_connect"] if c["ip"] == "d0::11"]
        assert flows, m["input"]
        assert {c["status"]["failure"] for c in flows} == {"address_not_available"}, m["input"]


def test_run_lab_passes_a_stop_signal_on_and_waits_for_the_measurement(tmp_path: Path) -> None:
    # `run --lab` re-runs itself inside the client namespace: a SIGTERM to the command
    # must stop that inner run too (as Ctrl-C does), not leave it measuring on its own
    desc = runtime.up("clean", control=True, make_current=False)
    try:
        out = tmp_path / "stop.jsonl"
        env = {**os.environ, "DIDBAN_LAB": str(Path(desc.state_dir) / "lab.json")}
        p = subprocess.Popen(
            [sys.executable, "-m", "didban.cli", "run", "--lab", "--no-progress",
             "--concurrency", "1", "--output", str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_bytes().splitlines()) >= 2:
                break
            assert p.poll() is None, p.communicate()[1]
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        _, stderr = p.communicate(timeout=60)
        assert p.returncode == 130, stderr
        written = out.read_bytes()
        time.sleep(1.5)
        assert out.read_bytes() == written  # nothing is still measuring
        lines = written.splitlines()
        assert 2 <= len(lines) < len(default_list())
        assert all(problems(msgspec.json.decode(x)) == [] for x in lines)
        assert "interrupted" in stderr
    finally:
        runtime.down(desc.state_dir)
