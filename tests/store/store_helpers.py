"""Helpers for the store and API tests: synthetic measurements and constructed verdicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from didban.model.verdict import Evidence, Verdict

RULES = "test-rules-1"


def measurement(
    i: int = 0,
    cc: str = "IR",
    asn: str = "AS197207",
    url: str = "https://www.instagram.com/",
    start: str = "2026-11-01 10:00:00",
    ip: str = "157.240.1.174",
) -> dict[str, Any]:
    """A small valid web_connectivity measurement; ``i`` makes its content unique."""
    return {
        "data_format_version": "0.2.0",
        "input": url,
        "measurement_start_time": start,
        "probe_asn": asn,
        "probe_cc": cc,
        "report_id": f"20261101T100000Z_webconnectivity_{cc}_{asn[2:]}_n0_test{i:08d}",
        "software_name": "didban",
        "software_version": "0.1.0",
        "test_name": "web_connectivity",
        "test_start_time": start,
        "test_version": "0.4.3",
        "test_runtime": 1.5,
        "annotations": {"seq": str(i)},
        "test_keys": {
            "queries": [
                {
                    "hostname": "www.instagram.com",
                    "query_type": "A",
                    "engine": "system",
                    "resolver_address": "",
                    "failure": None,
                    "answers": [{"answer_type": "A", "ipv4": ip, "ttl": 60}],
                }
            ],
            "tcp_connect": [
                {"ip": ip, "port": 443, "status": {"success": False, "failure": "connection_reset"}}
            ],
            "tls_handshakes": [],
            "requests": [],
        },
    }


def verdict_for(state: str, confirmed: bool = False) -> Callable[[dict[str, Any]], Verdict]:
    """A classifier returning a verdict with ``state`` for every measurement."""

    def classify(m: dict[str, Any]) -> Verdict:
        return Verdict(
            measurement_uid=m.get("measurement_uid"),
            report_id=m["report_id"],
            input=m.get("input"),
            test_name=m["test_name"],
            probe_cc=m["probe_cc"],
            probe_asn=m["probe_asn"],
            measurement_start_time=m["measurement_start_time"],
            state=state,  # type: ignore[arg-type]
            rule_id="test.rule",
            rules_version=RULES,
            confidence=0.9,
            layer="tcp" if state == "blocked" else None,
            method="tcp.reset" if state == "blocked" else None,
            confirmed=confirmed,
            evidence=[Evidence(pointer="/test_keys/tcp_connect/0", summary="reset on connect")],
        )

    return classify


def by_annotation() -> Callable[[dict[str, Any]], Verdict | None]:
    """A classifier that reads the wanted state from ``annotations.want`` (none → no verdict)."""

    def classify(m: dict[str, Any]) -> Verdict | None:
        want = m.get("annotations", {}).get("want")
        if want is None:
            return None
        state, _, flag = want.partition("+")
        return verdict_for(state, confirmed=flag == "confirmed")(m)

    return classify
