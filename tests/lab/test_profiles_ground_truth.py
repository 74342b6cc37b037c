"""The shipped profiles keep their promises: for every web target of a profile's ground
truth, what curl and getaddrinfo see in the client namespace matches the expected outcome
and method (for a redirect case, at the destination the redirect sends the client to), and
the rule the ground truth cites shows up in the censor log.

One lab for the module, switched live between profiles.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from censor_support import fired, switch

from didban.lab import profiles, zone

pytestmark = pytest.mark.lab

LAB_PROFILE = "iran-2022"

# Fetch every URL in parallel: the address the system resolver gives, then curl's result.
FETCH = r"""
import json, socket, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

def fetch(url):
    host = urlsplit(url).hostname
    try:
        addrs = sorted({a[4][0] for a in socket.getaddrinfo(host, 443, socket.AF_INET)})
    except socket.gaierror as e:
        addrs = ["gaierror"]
    r = subprocess.run(["curl", "-sSv", "-4", "-m", "3", "-o", "-", "-w", "\n%{http_code}", url],
                       capture_output=True, text=True, errors="replace")
    body, _, code = r.stdout.rpartition("\n")
    return {"addrs": addrs, "exit": r.returncode, "code": int(code),
            "connected": "Connected to" in r.stderr, "body": body[:2000],
            "error": r.stderr.strip().splitlines()[-1] if r.returncode else ""}

urls = json.loads(sys.argv[1])
with ThreadPoolExecutor(len(urls)) as pool:
    print(json.dumps(dict(zip(urls, pool.map(fetch, urls)))))
"""


def observe(lab: Any, urls: list[str]) -> dict[str, dict[str, Any]]:
    r = lab.run([sys.executable, "-c", FETCH, json.dumps(urls)], timeout=60)
    assert r.returncode == 0, r.stderr
    result: dict[str, dict[str, Any]] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def observed_url(url: str) -> str:
    """What the client is sent to: a redirect case's destination (curl does not follow)."""
    parts = urlsplit(url)
    if parts.hostname == zone.case_host("redirect") and parts.path.startswith("/to/"):
        return f"https://{parts.path[4:]}/"
    return url


def matches(truth: profiles.Truth, o: dict[str, Any]) -> bool:
    """Does the client's observation ``o`` show ``truth``'s outcome and method?"""
    bogon = any(a.startswith("10.10.34.") for a in o["addrs"])
    nxdomain = o["addrs"] == ["gaierror"]
    site = set(zone.resolve(urlsplit(observed_url(truth.url)).hostname or "") or ())
    lied = not nxdomain and not set(o["addrs"]) <= site  # not the site's address
    if truth.outcome == "ok":
        return not bogon and not lied and o["exit"] == 0 and o["code"] == 200
    method = truth.method
    if truth.outcome == "down" and method is None:  # a name that exists nowhere
        return nxdomain
    if method in ("dns.injection.bogon", "dns.hijack"):
        return bogon or lied
    if method in ("dns.nxdomain", "dns.no_answer"):
        return nxdomain
    if bogon:
        return False
    if method == "tls.sni.reset":
        return o["exit"] == 35 and "reset" in o["error"].lower()
    if method == "tls.sni.eof":
        return o["exit"] == 35 and "reset" not in o["error"].lower()
    if method in ("tls.sni.timeout", "http.timeout"):
        return o["exit"] == 28 and o["connected"]
    if method in ("tcp.timeout", "nin.isolated", "shutdown"):
        return o["exit"] == 28 and not o["connected"]
    if method == "tcp.reset":
        return o["exit"] == 7
    if method == "http.blockpage":
        return o["code"] == 403 and 'iframe src="http://10.10.34.36/' in o["body"]
    if method == "tls.mitm":
        return o["exit"] == 60  # curl: peer certificate cannot be authenticated
    if method == "throttled":
        return o["exit"] == 0 and o["code"] == 200  # a small page still loads
    raise AssertionError(f"no observable for method {method}")


def check_profile(lab: Any, name: str) -> None:
    profile = profiles.load(name)
    if profile.name != lab.desc.profile:
        switch(lab, name)
    t0 = time.time()
    truths = [t for t in profile.ground_truth if t.url.startswith(("http://", "https://"))]
    seen = observe(lab, sorted({observed_url(t.url) for t in truths}))
    wrong = {
        t.url: (t.outcome, t.method, seen[observed_url(t.url)])
        for t in truths
        if not matches(t, seen[observed_url(t.url)])
    }
    assert wrong == {}, json.dumps(wrong, indent=1)
    time.sleep(0.2)  # the resolver's and censor's last log lines
    silent = {t.rule for t in truths if t.rule and not fired(lab, t.rule, t0)}
    assert silent == set(), f"rules in the ground truth that never fired: {silent}"


def test_iran_2022_ground_truth(lab: Any) -> None:
    check_profile(lab, "iran-2022")


def test_iran_2019_shutdown_ground_truth(lab: Any) -> None:
    check_profile(lab, "iran-2019-shutdown")


def test_iran_protocol_filter_ground_truth(lab: Any) -> None:
    check_profile(lab, "iran-protocol-filter")


def test_national_root_mitm_ground_truth(lab: Any) -> None:
    check_profile(lab, "national-root-mitm")


def test_clean_ground_truth(lab: Any) -> None:
    check_profile(lab, "clean")


def test_isp_dns_redirects_ground_truth(lab: Any) -> None:
    check_profile(lab, "isp-dns-redirects")
