"""A STUN Binding request (RFC 5389) over UDP to a chosen ``ip:port``, traced.

The request is the 20-byte header alone (type 0x0001, length 0, the magic cookie
0x2112A442, a random 96-bit transaction id), sent on a connected UDP socket and resent
after 0.5, 1 and 2 s (RFC 5389 §7.2.1's RTO doubling, shortened to the caller's
deadline). The first reply whose cookie and transaction id match ends the exchange: a
Binding Success (0x0101) or Error (0x0111) response. Replies with another transaction id
are ignored, as the RFC requires.

The reply carries the client's public address (XOR-MAPPED-ADDRESS): it is parsed to check
the reply, returned to the caller, and never written into an event (OONI ts-025's privacy
note). Events: ``connect`` (proto udp), ``write_to`` per datagram sent, ``read_from`` per
datagram received — sizes and times only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, Final

from didban.model import failures
from didban.net import errors, guard, trace
from didban.net.stream import format_address
from didban.net.trace import NO_TRACE, Tracer

MAGIC_COOKIE: Final = 0x2112A442
BINDING_REQUEST: Final = 0x0001
BINDING_SUCCESS: Final = 0x0101
BINDING_ERROR: Final = 0x0111
ATTR_MAPPED_ADDRESS: Final = 0x0001
ATTR_XOR_MAPPED_ADDRESS: Final = 0x0020
RETRANSMIT_AFTER: Final = (0.5, 1.0, 2.0)  # seconds after the previous send
DEFAULT_TIMEOUT: Final = 5.0
RESPONSE_TYPES: Final = {BINDING_SUCCESS: "binding_success", BINDING_ERROR: "binding_error"}


class StunError(ValueError):
    """A datagram that is not a STUN response to our request."""


def binding_request(transaction_id: bytes) -> bytes:
    """The 20-byte Binding request with ``transaction_id`` (12 bytes)."""
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id is 12 bytes")
    return struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE) + transaction_id


@dataclass(frozen=True)
class Response:
    """A parsed response: its type and, for a success, the mapped address."""

    message_type: int
    mapped: tuple[str, int] | None

    @property
    def kind(self) -> str:
        return RESPONSE_TYPES.get(self.message_type, f"0x{self.message_type:04x}")


def parse_response(data: bytes, transaction_id: bytes) -> Response:
    """The response to ``transaction_id`` in ``data``; :class:`StunError` otherwise."""
    if len(data) < 20:
        raise StunError(f"{len(data)} bytes: shorter than a STUN header")
    mtype, length, cookie = struct.unpack_from("!HHI", data)
    if mtype & 0xC000 or cookie != MAGIC_COOKIE:
        raise StunError("not a STUN message (bad leading bits or magic cookie)")
    if data[8:20] != transaction_id:
        raise StunError("a response to another transaction")
    if length != len(data) - 20 or length % 4:
        raise StunError(f"message length {length} does not match the {len(data)}-byte datagram")
    mapped: tuple[str, int] | None = None
    offset = 20
    while offset + 4 <= len(data):
        atype, alen = struct.unpack_from("!HH", data, offset)
        value = data[offset + 4 : offset + 4 + alen]
        if len(value) < alen:
            raise StunError(f"attribute 0x{atype:04x} runs past the message")
        if atype in (ATTR_XOR_MAPPED_ADDRESS, ATTR_MAPPED_ADDRESS) and mapped is None:
            mapped = _address(value, atype == ATTR_XOR_MAPPED_ADDRESS, transaction_id)
        offset += 4 + alen + (-alen % 4)
    if mtype == BINDING_SUCCESS and mapped is None:
        raise StunError("a Binding success without a mapped address")
    return Response(mtype, mapped)


def _address(value: bytes, xor: bool, transaction_id: bytes) -> tuple[str, int]:
    if len(value) < 8:
        raise StunError("a mapped address shorter than 8 bytes")
    family, port = value[1], struct.unpack_from("!H", value, 2)[0]
    raw = value[4:]
    if xor:
        port ^= MAGIC_COOKIE >> 16
        mask = struct.pack("!I", MAGIC_COOKIE) + transaction_id
        raw = bytes(b ^ mask[i] for i, b in enumerate(raw))
    if family == 0x01 and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw)), port
    if family == 0x02 and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw)), port
    raise StunError(f"a mapped address of unknown family 0x{family:02x}")


@dataclass
class STUNResult:
    """What one Binding transaction gave: a failure string (None when a response came),
    the response, and the seconds from the first request to it."""

    address: str
    failure: str | None
    response: Response | None = None
    rtt: float | None = None


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, tracer: Tracer, address: str, transaction_id: bytes) -> None:
        self.tracer, self.address, self.transaction_id = tracer, address, transaction_id
        self.answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.ignored = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.tracer.event(trace.READ_FROM, address=self.address, num_bytes=len(data), proto="udp")
        if self.answer.done():
            return
        try:
            self.answer.set_result(parse_response(data, self.transaction_id))
        except StunError:
            self.ignored += 1  # RFC 5389 §7.3: silently discarded

    def error_received(self, exc: Exception) -> None:
        self.tracer.event(
            trace.READ_FROM, address=self.address, failure=errors.classify(exc), proto="udp"
        )
        if not self.answer.done():
            self.answer.set_exception(exc)
            self.answer.exception()  # retrieved: the caller may be gone

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc or ConnectionAbortedError("socket closed"))
            self.answer.exception()


async def binding(
    ip: str, port: int, *, tracer: Tracer = NO_TRACE, timeout: float = DEFAULT_TIMEOUT
) -> STUNResult:
    """One Binding transaction with ``ip:port`` within ``timeout`` seconds.

    Never raises for network failures; raises ``guard.NetworkGuardError`` when the guard
    forbids the destination.
    """
    address = format_address(ip, port)
    guard.check(ip)
    transaction_id = os.urandom(12)
    request = binding_request(transaction_id)
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    t0 = tracer.now()
    try:
        transport, receiver = await loop.create_datagram_endpoint(
            lambda: _Receiver(tracer, address, transaction_id),
            remote_addr=(ip, port),
            family=family,
        )
    except OSError as exc:
        refused = errors.classify(exc)
        tracer.event(trace.CONNECT, t0=t0, address=address, failure=refused, proto="udp")
        return STUNResult(address, refused)
    tracer.event(trace.CONNECT, t0=t0, address=address, proto="udp")
    started = loop.time()
    failure: str | None = None
    response: Response | None = None
    try:
        async with asyncio.timeout(timeout):
            waits = iter((*RETRANSMIT_AFTER, None))
            while response is None:
                transport.sendto(request)
                tracer.event(trace.WRITE_TO, address=address, num_bytes=len(request), proto="udp")
                wait = next(waits, None)
                try:
                    response = await asyncio.wait_for(asyncio.shield(receiver.answer), wait)
                except TimeoutError:
                    continue
    except TimeoutError:
        failure = failures.GENERIC_TIMEOUT
    except Exception as exc:
        failure = errors.classify(exc)
    finally:
        transport.close()
    rtt = round(loop.time() - started, 6) if response is not None else None
    if response is not None and response.message_type != BINDING_SUCCESS:
        failure = failures.unknown(f"STUN {response.kind}")
    return STUNResult(address, failure, response, rtt)
