"""DNS over UDP (RFC 1035 §4.2.1) that keeps listening after the first reply.

After the first reply matching the query the socket stays open ``wait_duplicates``
seconds (500 ms, OONI LTE), so an injected answer and the genuine one are both kept, in
arrival order: the first reply is the query's answer, every later one goes to
``duplicates`` (``x_dns_duplicate_responses``) with its own time. A reply to the same
question with another id is kept there too, with failure
``dns_reply_with_wrong_query_id``, and never becomes the answer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from didban.model import failures
from didban.model.ooni import DNSDuplicateResponse
from didban.net import dnswire, errors, guard, trace
from didban.net.dns.message import (
    DEFAULT_TIMEOUT,
    DNSResult,
    Records,
    make_query,
    matches,
    parse_reply,
)
from didban.net.stream import format_address, split_address
from didban.net.trace import NO_TRACE, Tracer

DEFAULT_DUPLICATE_WAIT = 0.5


@dataclass(frozen=True, slots=True)
class UDP:
    """A UDP resolver at ``server`` (``"ip"`` or ``"ip:port"``, default port 53).

    ``on_answer`` (if given) is called exactly once per lookup, with its result as soon as
    it is known: the first reply's, so a caller can use the addresses during the wait for
    late replies; or, when no reply came, the failure (``generic_timeout_error`` also when
    the caller is cancelled first). ``on_duplicate`` is called with every other reply
    (later ones, and those with another query id) as it arrives. So a caller cancelled at
    any point still has the query and every reply so far. The callbacks must not raise:
    an exception in one is recorded as the lookup's network failure.
    """

    server: str
    timeout: float = DEFAULT_TIMEOUT
    wait_duplicates: float = DEFAULT_DUPLICATE_WAIT
    on_answer: Callable[[DNSResult], None] | None = None
    on_duplicate: Callable[[DNSDuplicateResponse], None] | None = None

    async def resolve(
        self, hostname: str, *, qtype: str = "A", tracer: Tracer = NO_TRACE
    ) -> DNSResult:
        """The first reply as the answer, every later one in ``duplicates``."""
        ip, port = split_address(self.server, 53)
        address = format_address(ip, port)
        query = make_query(hostname, qtype)
        records = Records(hostname, qtype, "udp", address, tracer)
        tracer.event(trace.RESOLVE_START, address=address)
        guard.check(ip)
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        t0 = tracer.now()
        first: DNSResult | None = None
        duplicates: list[DNSDuplicateResponse] = []  # every reply but the answer, in order
        failure: str | None = None

        def duplicate(data: bytes, reply: dnswire.Message, t_dup: float, wrong: bool) -> None:
            dup = records.from_reply(data, reply, t0, t_dup)
            if wrong:
                dup.failure = failures.DNS_WRONG_QUERY_ID
            record = DNSDuplicateResponse(**msgspec.structs.asdict(dup))
            duplicates.append(record)
            if self.on_duplicate is not None:
                self.on_duplicate(record)

        def unanswered(why: str) -> DNSResult:
            result = DNSResult(records.query(why, None, t0, tracer.now()))
            if self.on_answer is not None:
                self.on_answer(result)
            return result

        try:
            await loop.sock_connect(sock, (ip, port))
            await loop.sock_sendall(sock, query.wire)
            tracer.event(
                trace.WRITE_TO, t0=t0, address=address, num_bytes=len(query.wire), proto="udp"
            )
            deadline = loop.time() + self.timeout
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        data = await loop.sock_recv(sock, 65535)
                except TimeoutError:
                    break
                tracer.event(trace.READ_FROM, address=address, num_bytes=len(data), proto="udp")
                reply = parse_reply(data)  # each datagram is parsed once
                if reply is not None and matches(query, reply):
                    t_reply = tracer.now()
                    if first is None:
                        deadline = loop.time() + self.wait_duplicates
                        first = DNSResult(records.from_reply(data, reply, t0, t_reply))
                        if self.on_answer is not None:
                            self.on_answer(first)
                    else:
                        duplicate(data, reply, t_reply, False)
                elif reply is not None and matches(query, reply, check_id=False):
                    # same question, other id: kept, flagged, never the answer
                    duplicate(data, reply, tracer.now(), True)
        except asyncio.CancelledError:
            if first is None:
                unanswered(failures.GENERIC_TIMEOUT)
            raise
        except Exception as exc:
            failure = errors.classify(exc)
            tracer.event(trace.READ_FROM, address=address, failure=failure, proto="udp")
        finally:
            sock.close()
        result = first or unanswered(failure or failures.GENERIC_TIMEOUT)
        result.duplicates.extend(duplicates)
        tracer.event(
            trace.RESOLVE_DONE, t0=t0, t=result.query.t, address=address, failure=result.failure
        )
        return result
