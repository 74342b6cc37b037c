"""Atom feeds of the saved events: all, per country, per target.

``/feeds/events.atom``, ``/feeds/country/{cc}.atom``, ``/feeds/target/{target}.atom``
(``application/atom+xml``): the ``FEED_SIZE`` most recently changed current events of
confidence ≥ 0.5 (suspected artefacts are left out, as from the alerts), rendered by
``didban.events.atom``. A feed with no event yet is a valid empty feed, so a reader can
subscribe before anything happens.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from didban.api.events import ERRORS, event_url, selected
from didban.api.filters import CountryPath, TargetPath
from didban.events import atom
from didban.events.saved import EventTable

FEED_SIZE: Final = 50
MIN_CONFIDENCE: Final = 0.5

_ATOM: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "An Atom 1.0 feed (RFC 4287)",
        "content": {atom.MEDIA_TYPE: {"schema": {"type": "string"}}},
    }
}


def _last_run(data_dir: Path) -> str | None:
    if not EventTable.exists(data_dir):
        return None
    with EventTable(data_dir, readonly=True) as table:
        return table.last_run()


def router(data_dir: Path) -> APIRouter:
    r = APIRouter(tags=["feeds"])

    async def feed(
        request: Request,
        title: str,
        *,
        cc: list[str],
        targets: list[str],
        listing: dict[str, str],
    ) -> Response:
        _, rows = await run_in_threadpool(
            partial(
                selected,
                data_dir,
                cc=cc,
                asn=[],
                targets=targets,
                kind=[],
                since=None,
                until=None,
                min_confidence=MIN_CONFIDENCE,
                order="changed",
                limit=FEED_SIZE,
            )
        )
        last_run = await run_in_threadpool(_last_run, data_dir)
        base = str(request.base_url).rstrip("/")
        query = urlencode({**listing, "min_confidence": MIN_CONFIDENCE})
        body = atom.render(
            rows,
            feed_title=title,
            feed_url=f"{base}{request.url.path}",
            alternate_url=f"{base}/api/v1/events?{query}",
            event_url=lambda event_id: event_url(request, event_id),
            last_run=last_run,
        )
        return Response(body, media_type=atom.MEDIA_TYPE)

    @r.get(
        "/feeds/events.atom",
        summary="Atom feed of every event",
        response_class=Response,
        responses=_ATOM,
    )
    async def all_events(request: Request) -> Response:
        return await feed(request, "didban: events", cc=[], targets=[], listing={})

    @r.get(
        "/feeds/country/{probe_cc}.atom",
        summary="Atom feed of one country's events",
        response_class=Response,
        responses={**_ATOM, 400: ERRORS[400]},
    )
    async def country(request: Request, probe_cc: CountryPath) -> Response:
        return await feed(
            request,
            f"didban: events in {probe_cc}",
            cc=[probe_cc],
            targets=[],
            listing={"probe_cc": probe_cc},
        )

    @r.get(
        "/feeds/target/{target}.atom",
        summary="Atom feed of one target's events (a service id or a domain)",
        response_class=Response,
        responses={**_ATOM, 400: ERRORS[400]},
    )
    async def target(request: Request, target: TargetPath) -> Response:
        key = "domain" if "." in target else "service"
        return await feed(
            request,
            f"didban: events of {target}",
            cc=[],
            targets=[target],
            listing={key: target},
        )

    return r
