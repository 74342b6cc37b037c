"""Every packet-level censor technique, seen from the client with plain sockets, ssl,
dnspython and aioquic (never didban's probe): the wire observable, the censor-log line of
the rule that fired, and, after switching to ``clean``, the absence of both.

One lab for the module (profile tests/lab/censor-profiles/censor-all.yaml).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from censor_support import fired, switch

from didban.lab.censor import forge

pytestmark = pytest.mark.lab

PROFILES = Path(__file__).resolve().parent / "censor-profiles"
LAB_PROFILE = str(PROFILES / "censor-all.yaml")


# --- the client-side battery: every observation, in parallel, in one process -----------

BATTERY = r"""
import asyncio, json, os, socket, ssl, struct, sys
from concurrent.futures import ThreadPoolExecutor
import dns.message

def err(e):
    return type(e).__name__

def dns_replies(name, server):
    q = dns.message.make_query(name, "A")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)
    s.settimeout(1.0)
    s.sendto(q.to_wire(), (server, 53))
    replies = []
    while True:
        try:
            data, anc, _, addr = s.recvmsg(4096, socket.CMSG_SPACE(4))
        except TimeoutError:
            break
        ttl = next(struct.unpack("i", d)[0] for lvl, t, d in anc if t == socket.IP_TTL)
        m = dns.message.from_wire(data)
        replies.append({"from": addr[0], "ip_ttl": ttl, "id_ok": m.id == q.id,
                        "flags": m.flags, "rcode": m.rcode(),
                        "answers": [r.address for rr in m.answer for r in rr],
                        "dns_ttl": [rr.ttl for rr in m.answer]})
    return replies

def dns_tcp(name, server):
    import dns.query
    try:
        m = dns.query.tcp(dns.message.make_query(name, "A"), server, timeout=2)
        return {"error": None, "answers": [r.address for rr in m.answer for r in rr],
                "dns_ttl": [rr.ttl for rr in m.answer]}
    except Exception as e:
        return {"error": err(e)}

def tls(addr, port, sni):
    ctx = ssl.create_default_context()
    try:
        raw = socket.create_connection((addr, port), timeout=2)
    except Exception as e:
        return {"stage": "connect", "error": err(e)}
    try:
        with ctx.wrap_socket(raw, server_hostname=sni) as t:
            return {"stage": "done", "error": None}
    except Exception as e:
        return {"stage": "handshake", "error": err(e)}

def tls_unverified(addr, port, sni):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        raw = socket.create_connection((addr, port), timeout=2)
        with ctx.wrap_socket(raw, server_hostname=sni) as t:
            cert = t.getpeercert(binary_form=True)
            t.sendall(b"GET / HTTP/1.1\r\nHost: " + sni.encode() + b"\r\n\r\n")
            data = t.recv(65536).decode("latin-1")
        from cryptography import x509
        c = x509.load_der_x509_certificate(cert)
        return {"error": None, "issuer": c.issuer.rfc4514_string(),
                "san": c.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName),
                "page": data}
    except Exception as e:
        return {"error": err(e)}

def http(addr, host):
    s = socket.create_connection((addr, 80), timeout=2)
    s.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n")
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return {"error": None, "body": data.decode("latin-1")}
    except Exception as e:
        return {"error": err(e), "body": data.decode("latin-1")}

def connect(addr, port):
    try:
        socket.create_connection((addr, port), timeout=2).close()
        return {"error": None}
    except Exception as e:
        return {"error": err(e)}

def quic(host):
    from aioquic.asyncio import connect as qconnect
    from aioquic.quic.configuration import QuicConfiguration
    async def main():
        cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name=host)
        cfg.load_verify_locations(os.environ["SSL_CERT_FILE"])
        async with qconnect(host, 443, configuration=cfg, wait_connected=True) as c:
            await c.ping()
    try:
        asyncio.run(asyncio.wait_for(main(), 2))
        return {"error": None}
    except Exception as e:
        return {"error": err(e)}

