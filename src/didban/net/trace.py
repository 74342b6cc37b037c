"""The per-measurement tracer: one time origin, transaction ids and OONI network events.

Every primitive in ``didban.net`` takes a :class:`Trace`. Times (``t0``, ``t``) are float
seconds since the trace's origin (the measurement start, OONI df-008); transaction ids tie
the DNS/TCP/TLS/HTTP records of one flow together (OONI ts-017).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

from didban.model.ooni import NetworkEvent

# OONI df-008 operations and probe-cli's markers.
CONNECT = "connect"
WRITE = "write"
READ = "read"
READ_FROM = "read_from"
WRITE_TO = "write_to"
TLS_HANDSHAKE_START = "tls_handshake_start"
TLS_HANDSHAKE_DONE = "tls_handshake_done"
RESOLVE_START = "resolve_start"
RESOLVE_DONE = "resolve_done"
HTTP_TRANSACTION_START = "http_transaction_start"
HTTP_TRANSACTION_DONE = "http_transaction_done"
QUIC_HANDSHAKE_START = "quic_handshake_start"
QUIC_HANDSHAKE_DONE = "quic_handshake_done"


class Trace:
    """Clock, id source and event log of one measurement.

    ``origin`` is a ``time.monotonic()`` value (default: now). ``record_events=False``
    keeps the counters but no event list (the test helper reads 16 MiB bodies and needs
    no trace). Byte counters count application payload read and written on sockets.
    """

    def __init__(
        self,
        origin: float | None = None,
        *,
        first_transaction_id: int = 1,
        record_events: bool = True,
        max_events: int = 10_000,
    ) -> None:
        self.origin = time.monotonic() if origin is None else origin
        self.events: list[NetworkEvent] = []
        self.record_events = record_events
        self.max_events = max_events
        self.dropped_events = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self._ids: Iterator[int] = itertools.count(first_transaction_id)

    def now(self) -> float:
        """Seconds since the origin."""
        return time.monotonic() - self.origin

    def new_transaction_id(self) -> int:
        return next(self._ids)

    def event(
        self,
        operation: str,
        *,
        t0: float | None = None,
        t: float | None = None,
        address: str | None = None,
        failure: str | None = None,
        num_bytes: int | None = None,
        proto: str | None = None,
        tags: list[str] | None = None,
        transaction_id: int | None = None,
    ) -> None:
        """Append one event (``t`` defaults to now) and update the byte counters."""
        if num_bytes:
            if operation in (READ, READ_FROM):
                self.bytes_received += num_bytes
            elif operation in (WRITE, WRITE_TO):
                self.bytes_sent += num_bytes
        if not self.record_events:
            return
        if len(self.events) >= self.max_events:
            self.dropped_events += 1
            return
        self.events.append(
            NetworkEvent(
                operation=operation,
                t=round(self.now() if t is None else t, 6),
                t0=None if t0 is None else round(t0, 6),
                failure=failure,
                address=address,
                num_bytes=num_bytes,
                proto=proto,
                tags=list(tags) if tags else None,
                transaction_id=transaction_id,
            )
        )
