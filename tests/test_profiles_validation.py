"""Profiles without root: the shipped ones load and carry complete ground truth; broken
ones are refused with ``file:line: problem``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from didban.lab import profiles, targets
from didban.lab.censor.enforcers.protocols import is_quic_initial, is_stun
from didban.lab.censor.techniques import TECHNIQUES
from didban.model.verdict import METHODS

SHIPPED = (
    "clean",
    "iran-2019-shutdown",
    "iran-2022",
    "iran-protocol-filter",
    "isp-dns-redirects",
    "national-root-mitm",
)
GHOST = ("http://ghost.cases.didban.test/", "https://ghost.cases.didban.test/")


def test_shipped_profiles_are_available() -> None:
    assert set(SHIPPED) <= set(profiles.available())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_has_ground_truth_for_every_default_url(name: str) -> None:
    p = profiles.load(name)
    assert p.name == name
    urls = [t.url for t in p.ground_truth]
    assert set(profiles.default_urls()) <= set(urls)
    rule_ids = {r.id for r in p.rules}
    for t in p.ground_truth:
        if t.outcome == "ok":
            assert t.method is None
        elif t.outcome == "down":  # down everywhere: a layer, no blocking method or rule
            assert t.layer is not None and t.method is None
        else:
            assert t.method in METHODS
            assert t.rule in rule_ids, f"{name}: {t.url} cites no rule of the profile"


def test_clean_blocks_nothing() -> None:
    p = profiles.load("clean")
    assert p.rules == []
    # every target is reachable, except a name that exists nowhere (the ghost DNS case)
    assert {t.url for t in p.ground_truth if t.outcome != "ok"} == set(GHOST)
    assert {t.outcome for t in p.ground_truth} == {"ok", "down"}


def test_iran_2022_uses_iran_methods_and_covers_the_techniques() -> None:
    p = profiles.load("iran-2022")
    truth = {t.url: t for t in p.ground_truth}
    assert truth["https://www.instagram.com/"].method == "tls.sni.reset"
    assert truth["http://www.cloob.com/"].method == "http.blockpage"
    assert truth["http://www.tabnak.ir/"].method == "http.blockpage"
    assert truth["https://www.whatsapp.com/"].method == "tcp.timeout"
    assert truth["https://telegram.org/"].method == "tcp.reset"
    assert truth["https://www.facebook.com/"].method == "dns.injection.bogon"
    assert truth["https://twitter.com/"].method == "dns.hijack"
    assert truth["https://www.digikala.com/"].outcome == "ok"
    assert truth["https://www.aparat.com/"].outcome == "ok"
    assert truth["https://en.wikipedia.org/"].outcome == "ok"
    used = {r.technique for r in p.rules}
    assert {
        "dns_injection", "resolver_hijack", "http_blockpage", "sni_reset", "sni_blackhole",
        "ip_blackhole", "rst_on_connect", "quic_drop", "dot_block", "doh_poison",
    } <= used  # fmt: skip


def test_iran_2019_shutdown_isolates_international_targets_only() -> None:
    p = profiles.load("iran-2019-shutdown")
    for t in p.ground_truth:
        if "digikala" in t.url or "aparat" in t.url:
            assert t.outcome == "ok"
        elif t.url.startswith(("http://", "https://")):
            assert (t.outcome, t.layer, t.method) == ("blocked", "ip", "nin.isolated")
        else:  # app, STUN and HTTP/3 tests: no domestic target of their own to compare with
            assert t.outcome == "blocked" and t.method in ("tcp.timeout", "stun.blocked"), t.url


def test_every_profile_covers_the_app_stun_and_quic_targets() -> None:
    implied = targets.app_targets() + targets.quic_targets()
    assert "app:telegram" in implied and "stun://stun.l.google.com:19302" in implied
    assert "quic://www.instagram.com" in implied
    for name in profiles.available():
        covered = {t.url for t in profiles.load(name).ground_truth}
        assert set(implied) <= covered, name


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("app:bogus", "names no app test"),
        ("stun://stun.example.org", "must name its port"),
        ("quic://www.example.org/path", "must be scheme://HOST[:PORT]"),
        ("ftp://x.example.org", "is not a target"),
    ],
)
def test_bad_targets_are_refused_with_their_line(target: str, problem: str) -> None:
    text = (
        "name: t\ndescription: d\nrules: []\nground_truth:\n  default: {outcome: ok}\n"
        f"  targets:\n    {target}: {{outcome: ok}}\n"
    )
    want = re.escape(f"<profile>:7: ground_truth: '{target}' {problem}")
    with pytest.raises(profiles.ProfileError, match=want):
        profiles.loads(text)


def test_udp_protocol_filter_drops_quic_and_stun_by_their_bytes() -> None:
    quic = bytes([0xC3, 0, 0, 0, 1]) + bytes(1195)
    stun_msg = bytes.fromhex("000100002112a442") + bytes(12)
    assert is_quic_initial(quic, 1001) and not is_quic_initial(quic[:1000], 1001)
    assert not is_quic_initial(bytes([0x43, 0, 0, 0, 1]) + bytes(1195), 1001)  # short header
    assert is_stun(stun_msg) and not is_stun(stun_msg[:19])
    assert not is_stun(bytes.fromhex("0001000021124443") + bytes(12))  # not the cookie
    dns_query = bytes.fromhex("abcd01000001000000000000") + b"\x03www\x00\x00\x01\x00\x01"
    assert not is_stun(dns_query) and not is_quic_initial(dns_query, 1)


def test_protocol_filter_profile_whitelists_and_throttles() -> None:
    p = profiles.load("iran-protocol-filter")
    wl = next(r for r in p.rules if r.technique == "protocol_whitelist")
    assert wl.params["ports"] == [53, 80, 443]
    assert wl.params["penalty"] == 60.0
    th = next(r for r in p.rules if r.technique == "throttle")
    assert th.params["rate"] == "1mbit"
    assert th.params["addresses"] == ["203.0.113.34", "203.0.113.35"]


def test_dump_json_round_trips() -> None:
    p = profiles.load("iran-2022")
    assert profiles.from_json(profiles.dump_json(p)) == p


def test_defaults_are_filled_in() -> None:
    r = profiles.load("iran-2022").rule("dns-facebook")
    assert r.params["answer"] == "10.10.34.36"
    assert r.params["ip_ttl"] == 187
    assert r.params["dns_ttl"] == 418
    assert r.params["original"] == "drop"


GOOD_HEAD = "name: iran-custom\ndescription: a test\n"
GT = "ground_truth:\n  default: {outcome: ok}\n"

BROKEN = [
    (
        GOOD_HEAD + "rules:\n  - id: a\n    technique: sni_reset\n    names: [x.com]\n"
        "  - id: b\n    technique: sni_rest\n    names: [x.com]\n" + GT,
        "iran-custom.yaml:8: unknown technique 'sni_rest' (known: ",
    ),
    (
        GOOD_HEAD
        + "rules:\n  - id: a\n    technique: ip_blackhole\n    addresses: [8.8.8.8]\n"
        + GT,
        "iran-custom.yaml:6: rule 'a': addresses: '8.8.8.8' is not a lab address",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: a\n    technique: sni_reset\n    names: [x.com]\n"
        "    ports: [443, 99999]\n" + GT,
        "iran-custom.yaml:7: rule 'a': ports: '99999' is not a port (1-65535)",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: a\n    technique: sni_reset\n    names: [x.com]\n"
        "    ip_ttl: high\n" + GT,
        "iran-custom.yaml:7: rule 'a': ip_ttl: 'high' is not an integer",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: a\n    technique: sni_reset\n    name: [x.com]\n" + GT,
        "iran-custom.yaml:6: rule 'a': technique 'sni_reset' has no parameter 'name'",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: a\n    technique: sni_reset\n" + GT,
        "iran-custom.yaml:4: rule 'a': technique 'sni_reset' needs 'names'",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: a\n    technique: shutdown\n  - id: a\n    technique: "
        "shutdown\n" + GT,
        "iran-custom.yaml:6: duplicate rule id 'a'",
    ),
    (
        GOOD_HEAD + "rules: []\nground_truth:\n  default: {outcome: blocked, layer: dns, "
        "method: dns.poison}\n",
        "iran-custom.yaml:5: ground truth of 'default': unknown method 'dns.poison'",
    ),
    (
        GOOD_HEAD + "rules: []\nground_truth:\n  default: {outcome: blocked, layer: tls, "
        "method: dns.nxdomain}\n",
        "iran-custom.yaml:5: ground truth of 'default': method 'dns.nxdomain' belongs to layer",
    ),
    (
        GOOD_HEAD + "rules: []\nground_truth:\n  targets:\n    https://www.instagram.com/: "
        "{outcome: ok}\n",
        "iran-custom.yaml:5: ground_truth: no entry for 'https://www.whatsapp.com/'",
    ),
    (
        GOOD_HEAD + "rules: []\nground_truth:\n  default: {outcome: blocked, layer: ip, "
        "method: shutdown, rule: nope}\n",
        "iran-custom.yaml:5: ground truth of 'default': no rule with id 'nope'",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: c\n    technique: curfew\n    schedule: {on: 5s}\n" + GT,
        "iran-custom.yaml:6: rule 'c': schedule: needs 'off'",
    ),
    (
        GOOD_HEAD + "rules: []\n" + GT + "  targets:\n    dot://dns.google:853: "
        "{outcome: blocked, layer: tls, method: tls.sni.timeout}\n",
        "iran-custom.yaml:7: ground_truth: 'dot://dns.google:853' is not dot://IP[:PORT]",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: a\n    technique: ip_blackhole\n    addresses: []\n" + GT,
        "iran-custom.yaml:6: rule 'a': addresses must not be empty",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: m\n    technique: tls_mitm\n    addresses: [203.0.113.10]\n"
        "    ports: []\n" + GT,
        "iran-custom.yaml:7: rule 'm': ports must not be empty",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: a\n    technique: ip_blackhole\n    addresses:\n"
        "      - 203.0.113.1\n      - 8.8.8.8\n" + GT,
        "iran-custom.yaml:8: rule 'a': addresses: '8.8.8.8' is not a lab address",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: a\n    technique: sni_reset\n    names: [x.com]\n"
        "    ports: [" + ",".join(str(p) for p in range(1, 17)) + "]\n" + GT,
        "iran-custom.yaml:7: rule 'a': ports: at most 15 ports (iptables multiport)",
    ),
    (
        GOOD_HEAD + "rules:\n  - id: h\n    technique: http_blockpage\n" + GT,
        "iran-custom.yaml:4: rule 'h': http_blockpage needs 'hosts' or 'keywords'",
    ),
    (
        GOOD_HEAD + "rules: []\nground_truth:\n  default: {outcome: ok, method: dns.nxdomain}\n",
        "iran-custom.yaml:5: ground truth of 'default': an 'ok' target has no method",
    ),
    (GOOD_HEAD + "rules: [\n", "iran-custom.yaml:4: invalid YAML"),
    (GOOD_HEAD + GT, "iran-custom.yaml:1: missing key 'rules'"),
]


@pytest.mark.parametrize(("text", "message"), BROKEN)
def test_broken_profile_names_file_line_and_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    f = tmp_path / "iran-custom.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(profiles.ProfileError) as exc:
        profiles.load(str(f))
    assert str(exc.value).startswith(message), str(exc.value)


def test_unknown_profile_name_lists_the_available_ones() -> None:
    with pytest.raises(profiles.ProfileError, match=r"no profile 'iran-1979' \(available: clean"):
        profiles.load("iran-1979")


def test_every_technique_is_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "lab-profiles.md").read_text()
    for name in TECHNIQUES:
        assert f"`{name}`" in doc, f"docs/lab-profiles.md does not describe {name}"


def test_lab_up_help_names_every_shipped_profile_and_a_directory_is_refused(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from didban.cli import app

    # the help is wrapped at 80 columns, also after the hyphen of a profile name
    text = " ".join(CliRunner().invoke(app, ["lab", "up", "--help"]).output.split())
    text = text.replace("- ", "-")  # rich may wrap a line after a profile name's hyphen
    listed = text.split("A shipped profile (", 1)[1].split(";", 1)[0]
    assert [p.strip() for p in listed.split(",")] == profiles.available()
    with pytest.raises(profiles.ProfileError, match="is a directory, not a profile file"):
        profiles.load(str(tmp_path))
