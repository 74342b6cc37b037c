"""The ISP resolver's hijack policy without a network (no root needed): policy parsing,
reload when the file changes, the answer per action, and the censor-log line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from didban.lab.services.dnsserver import Query
from didban.lab.services.ispresolver import IspResolver, parse_policy


def test_bad_policies_are_refused_with_the_rule_named() -> None:
    with pytest.raises(ValueError, match="rule 1: action must be one of"):
        parse_policy(json.dumps({"rules": [
            {"id": "a", "suffix": "x.com", "action": "bogon"},
            {"id": "b", "suffix": "y.com", "action": "explode"},
        ]}))  # fmt: skip
    with pytest.raises(ValueError, match="rule 0: suffix is empty"):
        parse_policy('{"rules": [{"id": "a", "suffix": "", "action": "drop"}]}')


async def _ask(resolver: IspResolver, name: str, rdtype: str = "A") -> dns.message.Message | None:
    q = dns.message.make_query(name, rdtype)
    out = await resolver(Query(q.to_wire(), ("192.0.2.2", 40000), ("192.0.2.53", 53), "udp"))
    return None if out is None else dns.message.from_wire(out)


async def test_policy_actions_reload_and_log(tmp_path: Path) -> None:
    resolver = IspResolver(tmp_path)
    policy = tmp_path / "resolver-policy.json"
    policy.write_text(json.dumps({"rules": [
        {"id": "ig", "suffix": "instagram.com", "action": "bogon", "answer": "10.10.34.35",
         "ttl": 418},
        {"id": "tg", "suffix": "telegram.org", "action": "servfail"},
        {"id": "sg", "suffix": "signal.org", "action": "drop"},
    ]}))  # fmt: skip
    ig = await _ask(resolver, "www.instagram.com")
    assert ig is not None
    assert [(rr.address, ig.answer[0].ttl) for rr in ig.answer[0]] == [("10.10.34.35", 418)]
    ig6 = await _ask(resolver, "www.instagram.com", "AAAA")
    assert ig6 is not None and ig6.answer == [] and ig6.rcode() == dns.rcode.NOERROR
    tg = await _ask(resolver, "web.telegram.org")
    assert tg is not None and tg.rcode() == dns.rcode.SERVFAIL
    assert await _ask(resolver, "signal.org") is None
    # Domestic names are answered locally, whatever the border does.
    dk = await _ask(resolver, "www.digikala.com")
    assert dk is not None and [rr.address for rr in dk.answer[0]] == ["192.0.2.40"]

    lines = [json.loads(x) for x in (tmp_path / "censor.log").read_text().splitlines()]
    assert [(e["rule"], e["detail"]) for e in lines] == [
        ("ig", "www.instagram.com"), ("ig", "www.instagram.com"),
        ("tg", "web.telegram.org"), ("sg", "signal.org"),
    ]  # fmt: skip
    assert lines[0]["technique"] == "resolver_hijack"
    assert lines[0]["action"] == "resolver bogon 10.10.34.35"
    assert (lines[0]["src"], lines[0]["dst"]) == ("192.0.2.2:40000", "192.0.2.53:53")

    # A new policy takes effect on the next query (mtime changed).
    policy.write_text(json.dumps({"rules": [
        {"id": "ig2", "suffix": "instagram.com", "action": "nxdomain"}]}))  # fmt: skip
    st = policy.stat()
    os.utime(policy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    nx = await _ask(resolver, "instagram.com")
    assert nx is not None and nx.rcode() == dns.rcode.NXDOMAIN
