"""Tracing added from outside: a measurement's event log, and the per-flow tracer a
primitive is given.

An :class:`EventLog` is one measurement's clock (times are float seconds since its start,
OONI df-008), its network events, and the source of its transaction ids (OONI ts-017: the
id ties the DNS/TCP/TLS/HTTP records of one flow together). A :class:`Tracer` is one flow
of that measurement: the log, one transaction id and the flow's tags. Every primitive in
``didban.net`` takes a tracer and stamps its records and events with it; it knows nothing
else about the measurement (probe-cli's ``measurexlite`` trace plays the same part).

A caller that does not measure (the test helper, the control client) passes nothing: the
default :data:`NO_TRACE` records no event, allocates no id (records carry id 0) and keeps
no list.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence

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


class EventLog:
    """Clock, transaction ids and network events of one measurement.

    At most ``max_events`` events are kept (a measurement that reads a huge body in
    small pieces must not grow without bound); later ones are dropped. Tracers append to
    ``events`` directly.
    """

    def __init__(self, *, max_events: int = 10_000) -> None:
        self.origin = time.monotonic()
        self.events: list[NetworkEvent] = []
        self.max_events = max_events
        self._ids: Iterator[int] = itertools.count(1)

    def now(self) -> float:
        """Seconds since the measurement started."""
        return time.monotonic() - self.origin

    def new_transaction_id(self) -> int:
        return next(self._ids)

    def flow(self, tags: Sequence[str] | None = None) -> Tracer:
        """A tracer for a new flow: the next transaction id, ``tags`` on its records."""
        return Tracer(self, self.new_transaction_id(), tags)

    def tagged(self, tags: Sequence[str] | None = None) -> Tracer:
        """A tracer with ``tags`` and no transaction of its own (id 0), for a composition
        that opens its flows itself (:meth:`Tracer.next`), as ``http.fetch`` does per hop."""
        return Tracer(self, 0, tags)


class Tracer:
    """One flow of a measurement: its log, transaction id and tags."""

    __slots__ = ("log", "tags", "transaction_id")
    recording = True  # False only for NO_TRACE

    def __init__(self, log: EventLog, transaction_id: int, tags: Sequence[str] | None) -> None:
        self.log = log
        self.transaction_id = transaction_id
        self.tags: tuple[str, ...] = tuple(tags) if tags else ()

    def now(self) -> float:
        """Seconds since the measurement started."""
        return time.monotonic() - self.log.origin

    def record_tags(self) -> list[str] | None:
        """The tags as a record carries them (a list of its own, or null)."""
        return list(self.tags) if self.tags else None

    def next(self) -> Tracer:
        """A new flow of the same measurement with the same tags (a new transaction id)."""
        return Tracer(self.log, self.log.new_transaction_id(), self.tags)

    def with_tags(self, tags: Sequence[str]) -> Tracer:
        """The same flow (same transaction id) with other tags."""
        return Tracer(self.log, self.transaction_id, tags)

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
    ) -> None:
        """Append one network event of this flow (``t`` defaults to now)."""
        events = self.log.events
        if not self.recording or len(events) >= self.log.max_events:
            return
        events.append(
            NetworkEvent(
                operation=operation,
                t=round(self.now() if t is None else t, 6),
                t0=None if t0 is None else round(t0, 6),
                failure=failure,
                address=address,
                num_bytes=num_bytes,
                proto=proto,
                tags=list(self.tags) if self.tags else None,
                transaction_id=self.transaction_id,
            )
        )


class _NoLog(EventLog):
    """The log of no measurement: a clock, no ids."""

    def new_transaction_id(self) -> int:
        return 0


class _Untraced(Tracer):
    """The do-nothing tracer: no events, no ids, no tags."""

    __slots__ = ()
    recording = False

    def next(self) -> Tracer:
        return self

    def with_tags(self, tags: Sequence[str]) -> Tracer:
        return self


NO_TRACE: Tracer = _Untraced(_NoLog(max_events=0), 0, None)
"""The default tracer of every primitive: a caller that does not measure pays nothing."""
