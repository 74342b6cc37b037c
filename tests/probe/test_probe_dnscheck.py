"""``didban dnscheck`` on loopback: every resolver and transport side by side, injection kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from probe_peers import Loopback
from typer.testing import CliRunner

from didban.cli import app
from didban.files.tables import plain_rows
from didban.model.validate import problems
from didban.probe.dnscheck_cli import answers_table


def test_dnscheck_keeps_the_injected_and_the_genuine_reply(
    loopback: Loopback, config_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "dnscheck.jsonl"
    r = CliRunner().invoke(
        app,
        [
            "dnscheck", "localhost", "--accept-risk", "--output", str(out),
            "--resolver", f"127.0.0.1:{loopback.dns_inject_port}",
            "--doh", loopback.doh_url, "--doh-bootstrap", f"127.0.0.1:{loopback.https_port}",
            "--ca-file", loopback.ca_file,
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (m,) = [msgspec.json.decode(x) for x in out.read_bytes().splitlines()]
    assert problems(m) == []
    assert m["test_name"] == "dnscheck" and m["input"] == "localhost"
    lookups = m["test_keys"]["lookups"]
    udp = lookups[f"udp://127.0.0.1:{loopback.dns_inject_port}"]
    a = next(q for q in udp["queries"] if q["query_type"] == "A")
    assert [x["ipv4"] for x in a["answers"]] == ["127.0.0.2"]
    assert [
        x["ipv4"]
        for d in udp["x_dns_duplicate_responses"]
        if d["query_type"] == "A"
        for x in d["answers"]
    ] == ["127.0.0.1"]
    # the test resolver speaks UDP only
    assert lookups[f"tcp://127.0.0.1:{loopback.dns_inject_port}"]["failure"] == (
        "connection_refused"
    )
    doh = lookups[loopback.doh_url]
    assert doh["failure"] is None
    assert doh["tls_handshakes"] and doh["tls_handshakes"][0]["failure"] is None
    # the table printed for the user
    assert "127.0.0.2" in r.stderr and "dnscheck localhost" in r.stderr


def test_dnscheck_rejects_a_url_instead_of_a_domain(config_home: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app, ["dnscheck", "https://x.example.org/", "--accept-risk", "-o", str(tmp_path / "o")]
    )
    assert r.exit_code == 2
    assert "is not a domain name" in r.stderr


def test_dnscheck_flags_name_themselves_when_wrong(config_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    for args, reason in (
        (["--doh-bootstrap", "zz"], "--doh-bootstrap 'zz' is not an IP address"),
        (["--dot", "198.51.100.1#"], "--dot '198.51.100.1#': the server name after '#' is empty"),
        (["--dot", "foo#bar"], "--dot 'foo' is not an IP address"),
    ):
        r = CliRunner().invoke(app, ["dnscheck", "a.example.org", "-o", str(out), *args])
        assert r.exit_code == 2, r.output
        assert reason in r.stderr
    assert not out.exists()


def test_the_table_shows_the_a_query_failure_beside_the_answers() -> None:
    def query(qtype: str, answers: list[str], failure: str | None) -> dict[str, Any]:
        return {"query_type": qtype, "answers": [{"ipv4": a} for a in answers], "failure": failure}

    m = {
        "test_keys": {
            "domain": "www.instagram.com",
            "lookups": {
                # A answered, AAAA had none (no IPv6 address): the lookup did not fail
                "udp://198.51.100.8:53": {
                    "failure": None,
                    "queries": [
                        query("A", ["203.0.113.10"], None),
                        query("AAAA", [], "dns_no_answer"),
                    ],
                },
                "dot://198.51.100.8:853": {
                    "failure": "generic_timeout_error",
                    "queries": [
                        query("A", [], "generic_timeout_error"),
                        query("AAAA", [], "generic_timeout_error"),
                    ],
                },
            },
        }
    }
    assert plain_rows(answers_table(m)) == [
        "# dnscheck www.instagram.com",
        "resolver\tanswers\tfailure (A)\tlate replies",
        "udp://198.51.100.8:53\t203.0.113.10\t-\t-",
        "dot://198.51.100.8:853\t-\tgeneric_timeout_error\t-",
    ]