CHECKS = {
    "dns_drop": (dns_replies, "www.facebook.com", "198.51.100.8"),
    "dns_pass": (dns_replies, "www.flickr.com", "198.51.100.8"),
    "nxdomain": (dns_replies, "mail.yahoo.com", "198.51.100.8"),
    "dns_tcp": (dns_tcp, "www.facebook.com", "198.51.100.8"),
    "hijack_isp": (dns_replies, "twitter.com", "192.0.2.53"),
    "hijack_public": (dns_replies, "twitter.com", "198.51.100.8"),
    "doh_on_path": (dns_replies, "dns.google", "198.51.100.1"),
    "doh_isp": (dns_replies, "dns.google", "192.0.2.53"),
    "blockpage": (http, "203.0.113.42", "www.cloob.com"),
    "http_drop": (http, "203.0.113.54", "www.tabnak.ir"),
    "sni_rst": (tls, "203.0.113.10", 443, "www.instagram.com"),
    "sni_hole": (tls, "203.0.113.18", 443, "signal.org"),
    "ip_hole": (connect, "203.0.113.22", 443),
    "ip_hole_tls": (tls, "203.0.113.22", 443, "www.whatsapp.com"),
    "rst_connect": (connect, "203.0.113.14", 443),
    "rst_connect_tls": (tls, "203.0.113.14", 443, "telegram.org"),
    "quic": (quic, "www.youtube.com"),
    "dot": (tls, "198.51.100.1", 853, "cloudflare-dns.com"),
    "delayed": (tls, "203.0.113.46", 443, "mail.google.com"),
    "mitm": (tls, "203.0.113.58", 443, "en.wikipedia.org"),
    "mitm_page": (tls_unverified, "203.0.113.58", 443, "fa.wikipedia.org"),
}
# Capture what reaches the client from the SNI-reset and blockpage hosts, on the wire.
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
cap.settimeout(0.2)
captured = []
def capture(stop):
    while not stop():
        try:
            frame = cap.recv(65535)
        except TimeoutError:
            continue
        ip = frame[14:]
        src = socket.inet_ntoa(ip[12:16])
        if ip[9] != 6 or src not in ("203.0.113.10", "203.0.113.42"):
            continue
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl:]
        sport, _, seq, ack = struct.unpack("!HHII", tcp[:12])
        captured.append({"src": src, "ttl": ip[8], "ip_len": struct.unpack("!H", ip[2:4])[0],
                         "df": bool(ip[6] & 0x40), "flags": tcp[13], "seq": seq, "ack": ack,
                         "window": struct.unpack("!H", tcp[14:16])[0],
                         "payload": ip[ihl + (tcp[12] >> 4) * 4:].hex()})
done = False
from threading import Thread
sniffer = Thread(target=capture, args=(lambda: done,))
sniffer.start()
with ThreadPoolExecutor(len(CHECKS)) as pool:
    futures = {k: pool.submit(f, *a) for k, (f, *a) in CHECKS.items()}
    results = {k: f.result() for k, f in futures.items()}
