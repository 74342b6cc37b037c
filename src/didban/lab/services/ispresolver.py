"""The ISP's recursive resolver (192.0.2.53, domestic namespace) with its hijack policy.

It answers domestic names itself and forwards every other query over the lab network to
the public resolver at 198.51.100.8:53, so an international shutdown makes foreign names
fail here (SERVFAIL after the forwarding timeout), as in November 2019. Before anything
else it applies the policy the censor writes to ``<state_dir>/resolver-policy.json``
(reloaded whenever the file's mtime changes)::

    {"rules": [{"id": "...", "suffix": "instagram.com",
                "action": "bogon|localhost|noanswer|nxdomain|servfail|refused|drop",
                "answer": "10.10.34.34", "ttl": 418}]}

(``bogon`` answers ``answer`` — the blockpage host, or a sinkhole of the ISP — to A
queries; ``localhost`` answers 127.0.0.1; ``noanswer`` is a NOERROR reply without an
address; AAAA queries get no address in all three.)

(optional per rule: ``"technique"``, default ``resolver_hijack``) and appends one JSON
line per fired rule to ``<state_dir>/censor.log``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from didban.lab import plan, zone
from didban.lab.services import dnsanswer
from didban.lab.services.dnsserver import Query

POLICY_FILE: Final = "resolver-policy.json"
CENSOR_LOG: Final = "censor.log"
ACTIONS: Final = ("bogon", "localhost", "noanswer", "nxdomain", "servfail", "refused", "drop")
LOCALHOST: Final = "127.0.0.1"
DEFAULT_BOGON: Final = "10.10.34.34"
DEFAULT_TTL: Final = 418
FORWARD_TIMEOUT: Final = 2.0
DEFAULT_TECHNIQUE: Final = "resolver_hijack"  # the censor's technique name


@dataclass(frozen=True)
class Rule:
    id: str
    suffix: str
    action: str
    answer: str = DEFAULT_BOGON
    ttl: int = DEFAULT_TTL
    technique: str = DEFAULT_TECHNIQUE

    def matches(self, name: str) -> bool:
        return name == self.suffix or name.endswith("." + self.suffix)


def parse_policy(text: str) -> list[Rule]:
    """Rules of a policy document; raises ValueError naming the first bad rule."""
    doc = json.loads(text)
    rules: list[Rule] = []
    for i, raw in enumerate(doc.get("rules", []) if isinstance(doc, dict) else []):
        if not isinstance(raw, dict):
            raise ValueError(f"rule {i} is not an object")
        action = str(raw.get("action", ""))
        if action not in ACTIONS:
            raise ValueError(f"rule {i}: action must be one of {', '.join(ACTIONS)}")
        suffix = str(raw.get("suffix", "")).lower().strip(".")
        if not suffix:
            raise ValueError(f"rule {i}: suffix is empty")
        rules.append(
            Rule(
                id=str(raw.get("id") or f"rule-{i}"),
                suffix=suffix,
                action=action,
                answer=str(raw.get("answer") or DEFAULT_BOGON),
                ttl=int(raw.get("ttl", DEFAULT_TTL)),
                technique=str(raw.get("technique") or DEFAULT_TECHNIQUE),
            )
        )
    return rules


class _Forward(asyncio.DatagramProtocol):
    def __init__(self, qid: int) -> None:
        self.qid = qid
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) >= 2 and int.from_bytes(data[:2], "big") == self.qid and not self.done.done():
            self.done.set_result(data)


class IspResolver:
    """The answer callback of the ISP resolver (plug into :mod:`dnsserver`)."""

    def __init__(
        self,
        state_dir: Path,
        upstream: tuple[str, int] = (plan.DEFAULT_UDP_RESOLVER, 53),
        source: str = plan.ISP_RESOLVER,
    ) -> None:
        self.policy_path = state_dir / POLICY_FILE
        self.log_path = state_dir / CENSOR_LOG
        self.upstream = upstream
        self.source = source
        self._mtime: int | None = None
        self.rules: list[Rule] = []

    def _reload(self) -> None:
        try:
            mtime = self.policy_path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self.rules = None, []
            return
        if mtime == self._mtime:
            return
        try:
            self.rules = parse_policy(self.policy_path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            # Keep the previous rules; the censor owns the file and reports its own errors.
            print(f"isp resolver: ignoring {self.policy_path}: {exc}", flush=True)
        self._mtime = mtime

    def _log(self, rule: Rule, q: Query, name: str) -> None:
        line = {
            "ts": time.time(),
            "rule": rule.id,
            "technique": rule.technique,
            "action": f"resolver {rule.action}"
            + (f" {rule.answer}" if rule.action == "bogon" else ""),
            "src": f"{q.src[0]}:{q.src[1]}",
            "dst": f"{q.dst[0]}:{q.dst[1]}",
            "detail": name,
        }
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _hijack(self, rule: Rule, query: dns.message.Message) -> dns.message.Message | None:
        if rule.action == "drop":
            return None
        resp = dnsanswer.make_response(query)
        if rule.action in ("bogon", "localhost"):
            q = query.question[0]
            answer = rule.answer if rule.action == "bogon" else LOCALHOST
            if q.rdtype == dns.rdatatype.A:
                resp.answer.append(dns.rrset.from_text(q.name, rule.ttl, "IN", "A", answer))
        elif rule.action == "noanswer":
            pass  # NOERROR, no answer: "the name has no address"
        else:
            resp.set_rcode(
                {
                    "nxdomain": dns.rcode.NXDOMAIN,
                    "servfail": dns.rcode.SERVFAIL,
                    "refused": dns.rcode.REFUSED,
                }[rule.action]
            )
        return resp

    async def _forward(self, wire: bytes, qid: int) -> bytes | None:
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await loop.create_datagram_endpoint(
                lambda: _Forward(qid), local_addr=(self.source, 0), remote_addr=self.upstream
            )
        except OSError:
            return None
        try:
            transport.sendto(wire)
            return await asyncio.wait_for(proto.done, FORWARD_TIMEOUT)
        except (TimeoutError, OSError):
            return None
        finally:
            transport.close()

    async def __call__(self, q: Query) -> bytes | None:
        query = dnsanswer.parse(q.wire)
        if query is None:
            return None
        limit = dnsanswer.udp_limit(query) if q.transport == "udp" else 65535
        name = query.question[0].name.to_text(omit_final_dot=True).lower()
        self._reload()
        for rule in self.rules:
            if rule.matches(name):
                self._log(rule, q, name)
                resp = self._hijack(rule, query)
                return None if resp is None else dnsanswer.to_wire(resp, limit)
        if zone.is_domestic_name(name):
            return dnsanswer.to_wire(dnsanswer.answer(query), limit)
        out = await self._forward(q.wire, query.id)
        if out is None:
            resp = dnsanswer.make_response(query)
            resp.set_rcode(dns.rcode.SERVFAIL)
            return dnsanswer.to_wire(resp, limit)
        return out
