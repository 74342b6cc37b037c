"""The lab's address plan without a network: every host address is handed out once, the
accuracy cases keep out of the range kept for the circumvention servers, and each host's
AS comes from exactly one row of the probe's table (or from its own /32)."""

from __future__ import annotations

import ipaddress

from didban.lab import plan

CIRCUMVENTION_RANGE = ipaddress.ip_network("203.0.113.160/27")  # plan.CIRC_POOL


def _hosts() -> dict[str, list[str]]:
    """Every address the plan gives a site, by the pool that gives it."""
    return {
        "services": [a for addrs in plan.SERVICE_ADDRS.values() for a in addrs],
        "domestic": [a for addrs in plan.DOMESTIC_SITES.values() for a in addrs],
        "extra": list(plan.EXTRA_POOL),
        "apps": list(plan.APP_POOL),
        "cases": list(plan.CASE_SITES.values()),
        "circumvention": list(plan.CIRC_POOL),
        "bench": list(plan.BENCH_ADDRS),
    }


def test_every_site_address_is_handed_out_once() -> None:
    seen: dict[str, str] = {}
    for pool, addrs in _hosts().items():
        for a in addrs:
            assert a not in seen, f"{a} is in {seen[a]} and {pool}"
            seen[a] = pool


def test_accuracy_cases_stay_out_of_the_circumvention_range() -> None:
    inside = [a for a in plan.CASE_SITES.values() if ipaddress.ip_address(a) in CIRCUMVENTION_RANGE]
    assert inside == []


def test_each_case_and_bench_address_has_one_as_row() -> None:
    nets = [
        (ipaddress.ip_network(cidr), asn)
        for cidr, asn, _cc, _org in plan.asn_map()
        if not cidr.endswith("/32")
    ]
    for a in [*plan.CASE_SITES.values(), *plan.BENCH_ADDRS]:
        rows = [asn for net, asn in nets if ipaddress.ip_address(a) in net]
        assert len(rows) == 1, f"{a}: AS rows {rows}"
    case_asns = {asn for net, asn in nets if str(net) == "203.0.113.224/28"}
    assert case_asns and case_asns.isdisjoint({plan.APP_HOSTING[0]})