done = True
sniffer.join()
results["captured"] = captured
print(json.dumps(results))
"""


def battery(lab: Any) -> tuple[float, dict[str, Any]]:
    """(start time, every observation) from the client namespace."""
    t0 = time.time()
    r = lab.python(BATTERY, timeout=60)
    assert r.returncode == 0, r.stderr
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return t0, result


@pytest.fixture(scope="module")
def censored(lab: Any) -> tuple[float, dict[str, Any]]:
    return battery(lab)


@pytest.fixture(scope="module")
def uncensored(lab: Any, censored: tuple[float, dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    switch(lab, "clean")
    return battery(lab)


def answers(replies: list[dict[str, Any]]) -> list[list[str]]:
    """The answer addresses of each reply, in arrival order (sorted within a reply)."""
    return [sorted(r["answers"]) for r in replies]


# --- censored ---------------------------------------------------------------------------


def test_dns_injection_with_dropped_query_gives_one_forged_answer(lab: Any, censored: Any) -> None:
    t0, obs = censored
    (r,) = obs["dns_drop"]
    assert r["answers"] == ["10.10.34.36"] and r["dns_ttl"] == [418]
    assert r["ip_ttl"] == 187 and r["flags"] == 0x81A0 and r["id_ok"]
    assert r["from"] == "198.51.100.8"
    assert fired(lab, "t-dns-drop", t0)[0]["detail"] == "www.facebook.com"


def test_dns_injection_with_passed_query_forged_answer_arrives_first(
    lab: Any, censored: Any
) -> None:
    t0, obs = censored
    replies = obs["dns_pass"]
    assert answers(replies) == [["10.10.34.36"], ["203.0.113.38"]]
    assert replies[0]["ip_ttl"] == 187 and replies[1]["ip_ttl"] != 187
    actions = [e["action"] for e in fired(lab, "t-dns-pass", t0)]
    assert "injected 10.10.34.36, query passed" in actions
    assert "held genuine reply" in actions


def test_dns_injection_over_tcp_answers_in_stream(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["dns_tcp"] == {"error": None, "answers": ["10.10.34.36"], "dns_ttl": [418]}
    actions = [e["action"] for e in fired(lab, "t-dns-drop", t0)]
    assert "injected 10.10.34.36 over tcp, query dropped" in actions


def test_dns_nxdomain_injection(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert [(r["rcode"], r["answers"]) for r in obs["nxdomain"]] == [(3, [])]
    assert fired(lab, "t-nxdomain", t0)


def test_isp_resolver_hijack_answers_the_blockpage_address(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert answers(obs["hijack_isp"]) == [["10.10.34.34"]]
    # the hijack is the resolver's: a public resolver still tells the truth
    assert answers(obs["hijack_public"]) == [["203.0.113.30"]]
    assert fired(lab, "t-hijack", t0)


def test_doh_names_are_poisoned_on_path_and_at_the_isp_resolver(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert answers(obs["doh_on_path"]) == [["10.10.34.36"]]
    assert obs["doh_on_path"][0]["ip_ttl"] == 187
    assert answers(obs["doh_isp"]) == [["10.10.34.36"]]
    assert fired(lab, "t-doh", t0)


def test_http_blockpage_is_irans_exact_403_page(lab: Any, censored: Any) -> None:
    t0, obs = censored
    res = obs["blockpage"]
    assert res["error"] is None  # the injected FIN ends the stream cleanly
    assert res["body"].encode("latin-1") == forge.BLOCKPAGE_2025
    assert 'iframe src="http://10.10.34.36/?type=Invalid Keyword&policy=MainPolicy "' in res["body"]
    assert fired(lab, "t-blockpage", t0)[0]["detail"] == "www.cloob.com"


def test_http_drop_times_out(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["http_drop"] == {"error": "TimeoutError", "body": ""}
    assert fired(lab, "t-http-drop", t0)


def test_sni_reset_resets_right_after_the_client_hello(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["sni_rst"] == {"stage": "handshake", "error": "ConnectionResetError"}
    line = fired(lab, "t-sni-rst", t0)[0]
    assert line["technique"] == "sni_reset" and line["detail"] == "www.instagram.com"
    curl = lab.run(["curl", "-sS", "-m", "5", "https://www.instagram.com/"])
    assert curl.returncode == 35 and "reset" in curl.stderr.lower()


def test_sni_reset_and_blockpage_carry_irans_wire_fingerprint(censored: Any) -> None:
    _, obs = censored
    rst = [p for p in obs["captured"] if p["src"] == "203.0.113.10" and p["flags"] & 0x04]
    assert len(rst) == 1  # one RST, toward the client only
    (r,) = rst
    assert r["flags"] == 0x14 and r["window"] == 0  # RST+ACK, window 0
    assert r["ttl"] == 54 and not r["df"] and r["ip_len"] == 46 and r["payload"] == "00" * 6
    synack = [p for p in obs["captured"] if p["src"] == "203.0.113.10" and p["flags"] == 0x12]
    assert r["seq"] == synack[0]["seq"] + 1  # exactly the server's next sequence number
    page = [p for p in obs["captured"] if p["src"] == "203.0.113.42" and p["payload"]]
    assert [(p["ttl"], p["df"], p["window"], len(p["payload"]) // 2) for p in page] == [
        (187, False, 65535, 443)
    ]
    fin = [p for p in obs["captured"] if p["src"] == "203.0.113.42" and p["flags"] & 0x01]
    assert fin[0]["flags"] == 0x11 and fin[0]["seq"] == page[0]["seq"] + 443


def test_sni_blackhole_times_out_the_handshake(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["sni_hole"] == {"stage": "handshake", "error": "TimeoutError"}
    assert fired(lab, "t-sni-hole", t0)[0]["detail"] == "signal.org"


def test_ip_blackhole_times_out_the_connect(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["ip_hole"] == {"error": "TimeoutError"}
    assert fired(lab, "t-ip-hole", t0)


def test_rst_on_connect_refuses_the_connection(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["rst_connect"] == {"error": "ConnectionRefusedError"}
    assert fired(lab, "t-rst-connect", t0)


def test_quic_is_dropped(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["quic"]["error"] in ("TimeoutError", "ConnectionError")
    assert fired(lab, "t-quic", t0)


def test_dot_connects_but_the_tls_handshake_stalls(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["dot"] == {"stage": "handshake", "error": "TimeoutError"}
    assert fired(lab, "t-dot", t0)


def test_userspace_delay_keeps_the_site_reachable_and_logs(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["delayed"] == {"stage": "done", "error": None}
    assert any(e["action"] == "delayed 200 ms" for e in fired(lab, "t-delay", t0))


def test_tls_mitm_presents_an_untrusted_certificate_for_the_name(lab: Any, censored: Any) -> None:
    t0, obs = censored
    assert obs["mitm"] == {"stage": "handshake", "error": "SSLCertVerificationError"}
    page = obs["mitm_page"]  # a client that does not verify meets the censor itself
    assert page["error"] is None and page["san"] == ["fa.wikipedia.org"]
    assert "didban lab censor" in page["issuer"] and "intercepted" in page["page"]
    lines = fired(lab, "t-mitm", t0)
    assert {e["technique"] for e in lines} == {"tls_mitm"}
    refused = [e for e in lines if e["detail"].startswith("en.wikipedia.org")]
    assert refused and refused[0]["action"] == "intercepted, certificate refused by the client"
    assert refused[0]["dst"] == "203.0.113.58:443"  # the original destination


# --- the same under clean: nothing happens ----------------------------------------------


def test_clean_dns_is_genuine(uncensored: Any) -> None:
    _, obs = uncensored
    assert answers(obs["dns_drop"]) == [["203.0.113.26", "203.0.113.27"]]
    assert answers(obs["dns_pass"]) == [["203.0.113.38"]]
    assert sorted(obs["dns_tcp"]["answers"]) == ["203.0.113.26", "203.0.113.27"]
    assert [(r["rcode"], r["answers"]) for r in obs["nxdomain"]] == [(0, ["203.0.113.50"])]
    assert answers(obs["hijack_isp"]) == [["203.0.113.30"]]
    assert answers(obs["doh_on_path"]) == [["198.51.100.8", "198.51.100.9"]]
    assert answers(obs["doh_isp"]) == [["198.51.100.8", "198.51.100.9"]]


def test_clean_http_serves_the_sites(uncensored: Any) -> None:
    _, obs = uncensored
    for key in ("blockpage", "http_drop"):
        assert obs[key]["error"] is None and obs[key]["body"].startswith("HTTP/1.1 200"), key


def test_clean_tls_tcp_and_quic_succeed(lab: Any, uncensored: Any) -> None:
    _, obs = uncensored
    for key in ("sni_rst", "sni_hole", "ip_hole_tls", "rst_connect_tls", "dot", "delayed", "mitm"):
        assert obs[key] == {"stage": "done", "error": None}, key
    assert obs["quic"] == {"error": None}
    curl = lab.run(["curl", "-sS", "-m", "5", "https://www.instagram.com/"])
    assert curl.returncode == 0 and "<title>" in curl.stdout


def test_clean_fires_no_rule(lab: Any, uncensored: Any) -> None:
    t0, _ = uncensored
    assert [e for e in lab.censor_log() if e["ts"] >= t0 and e["rule"].startswith("t-")] == []
