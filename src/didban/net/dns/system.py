"""The system resolver: ``getaddrinfo`` in a thread, recorded as OONI engine
``getaddrinfo`` with query type ``ANY`` and resolver address ``""`` (OONI LTE's
convention); a canonical name other than the one asked becomes a CNAME answer."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from didban.model import failures
from didban.model.ooni import DNSAnswer
from didban.net import errors, trace
from didban.net.dns.message import DEFAULT_TIMEOUT, DNSResult, Records
from didban.net.trace import NO_TRACE, Tracer


@dataclass(frozen=True, slots=True)
class System:
    """``getaddrinfo`` (whatever the host is configured to ask). ``qtype`` is not
    chosen: the system resolver answers A and AAAA together (``ANY``)."""

    timeout: float = DEFAULT_TIMEOUT

    async def resolve(
        self, hostname: str, *, qtype: str = "A", tracer: Tracer = NO_TRACE
    ) -> DNSResult:
        records = Records(hostname, "ANY", "getaddrinfo", "", tracer)
        tracer.event(trace.RESOLVE_START)
        loop = asyncio.get_running_loop()
        t0 = tracer.now()
        failure: str | None = None
        answers: list[DNSAnswer] = []
        try:
            async with asyncio.timeout(self.timeout):
                infos = await loop.getaddrinfo(
                    hostname, None, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME
                )
        except Exception as exc:
            failure = errors.classify(exc)
        else:
            seen: set[str] = set()
            for family, _, _, canon, sockaddr in infos:
                if (
                    canon
                    and canon.rstrip(".") != hostname.rstrip(".")
                    and not any(a.answer_type == "CNAME" for a in answers)
                ):
                    answers.append(DNSAnswer(answer_type="CNAME", hostname=canon))
                ip = str(sockaddr[0])
                if ip in seen:
                    continue
                seen.add(ip)
                if family == socket.AF_INET6:
                    answers.append(DNSAnswer(answer_type="AAAA", ipv6=ip))
                else:
                    answers.append(DNSAnswer(answer_type="A", ipv4=ip))
            if not seen:
                failure = failures.DNS_NO_ANSWER
        t = tracer.now()
        tracer.event(trace.RESOLVE_DONE, t0=t0, t=t, failure=failure)
        return DNSResult(records.query(failure, answers or None, t0, t))
