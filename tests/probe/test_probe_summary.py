"""The end-of-run table: per-step outcome strings read from what was written."""

from __future__ import annotations

from pathlib import Path

from didban.probe.summary import outcome, run_line


def _q(engine: str, failure: str | None, *ips: str) -> dict[str, object]:
    return {
        "engine": engine,
        "failure": failure,
        "answers": [{"answer_type": "A", "ipv4": ip} for ip in ips],
    }


def test_outcomes_of_an_sni_reset_with_injected_dns() -> None:
    tags = ["classic", "depth=0", "fetch_body=false", "tcptls_experiment"]
    m = {
        "input": "https://www.instagram.com/",
        "test_keys": {
            "queries": [
                _q("getaddrinfo", None, "203.0.113.10", "203.0.113.11"),
                _q("udp", None, "10.10.34.36"),
                _q("doh", "connection_reset"),
            ],
            "x_dns_duplicate_responses": [_q("udp", None, "203.0.113.10")],
            "tcp_connect": [
                {"ip": "203.0.113.10", "status": {"failure": None}, "tags": tags},
                {"ip": "203.0.113.11", "status": {"failure": None}, "tags": tags},
                {
                    "ip": "10.10.34.36",
                    "status": {"failure": "generic_timeout_error"},
                    "tags": tags[1:],
                },
            ],
            "tls_handshakes": [
                {"failure": "connection_reset", "tags": tags},
                {"failure": "connection_reset", "tags": tags},
            ],
            "requests": [],
            "http_experiment_failure": "connection_reset",
            "x_didban_quic": [{"failure": "generic_timeout_error"}],
        },
    }
    o = outcome(m)
    assert o.dns == "getaddrinfo:2 udp:1 doh:connection_reset dup:1"
    assert o.tcp == "generic_timeout_error (1/3)"
    assert o.tls == "connection_reset (2/2)"
    assert o.http == "connection_reset"
    assert o.quic == "generic_timeout_error"
    # the DoH lookup, one TCP connect, two TLS handshakes, the HTTP experiment
    assert o.failed_steps == 5


def test_outcomes_of_a_blockpage_over_http() -> None:
    m = {
        "input": "http://www.tabnak.ir/",
        "test_keys": {
            "queries": [_q("getaddrinfo", None, "203.0.113.54")],
            "tcp_connect": [
                {"status": {"failure": None}, "tags": ["classic", "fetch_body=true"]},
                {"status": {"failure": None}, "tags": ["x_didban_ip_check"]},
            ],
            "tls_handshakes": [{"failure": None, "tags": ["x_didban_ip_check"]}],
            "requests": [{"failure": None, "response": {"code": 403}}],
        },
    }
    o = outcome(m)
    assert (o.tcp, o.tls, o.http, o.failed_steps) == ("ok", ":443 ok", "403", 0)


def test_addresses_that_failed_differently_show_each_failure() -> None:
    m = {
        "input": "https://www.facebook.com/",
        "test_keys": {
            "tcp_connect": [
                {"ip": "d0::11", "status": {"failure": "address_not_available"}, "tags": []},
                {"ip": "10.10.34.36", "status": {"failure": "connection_refused"}, "tags": []},
                {"ip": "10.10.34.35", "status": {"failure": "connection_refused"}, "tags": []},
            ],
        },
    }
    assert outcome(m).tcp == "connection_refused ×2, address_not_available (3/3)"


def test_failed_lookups_are_failed_steps_and_an_aaaa_without_answer_is_not() -> None:
    def lookup(engine: str, a: str | None, aaaa: str | None) -> list[dict[str, object]]:
        return [_q(engine, a, *([] if a else ["203.0.113.10"])), _q(engine, aaaa)]

    m = {
        "input": "https://www.example.org/",
        "test_keys": {
            "queries": [
                *lookup("getaddrinfo", None, "dns_no_answer"),  # no IPv6: no failure
                *lookup("udp", "generic_timeout_error", "generic_timeout_error"),
                *lookup("doh", "connection_reset", "connection_reset"),
            ],
            "tcp_connect": [{"status": {"failure": None}}],
        },
    }
    assert outcome(m).failed_steps == 2
    # the system resolver's failure, when that is all there is
    assert (
        outcome({"test_keys": {"dns_experiment_failure": "dns_nxdomain_error"}}).failed_steps == 1
    )


def test_the_last_line_counts_in_the_singular_when_it_is_one() -> None:
    out = Path("/tmp/o.jsonl")
    assert run_line(1, out, 2.0, 1, False) == (
        "1 measurement written to /tmp/o.jsonl in 2.0 s (0.5 URL/s), 1 failed step"
    )
    assert run_line(2, out, 1.0, 0, True).endswith("0 failed steps — interrupted")
