"""Privacy and identity: scrubbing the probe's addresses, report ids, offline identity, consent."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import msgspec
import pytest

from didban.model.labinfo import AsnRow
from didban.model.ooni import NetworkEvent
from didban.probe import consent, envelope, identity
from didban.probe.output import JsonlWriter, OutputError
from didban.probe.scrub import Scrubber, local_addresses


def test_scrubber_replaces_every_occurrence_and_nothing_else() -> None:
    s = Scrubber(["192.0.2.2", "2001:db8::2", "127.0.0.1"])
    doc = {
        "network_events": [{"address": "192.0.2.2:53211", "operation": "connect"}],
        "headers": {"X-Forwarded-For": "192.0.2.2, 198.51.100.7", "Via": "[2001:db8::2]:80"},
        "body": "Your IP is 192.0.2.2. Long form 2001:0db8:0000:0000:0000:0000:0000:0002",
        "others": ["192.0.2.25", "192.0.2.20:443", "10.192.0.2.2", "2001:db8::20"],
    }
    out = json.loads(s.text(json.dumps(doc)))
    assert out["network_events"][0]["address"] == "127.0.0.1:53211"
    assert out["headers"]["X-Forwarded-For"] == "127.0.0.1, 198.51.100.7"
    assert out["headers"]["Via"] == "[127.0.0.1]:80"
    assert out["body"] == "Your IP is 127.0.0.1. Long form 127.0.0.1"
    assert out["others"] == doc["others"]
    assert s.leaks(json.dumps(out)) == []
    assert "127.0.0.1" not in s.addresses  # loopback is not identifying


def test_local_addresses_read_from_proc(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "fib_trie").write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 192.0.2.2\n        /32 host LOCAL\n"
        "     |-- 127.0.0.1\n        /32 host LOCAL\n"
        "     |-- 192.0.2.3\n        /32 link BROADCAST\n"
    )
    (tmp_path / "net" / "if_inet6").write_text(
        "20010db8000000000000000000000002 02 40 00 80 v-isp\n"
        "00000000000000000000000000000001 01 80 10 80 lo\n"
        "fe800000000000000000000000000001 02 40 20 80 v-isp\n"
    )
    assert local_addresses(tmp_path) == {"192.0.2.2", "2001:db8::2"}


def test_writer_scrubs_appends_and_refuses_to_clobber(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with JsonlWriter(path, Scrubber(["203.0.113.77"])) as w:
        w.write(NetworkEvent(operation="connect", t=0.1, address="203.0.113.77:4000"))
        w.write({"input": "https://a.example.org/", "body": "from 203.0.113.77"})
    lines = path.read_text().splitlines()
    assert [msgspec.json.decode(x) for x in lines][1]["body"] == "from 127.0.0.1"
    assert "203.0.113.77" not in path.read_text()
    with pytest.raises(OutputError, match="already exists; choose another --output"):
        JsonlWriter(path, Scrubber([]))
    with pytest.raises(OutputError, match="does not exist"):
        JsonlWriter(tmp_path / "nodir" / "x.jsonl", Scrubber([]))


def test_report_id_has_ooni_format() -> None:
    when = dt.datetime(2022, 8, 15, 19, 0, 43, tzinfo=dt.UTC)
    rid = envelope.new_report_id("web_connectivity", "IR", "AS197207", when)
    assert rid.startswith("20220815T190043Z_webconnectivity_IR_197207_n1_")
    assert envelope.REPORT_ID_RE.match(rid)
    assert rid != envelope.new_report_id("web_connectivity", "IR", "AS197207", when)
    assert envelope.REPORT_ID_RE.match(
        "20220815T190043Z_webconnectivity_IR_197207_n1_cCbffjGasS4tFgb2"
    )


def test_identity_from_lab_table_and_overrides() -> None:
    table = [
        AsnRow("192.0.2.0/24", 64500, "NL", "wide"),
        AsnRow("192.0.2.0/30", 197207, "IR", "Mobile Communication Company of Iran PLC"),
    ]
    ident = identity.resolve(addresses=["192.0.2.2"], table=table)
    assert (ident.probe_cc, ident.probe_asn) == ("IR", "AS197207")
    assert ident.probe_network_name == "Mobile Communication Company of Iran PLC"
    assert not ident.notes
    ident = identity.resolve(addresses=["192.0.2.2"], table=table, cc="de", asn="3320")
    assert (ident.probe_cc, ident.probe_asn) == ("DE", "AS3320")
    unknown = identity.resolve()
    assert (unknown.probe_cc, unknown.probe_asn) == ("ZZ", "AS0")
    assert "does not ask a geolocation service" in unknown.notes[0]
    with pytest.raises(identity.IdentityError, match="not an AS number"):
        identity.resolve(asn="ASX")
    with pytest.raises(identity.IdentityError, match="two-letter country code"):
        identity.resolve(cc="IRN")


def test_identity_from_a_public_address_looked_up_offline() -> None:
    # a public address (an interface's, or what didban's helper saw) → the shipped
    # snapshot; private and documentation addresses are never looked up
    assert identity.public_addresses(["127.0.0.1", "10.0.0.7", "::ffff:2.176.0.1"]) == ["2.176.0.1"]
    ident = identity.resolve(public=["192.168.1.10", "2.176.0.1"])
    assert (ident.probe_cc, ident.probe_asn) == ("IR", "AS12880")
    assert ident.probe_network_name == "Information Technology Company (ITC)"
    assert not ident.notes
    assert identity.resolve(public=["2.176.0.1"], asn="AS197207").probe_asn == "AS197207"
    assert identity.resolve(public=["10.0.0.7"]).probe_cc == "ZZ"
    assert not identity.asks_whoami("https://0.th.ooni.org/")  # OONI's helpers lack it
    assert identity.asks_whoami("https://control.example.org/") and not identity.asks_whoami(None)


async def test_a_helper_reporting_no_public_address_leaves_the_interfaces_one() -> None:
    from didban.control.helper import HelperConfig
    from didban.control.server import start

    server = await start("127.0.0.1", 0, HelperConfig(allow_loopback=True))
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        # the helper sees 127.0.0.1 (not public): only the interface's public address stays
        found = await identity.discover_public(["127.0.0.1", "2.176.0.1"], url)
    finally:
        server.close()
    assert found == ["2.176.0.1"]


def test_consent_asks_once_and_remembers(tmp_path: Path) -> None:
    state = consent.state_file({"XDG_CONFIG_HOME": str(tmp_path)})
    assert state == tmp_path / "didban" / "consent.json"
    asked: list[str] = []

    def refuse(text: str) -> str:
        asked.append(text)
        return "no"

    with pytest.raises(consent.ConsentRefused, match="not accepted"):
        consent.ensure(accept_risk=False, ask=refuse, path=state)
    assert "can be a crime where censorship is practised" in asked[0]
    assert not state.exists()
    consent.ensure(accept_risk=False, ask=lambda t: "yes", path=state)
    assert consent.accepted(state)

    def must_not_ask(_: str) -> str:
        raise AssertionError("asked twice")

    consent.ensure(accept_risk=False, ask=must_not_ask, path=state)
    other = tmp_path / "o" / "consent.json"
    consent.ensure(accept_risk=True, ask=must_not_ask, path=other)
    assert json.loads(other.read_text())["how"] == "--accept-risk"
