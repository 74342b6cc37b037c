"""The censor's pure parts, without root: packets forged from real query/segment bytes
(checked with scapy as an independent parser), dissectors, and rule decisions."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.rdatatype
from scapy.layers.inet import IP, TCP, UDP

from didban.lab import profiles
from didban.lab.censor import dissect, forge, wire
from didban.lab.censor.decision import CensorState
from didban.lab.censor.enforcers.shutdown import Curfew
from didban.lab.censor.policy import Policy

CLIENT = "192.0.2.2"


def _ip(raw: bytes) -> IP:
    pkt = IP(raw)
    # scapy recomputes deleted checksums: equal values mean ours were right
    fresh = IP(raw)
    del fresh.chksum
    if fresh.haslayer(TCP):
        del fresh[TCP].chksum
    if fresh.haslayer(UDP):
        del fresh[UDP].chksum
    again = IP(bytes(fresh))
    assert again.chksum == pkt.chksum
    if pkt.haslayer(TCP):
        assert again[TCP].chksum == pkt[TCP].chksum
    if pkt.haslayer(UDP):
        assert again[UDP].chksum == pkt[UDP].chksum
    return pkt


def _query_packet(name: str, rdtype: str = "A", resolver: str = "198.51.100.8") -> bytes:
    q = dns.message.make_query(name, rdtype)
    q.id = 0x4242
    return wire.udp(CLIENT, 40000, resolver, 53, q.to_wire(), 64)


def client_hello(server_name: str) -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _tcp_from_client(
    dst: str, dport: int, payload: bytes, seq: int = 1000, ack: int = 5000
) -> bytes:
    return wire.tcp(CLIENT, 41000, dst, dport, seq=seq, ack=ack, flags=wire.PSH | wire.ACK,
                    window=502, payload=payload, ttl=64)  # fmt: skip


def test_forged_dns_answer_has_iran_fingerprint() -> None:
    raw = _query_packet("www.facebook.com")
    trig = wire.parse(raw)
    assert trig is not None
    q = dissect.dns_query(trig.payload)
    assert q is not None and q.qname == "www.facebook.com"
    out = _ip(forge.dns_reply(trig, q, "10.10.34.36", 418, 187))
    assert out.src == "198.51.100.8" and out.dst == CLIENT
    assert out.ttl == 187 and out.flags == 0  # DF clear
    assert out[UDP].sport == 53 and out[UDP].dport == 40000
    msg = dns.message.from_wire(bytes(out[UDP].payload))
    assert msg.id == 0x4242
    assert msg.flags == 0x81A0
    assert str(msg.question[0].name) == "www.facebook.com."
    rrset = msg.answer[0]
    assert rrset.ttl == 418 and [r.address for r in rrset] == ["10.10.34.36"]
    assert bytes(out[UDP].payload)[-16:-14] == b"\xc0\x0c"  # compression pointer to the qname


def test_forged_aaaa_answer_is_d0_11_and_nxdomain_has_no_answer() -> None:
    trig = wire.parse(_query_packet("www.facebook.com", "AAAA"))
    assert trig is not None
    q = dissect.dns_query(trig.payload)
    assert q is not None
    msg = dns.message.from_wire(forge.dns_message(q, "10.10.34.36", 418))
    assert [r.address for r in msg.answer[0]] == ["d0::11"]
    assert msg.answer[0].rdtype == dns.rdatatype.AAAA
    nx = dns.message.from_wire(forge.dns_message(q, None, 418))
    assert nx.rcode() == 3 and not nx.answer and nx.id == 0x4242


def test_blockpage_is_the_2025_page_with_exact_seq_ack() -> None:
    get = b"GET / HTTP/1.1\r\nHost: www.cloob.com\r\nUser-Agent: curl/7.88\r\nAccept: */*\r\n\r\n"
    trig = wire.parse(_tcp_from_client("203.0.113.42", 80, get, seq=777, ack=99999))
    assert trig is not None
    data_raw, fin_raw = forge.blockpage(trig, forge.BLOCKPAGE_2025, 187)
    data, fin = _ip(data_raw), _ip(fin_raw)
    assert data.src == "203.0.113.42" and data.dst == CLIENT and data.ttl == 187
    assert data[TCP].flags == "PA" and data[TCP].window == 65535
    assert data[TCP].seq == 99999 and data[TCP].ack == 777 + len(get)
    body = bytes(data[TCP].payload)
    assert len(body) == 443
    head, page = body.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"Content-Length: 337" in head and len(page) == 337
    assert b'<iframe src="http://10.10.34.36/?type=Invalid Keyword&policy=MainPolicy "' in page
    assert fin[TCP].flags == "FA" and fin[TCP].window == 0
    assert fin[TCP].seq == 99999 + 443 and fin[TCP].ack == 777 + len(get)


def test_sni_rst_fingerprint() -> None:
    hello = client_hello("www.instagram.com")
    trig = wire.parse(_tcp_from_client("203.0.113.10", 443, hello, seq=10, ack=20))
    assert trig is not None
    rst = _ip(forge.rst_to_client(trig, 54))
    assert rst.src == "203.0.113.10" and rst.dst == CLIENT
    assert rst[TCP].flags == "RA" and rst[TCP].window == 0
    assert rst[TCP].seq == 20 and rst[TCP].ack == 10 + len(hello)
    assert rst.ttl == 54 and rst.len == 46 and bytes(rst[TCP].payload) == b"\x00" * 6
    srv = _ip(forge.rst_to_server(trig))
    assert srv.dst == "203.0.113.10" and srv[TCP].flags == "R" and srv[TCP].seq == 10


def test_sni_dissector_reads_a_real_client_hello() -> None:
    hello = client_hello("fa.wikipedia.org")
    assert dissect.client_hello_sni(hello) == "fa.wikipedia.org"
    assert dissect.client_hello_sni(hello[:100]) is None  # incomplete
    assert dissect.client_hello_sni(b"GET / HTTP/1.1\r\n") is None


def test_dns_query_parser_reads_the_question() -> None:
    q = dns.message.make_query("Mail.Yahoo.com", "A").to_wire()
    parsed = dissect.dns_query(q)
    assert parsed is not None and parsed.qname == "mail.yahoo.com" and parsed.qtype == 1
    assert dissect.dns_query(b"\x00" * 5) is None


def test_whitelister_fingerprints() -> None:
    assert dissect.whitelist_verdict(b"GET / HTTP/1.1\r\n", 1, 2) is True
    assert dissect.whitelist_verdict(client_hello("x.com"), 1, 2) is True
    tcp_dns = dns.message.make_query("x.com", "A").to_wire()
    assert dissect.whitelist_verdict(len(tcp_dns).to_bytes(2, "big") + tcp_dns, 1, 2) is True
    assert dissect.whitelist_verdict(b"GE", 1, 2) is None  # could still become GET
    assert dissect.whitelist_verdict(b"SSH-2.0-OpenSSH_9.2\r\n", 1, 2) is False
    assert dissect.whitelist_verdict(b"hi", 2, 2) is False


def _policy(name: str) -> Policy:
    return Policy(profiles.load(name))


def test_iran_2022_plan_resets_instagram_and_passes_en_wikipedia() -> None:
    policy, st = _policy("iran-2022"), CensorState()
    ig = wire.parse(_tcp_from_client("203.0.113.10", 443, client_hello("www.instagram.com")))
    assert ig is not None
    fired = policy.decide(ig, st, 1.0)
    assert [(t.id, d.disposition) for t, d in fired] == [("sni-instagram", "drop")]
    assert len(fired[0][1].inject) == 2
    wiki = wire.parse(_tcp_from_client("203.0.113.58", 443, client_hello("en.wikipedia.org")))
    assert wiki is not None
    assert policy.decide(wiki, st, 1.0) == []


def test_client_hello_split_over_two_segments_is_reassembled() -> None:
    policy, st = _policy("iran-2022"), CensorState()
    hello = client_hello("www.youtube.com")
    first = wire.parse(_tcp_from_client("203.0.113.34", 443, hello[:40], seq=1))
    second = wire.parse(_tcp_from_client("203.0.113.34", 443, hello[40:], seq=41))
    assert first is not None and second is not None
    assert policy.decide(first, st, 1.0) == []
    fired = policy.decide(second, st, 1.0)
    assert [t.id for t, _ in fired] == ["sni-youtube"]


def test_first_segment_only_filter_misses_a_split_client_hello() -> None:
    text = (
        "name: f\ndescription: f\nrules:\n  - id: first\n    technique: sni_reset\n"
        "    names: [youtube.com]\n    segments: first\n"
        "ground_truth: {default: {outcome: ok}}\n"
    )
    policy, st = Policy(profiles.loads(text)), CensorState()
    hello = client_hello("www.youtube.com")
    whole = wire.parse(_tcp_from_client("203.0.113.34", 443, hello))
    first = wire.parse(_tcp_from_client("203.0.113.34", 443, hello[:40], seq=1))
    second = wire.parse(_tcp_from_client("203.0.113.34", 443, hello[40:], seq=41))
    assert whole is not None and first is not None and second is not None
    assert [t.id for t, _ in policy.decide(whole, st, 1.0)] == ["first"]
    st = CensorState()
    assert policy.decide(first, st, 1.0) == [] and policy.decide(second, st, 1.0) == []


def test_http_keywords_and_legacy_page() -> None:
    text = (
        "name: k\ndescription: k\nrules:\n  - id: kw\n    technique: http_blockpage\n"
        "    keywords: [filter-me]\n    page: iran-legacy\n"
        "ground_truth: {default: {outcome: ok}}\n"
    )
    policy, st = Policy(profiles.loads(text)), CensorState()
    get = b"GET /filter-me HTTP/1.1\r\nHost: www.example.test\r\n\r\n"
    trig = wire.parse(_tcp_from_client("203.0.113.70", 80, get))
    assert trig is not None
    ((rule, d),) = policy.decide(trig, st, 1.0)
    assert rule.id == "kw" and d.disposition == "blackhole"
    page = bytes(IP(d.inject[0])[TCP].payload)
    assert page == forge.BLOCKPAGE_LEGACY and page.startswith(b"HTTP/1.0 403 Forbidden\r\n")
    other = wire.parse(_tcp_from_client("203.0.113.70", 80, get.replace(b"filter-me", b"ok")))
    assert (
        other is not None and Policy(profiles.loads(text)).decide(other, CensorState(), 1.0) == []
    )


def test_iran_2022_plan_queues_fail_closed_and_tells_the_resolver() -> None:
    policy = _policy("iran-2022")
    rules = policy.iptables_restore()
    assert "-j NFQUEUE --queue-num" in rules and "--queue-bypass" not in rules
    policy = policy.resolver_policy()["rules"]
    assert {"id": "hijack-twitter", "suffix": "twitter.com", "action": "bogon",
            "answer": "10.10.34.34", "ttl": 418} in policy  # fmt: skip
    assert any(r["suffix"] == "dns.google" and r["answer"] == "10.10.34.36" for r in policy)
    assert _policy("clean").resolver_policy() == {"rules": []}
    assert "NFQUEUE" not in _policy("clean").iptables_restore()


def test_dns_pass_through_holds_only_the_genuine_reply_it_raced() -> None:
    policy, st = _policy("iran-2022"), CensorState()
    query = wire.parse(_query_packet("www.flickr.com"))
    assert query is not None
    fired = policy.decide(query, st, 10.0)
    assert [(t.id, d.disposition) for t, d in fired] == [("dns-flickr", "accept")]
    genuine = dns.message.make_response(dns.message.from_wire(query.payload)).to_wire()
    reply = wire.parse(wire.udp("198.51.100.8", 53, CLIENT, 40000, genuine, 60))
    assert reply is not None
    held = policy.decide(reply, st, 10.01)
    assert [(t.id, d.disposition) for t, d in held] == [("dns-flickr", "hold")]
    assert abs(held[0][1].hold_s - 0.14) < 1e-6
    assert policy.decide(reply, st, 10.02) == []  # a second copy is not held


def test_curfew_schedule_toggles() -> None:
    text = (
        "name: c\ndescription: c\nrules:\n  - id: cf\n    technique: curfew\n"
        "    schedule: {on: 2s, off: 3s}\nground_truth: {default: {outcome: ok}}\n"
    )
    rule = Curfew(profiles.loads(text).rules[0])
    st = CensorState(started=100.0)
    assert rule.active(100.5, st) and not rule.active(102.5, st) and rule.active(105.1, st)
    assert rule.next_toggle(100.5, st) == 102.0
    assert rule.next_toggle(102.5, st) == 105.0


def test_censor_refuses_a_state_dir_without_profile(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "didban.lab.censor", "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip() == f"censor: {tmp_path / 'profile.json'} does not exist"
    missing = tmp_path / "nope"
    r = subprocess.run(
        [sys.executable, "-m", "didban.lab.censor", "--state-dir", str(missing)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip() == f"censor: state directory {missing} does not exist"


def test_delay_holds_and_loss_drops() -> None:
    text = (
        "name: d\ndescription: d\nrules:\n"
        "  - {id: slow, technique: delay_loss, addresses: [203.0.113.46], delay_ms: 250}\n"
        "  - {id: lossy, technique: delay_loss, addresses: [203.0.113.50], loss: 1.0}\n"
        "ground_truth: {default: {outcome: ok}}\n"
    )
    policy, st = Policy(profiles.loads(text)), CensorState()
    to_slow = wire.parse(_tcp_from_client("203.0.113.46", 443, b"x"))
    from_slow = wire.parse(wire.tcp("203.0.113.46", 443, CLIENT, 41000, seq=1, ack=1,
                                    flags=wire.ACK, window=100, ttl=60))  # fmt: skip
    to_lossy = wire.parse(_tcp_from_client("203.0.113.50", 443, b"x"))
    assert to_slow is not None and from_slow is not None and to_lossy is not None
    for pkt in (to_slow, from_slow):
        ((rule, d),) = policy.decide(pkt, st, 1.0)
        assert (rule.id, d.disposition, d.hold_s) == ("slow", "hold", 0.25)
    ((rule, d),) = policy.decide(to_lossy, st, 1.0)
    assert (rule.id, d.disposition, d.action) == ("lossy", "drop", "lost")
