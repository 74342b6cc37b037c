"""Event endpoints: ``/api/v1/events``, ``/api/v1/events/{id}``, ``/api/v1/timeline``.

They serve the events ``didban events detect`` saved in the data directory
(``didban.events.saved``: one row per event id, a retracted event answerable by id but out
of the listings) — never a detection run per request: an event's URL must give the same
answer tomorrow and a run over 10 M verdicts takes seconds (docs/events.md, "Served
events"). The parameters are parsed by ``api.filters`` (``EventsQuery``, ``TimelineQuery``,
``EventIdPath``); the response models below are what ``/openapi.json`` shows.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from didban.api.contract import errors
from didban.api.filters import EventIdPath, EventsQuery, TimelineQuery
from didban.events import known as knownmod
from didban.events import timeline as timelinemod
from didban.events.record import iso
from didban.events.saved import EventTable, Saved
from didban.events.series import Filters

ERRORS: Final = errors(400, 404)


class EventRecord(BaseModel):
    """One event (docs/events.md "Event format") and where it lives."""

    id: str = Field(examples=["ev-3e99eeb8ad76504a"])
    kind: str = Field(examples=["block"], description="block, unblock, shutdown, outage, nin")
    cc: str = Field(examples=["IR"])
    asns: list[int]
    target: str | None = Field(description="service id or domain; null for network events")
    layer: str | None
    method: str | None = Field(examples=["tls.sni.reset"])
    onset_after: str | None = Field(description="last normal observation (ISO 8601 UTC)")
    onset_before: str = Field(description="first changed observation (ISO 8601 UTC)")
    resolved_after: str | None
    resolved_before: str | None = Field(description="null while ongoing")
    confidence: float
    n_measurements: int
    n_probes: int
    witnesses: list[str] = Field(description="measurement uids (at most 20)")
    source: str = Field(examples=["didban"])
    known_event: str | None = Field(description="id of the matching known event")
    url: str = Field(description="this event's URL")
    first_seen: str = Field(description="when detection first saved it")
    updated: str = Field(description="when its saved content last changed")
    retracted: str | None = Field(
        description="when a complete detection run no longer found it (null: current)"
    )


class PageMetadata(BaseModel):
    count: int = Field(description="events matching the filters")
    limit: int
    offset: int
    next_url: str | None


class EventList(BaseModel):
    metadata: PageMetadata
    results: list[EventRecord]


class Witness(BaseModel):
    measurement_uid: str
    measurement_url: str


class KnownEventRecord(BaseModel):
    """A row of the known-events dataset (``data/known-events.csv``)."""

    id: str
    kind: str
    cc: str
    asns: list[int]
    targets: list[str]
    start: str = Field(description="as the source dates it: a year, month, day or time")
    end: str
    description: str
    source: str
    caveat: str


class EventDetail(EventRecord):
    witness_measurements: list[Witness]
    known: KnownEventRecord | None = Field(description="the known event it matches")


class TimelineEntry(BaseModel):
    origin: str = Field(description="known or detected")
    id: str
    kind: str
    cc: str
    targets: list[str]
    asns: list[int]
    start: str | None
    end: str | None = Field(description="null: ongoing or not reported")
    label: str
    known_event: str | None
    source: str
    open_ended: bool = Field(
        description="no end and it may still hold: a detected event not resolved, or a "
        "known block or throttle without a recorded end; false for a known outage or "
        "shutdown without one (an interruption that ended, when is not recorded)"
    )
    url: str | None = Field(description="the detected event's URL (null for known events)")


class Timeline(BaseModel):
    probe_cc: str
    since: str | None
    until: str | None
    entries: list[TimelineEntry]


def _get(data_dir: Path, event_id: str) -> Saved | None:
    if not EventTable.exists(data_dir):
        return None
    with EventTable(data_dir, readonly=True) as table:
        return table.get(event_id)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def event_url(request: Request, event_id: str) -> str:
    return f"{_base(request)}/api/v1/events/{event_id}"


def record(request: Request, s: Saved) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.to_builtins(s.event)
    body.update(
        url=event_url(request, s.event.id),
        first_seen=s.first_seen,
        updated=s.changed,
        retracted=s.retracted,
    )
    return body


def selected(
    data_dir: Path,
    *,
    cc: list[str],
    asn: list[int],
    targets: list[str],
    kind: list[str],
    since: datetime | None,
    until: datetime | None,
    min_confidence: float,
    order: str = "onset",
    limit: int | None = None,
    offset: int = 0,
) -> tuple[int, list[Saved]]:
    """(how many, one page of) the saved, current events matching the filters (a domain
    matches its catalog service's events; ``saved.EventTable.query``)."""
    if not EventTable.exists(data_dir):
        return 0, []
    with EventTable(data_dir, readonly=True) as table:
        return table.query(
            Filters(cc, asn, targets, since, until, kind),
            min_confidence=min_confidence,
            order=order,
            limit=limit,
            offset=offset,
        )


def timeline_entries(
    data_dir: Path,
    cc: str,
    asn: list[int],
    targets: list[str],
    since: datetime | None,
    until: datetime | None,
    min_confidence: float,
) -> list[timelinemod.Entry]:
    """Known (``data/known-events.csv``) and saved detected events of ``cc`` on one axis
    (``/api/v1/timeline`` and the explorer's ``/timeline/{cc}``)."""
    _, rows = selected(
        data_dir,
        cc=[cc],
        asn=asn,
        targets=targets,
        kind=[],
        since=since,
        until=until,
        min_confidence=min_confidence,
    )
    known = knownmod.select(knownmod.load(), cc, None, since, until)
    if targets:
        known = [k for k in known if any(knownmod.target_matches(t, k.targets) for t in targets)]
    if asn:
        wanted = set(asn)
        known = [k for k in known if not k.asns or wanted & set(k.asns)]
    return timelinemod.entries(known, [s.event for s in rows])


def router(data_dir: Path) -> APIRouter:
    r = APIRouter(tags=["events"])

    @r.get(
        "/api/v1/events",
        summary="Saved events (the aggregation's filters, plus kind)",
        response_model=EventList,
        responses={400: ERRORS[400]},
    )
    async def list_events(request: Request, params: Annotated[EventsQuery, Query()]) -> Any:
        limit, offset = params.limit, params.offset
        total, rows = await run_in_threadpool(
            partial(
                selected,
                data_dir,
                cc=params.probe_cc,
                asn=params.probe_asn,
                targets=params.targets(),
                kind=params.kind,
                since=params.since,
                until=params.until,
                min_confidence=params.min_confidence,
                limit=limit,
                offset=offset,
            )
        )
        next_url = None
        if offset + limit < total:
            next_url = str(request.url.include_query_params(offset=offset + limit))
        return {
            "metadata": {"count": total, "limit": limit, "offset": offset, "next_url": next_url},
            "results": [record(request, s) for s in rows],
        }

    @r.get(
        "/api/v1/events/{event_id}",
        summary="One event, with its witnesses and the known event it matches",
        response_model=EventDetail,
        responses=ERRORS,
    )
    async def one_event(request: Request, event_id: EventIdPath) -> Any:
        s = await run_in_threadpool(_get, data_dir, event_id)
        if s is None:
            raise HTTPException(404, f"there is no event {event_id!r}")
        body = record(request, s)
        base = _base(request)
        body["witness_measurements"] = [
            {"measurement_uid": u, "measurement_url": f"{base}/api/v1/measurement/{u}"}
            for u in s.event.witnesses
        ]
        body["known"] = None
        if s.event.known_event:
            k = next((k for k in knownmod.load() if k.id == s.event.known_event), None)
            if k is not None:
                body["known"] = {
                    "id": k.id,
                    "kind": k.kind,
                    "cc": k.cc,
                    "asns": list(k.asns),
                    "targets": list(k.targets),
                    "start": k.start_text,
                    "end": k.end_text,
                    "description": k.description,
                    "source": k.source,
                    "caveat": k.caveat,
                }
        return body

    @r.get(
        "/api/v1/timeline",
        summary="Known and detected events of one country on one axis",
        response_model=Timeline,
        responses={400: ERRORS[400]},
    )
    async def timeline(request: Request, params: Annotated[TimelineQuery, Query()]) -> Any:
        items = await run_in_threadpool(
            partial(
                timeline_entries,
                data_dir,
                params.probe_cc,
                params.probe_asn,
                params.targets(),
                params.since,
                params.until,
                params.min_confidence,
            )
        )
        entries = []
        for item in items:
            row = item.row()
            row["url"] = event_url(request, item.id) if item.origin == "detected" else None
            entries.append(row)
        return {
            "probe_cc": params.probe_cc,
            "since": iso(params.since),
            "until": iso(params.until),
            "entries": entries,
        }

    return r
