"""The explorer's views: each computes one page's data from the store's query layer
(``didban.store.queries``, the same functions the API answers with) and the saved
events, and returns a ``pages.Page``. Parameters are parsed by the API's query models
(``didban.api.filters``), so a page and the API take the same names and refuse the same
values with the same sentence.

Default windows end at the newest day of data (today on a live store), so a store of
older measurements (OONI's archive) opens on its data rather than on empty weeks.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, TypeVar

import msgspec
from babel import Locale
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams

from didban.api import events as api_events
from didban.api.filters import AggregationQuery, EventsQuery, ListingQuery
from didban.data import catalog
from didban.events import known as knownmod
from didban.events.saved import EventTable
from didban.store import daily, queries
from didban.store.store import Store
from didban.web.i18n import as_datetime
from didban.web.pages import Page, PageError, Where

Model = TypeVar("Model", bound=BaseModel)
GRID_DAYS: Final = 30
CALENDAR_DAYS: Final = 364  # 52 weeks
CURRENT_DAYS: Final = 7
SERVICE_DAYS: Final = 30
SEARCH_DAYS: Final = 30
PAGE_SIZE: Final = 50
MAX_DAYS: Final = 366  # a day-by-day page wider than a year is no longer readable


def parse(model: type[Model], params: QueryParams, **extra: Any) -> Model:
    """The query parameters as ``model`` (the API's), or a 400 naming the bad one."""
    raw: dict[str, Any] = {}
    for key in params:
        values = params.getlist(key)
        raw[key] = values if len(values) > 1 else values[0]
    raw.update(extra)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first: dict[str, Any] = dict(exc.errors()[0]) if exc.errors() else {}
        error = first.get("ctx", {}).get("error")
        if error is not None:
            raise PageError(400, str(error)) from None
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise PageError(400, f"{where}: {first.get('msg', 'invalid')}") from None


def country_name(cc: str, lang: str) -> str:
    return str(Locale(lang).territories.get(cc, cc))


def known_country(cc: str) -> str:
    """``cc`` upper-cased when it names a country or territory of CLDR (``ZZ``, OONI's
    unknown country, included); a page of any other code is a 404."""
    code = cc.upper()
    if len(code) != 2 or not code.isalpha():
        raise PageError(404, f"{cc!r} is not a country code like IR")
    if code not in Locale("en").territories:
        raise PageError(404, f"there is no country {code!r}: a country is a code like IR")
    return code


def newest_day(store: Store) -> date:
    """The newest day holding measurements (today when the store is empty)."""
    d = store.tables_root / "measurements"
    names = (
        sorted((n for n in os.listdir(d) if n.startswith("day=")), reverse=True)
        if d.exists()
        else []
    )
    for name in names:
        if any(n.endswith(".parquet") for n in os.listdir(d / name)):
            return date.fromisoformat(name[4:])
    return datetime.now(UTC).date()


def window(
    store: Store, params: QueryParams, parsed: AggregationQuery, days: int
) -> tuple[date, date]:
    """(first, last) days, inclusive: the parameters' ``since`` and ``until`` (exclusive,
    as in the API), or ``days`` days ending at the newest day of data."""
    since, until = parsed.days()
    if not params.get("until"):
        until = newest_day(store) + timedelta(days=1)
    if not params.get("since"):
        since = until - timedelta(days=days)
    if since >= until:
        raise PageError(400, "since must be before until")
    if (until - since).days > MAX_DAYS:
        raise PageError(400, f"a page shows at most {MAX_DAYS} days; narrow since and until")
    return since, until - timedelta(days=1)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _events(store: Store, **selection: Any) -> list[dict[str, Any]]:
    _, saved = api_events.selected(store.dir, **selection)
    return [
        {**msgspec_builtins(s.event), "first_seen": s.first_seen, "updated": s.changed}
        for s in saved
    ]


def msgspec_builtins(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(value)
    return out


def _service_names() -> dict[str, str]:
    return {s.id: s.name for s in catalog.services()}


# --- / -----------------------------------------------------------------------------------


def home(store: Store, where: Where, params: QueryParams) -> Page:
    last = newest_day(store)
    first = last - timedelta(days=CURRENT_DAYS - 1)
    measured = daily.countries(store.reader, first, last)
    for c in measured:
        c["name"] = country_name(c["probe_cc"], where.lang.code)
    countries = [c for c in measured if c["blocked"]]
    quiet = [c for c in measured if not c["blocked"]]
    recent = _events(
        store, cc=[], asn=[], targets=[], kind=[], since=None, until=None,
        min_confidence=0.5, limit=10,
    )  # fmt: skip
    rows, _ = queries.list_measurements(
        store.reader,
        queries.Filters(
            since=datetime.combine(first, time()),
            until=datetime.combine(last + timedelta(days=1), time()),
        ),
        "measurement_start_time",
        "desc",
        10,
        0,
    )
    return Page(
        "home.html.j2",
        where.lang.gettext("didban — internet censorship, measured"),
        {"since": first, "until": last, "countries": countries, "quiet": quiet, "events": recent,
         "latest": rows, "services": _service_names()},
        {"countries": [{**c, "blocked": [b["service"] for b in c["blocked"]]} for c in measured],
         "events": recent, "latest": rows},
        "didban-home",
    )  # fmt: skip


# --- /country/{cc} -------------------------------------------------------------------------


def _strip(
    calendar: dict[date, int], first: date, last: date, shutdowns: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The shutdown strip: each day's volume against the window's median, and the
    shutdown and outage events over it."""
    volumes = sorted(calendar.get(d, 0) for d in _days(first, last))
    median = volumes[len(volumes) // 2] if volumes else 0
    out = []
    for d in _days(first, last):
        n = calendar.get(d, 0)
        hit = [
            e["id"] for e in shutdowns
            if e["onset_before"][:10] <= str(d) and (e["resolved_before"] or "9999")[:10] >= str(d)
        ]  # fmt: skip
        level = "none" if n == 0 else ("low" if median and n < median / 4 else "normal")
        out.append({"day": d, "measurements": n, "level": level, "events": hit})
    return out


def _current_blocks(
    store: Store,
    cc: str,
    cells: list[dict[str, Any]],
    earliest: date,
    last: date,
    asns: list[int],
    names: dict[str, str],
    first_data: date | None,
) -> list[dict[str, Any]]:
    """The services whose latest day in the last ``CURRENT_DAYS`` days of the window was
    mostly blocked, with that day's main method, since when (looking back to
    ``earliest``), and a witness."""
    latest: dict[str, dict[str, Any]] = {}
    for c in cells:
        recent = last - timedelta(days=CURRENT_DAYS) < c["day"] <= last
        if (
            c["service"]
            and recent
            and (c["service"] not in latest or c["day"] > latest[c["service"]]["day"])
        ):
            latest[c["service"]] = c
    blocked = {s: c for s, c in latest.items() if c["state"] == "blocked"}
    since = daily.blocked_since(store.reader, cc, list(blocked), earliest, last, asns)
    witnesses = daily.latest_blocked(
        store.reader, cc, {s: c["day"] for s, c in blocked.items()}, asns
    )
    order = {s.id: k for k, s in enumerate(catalog.services())}
    return [
        {"service": s, "name": names.get(s, s), "method": c["method"], "day": c["day"],
         # a run that reaches the first day with data began then or earlier
         "since": since.get(s), "since_edge": since.get(s) == first_data,
         "share": round(c["blocked"] / c["measurements"], 3),
         "witness": witnesses.get(s)}
        for s, c in sorted(blocked.items(), key=lambda kv: order.get(kv[0], len(order)))
    ]  # fmt: skip


def country(store: Store, where: Where, params: QueryParams, cc: str) -> Page:
    cc = known_country(cc)
    parsed = parse(AggregationQuery, params)
    first, last = window(store, params, parsed, GRID_DAYS)
    asns = parsed.probe_asn
    year_first = last - timedelta(days=CALENDAR_DAYS - 1)
    cells = daily.grid(store.reader, cc, first, last, asns)
    year = daily.calendar(store.reader, cc, year_first, last, asns)
    names = _service_names()
    days = _days(first, last)
    by_key = {(c["service"], c["day"]): c for c in cells}
    services = [s.id for s in catalog.services()]
    services += sorted({c["service"] for c in cells} - set(services))
    rows = [
        {"service": s, "name": names.get(s, s) if s else None,
         "cells": [by_key.get((s, d)) for d in days]}
        for s in services
        if any((s, d) in by_key for d in days) or s in names
    ]  # fmt: skip
    calendar: dict[date, int] = {}
    blocked_days: dict[date, int] = {}
    for c in year:
        calendar[c["day"]] = int(c["measurements"])
        blocked_days[c["day"]] = int(c["blocked"])
    networks = daily.networks(store.reader, cc, first, last)
    until_dt = datetime.combine(last + timedelta(days=1), time())
    first_data = min((d for d, n in calendar.items() if n), default=None)
    blocks = _current_blocks(store, cc, cells, year_first, last, asns, names, first_data)
    shutdowns = _events(
        store, cc=[cc], asn=asns, targets=[], kind=["shutdown", "outage"],
        since=datetime.combine(first, time()), until=until_dt, min_confidence=0.5,
    )  # fmt: skip
    events = _events(
        store, cc=[cc], asn=asns, targets=[], kind=[],
        since=datetime.combine(first, time()), until=until_dt, min_confidence=0.5, limit=20,
    )  # fmt: skip
    cal_first = last - timedelta(days=CALENDAR_DAYS - 1)
    cal_first -= timedelta(days=(cal_first.weekday() + 2) % 7)  # weeks start on Saturday
    calendar_days = [
        {"day": d, "measurements": calendar.get(d, 0), "blocked": blocked_days.get(d, 0)}
        for d in _days(cal_first, last)
    ]
    peak = max(calendar.values(), default=0)
    series = {
        "days": [int(datetime.combine(d, time(), UTC).timestamp()) for d in days],
        "measurements": [calendar.get(d, 0) for d in days],
        "blocked_share": [
            round(blocked_days.get(d, 0) / calendar[d], 3) if calendar.get(d) else None
            for d in days
        ],
    }
    grid_rows = [
        {"service": c["service"] or None, "day": c["day"], "state": c["state"],
         "measurements": c["measurements"], "blocked": c["blocked"], "ok": c["ok"],
         "down": c["down"], "inconclusive": c["inconclusive"], "method": c["method"]}
        for c in cells
    ]  # fmt: skip
    name = country_name(cc, where.lang.code)
    return Page(
        "country.html.j2",
        name,
        {"cc": cc, "name": name, "since": first, "until": last, "probe_asn": asns,
         "days": days, "rows": rows, "networks": networks, "blocks": blocks,
         "calendar": calendar_days, "peak": peak, "events": events,
         "strip": _strip(calendar, first, last, shutdowns), "series": series},
        {"grid": grid_rows, "blocks": blocks, "networks": networks,
         "calendar": [c for c in calendar_days if c["measurements"]]},
        f"didban-country-{cc}",
        partial="_country_results.html.j2",
    )  # fmt: skip


# --- /service/{id} ---------------------------------------------------------------------------


def service(store: Store, where: Where, params: QueryParams, service_id: str) -> Page:
    try:
        svc = catalog.by_id(service_id)
    except KeyError:
        raise PageError(404, f"there is no service {service_id!r} in the catalog") from None
    parsed = parse(AggregationQuery, params)
    first, last = window(store, params, parsed, SERVICE_DAYS)
    cells = daily.service_days(store.reader, svc.id, first, last)
    by_cc: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        by_cc.setdefault(c["probe_cc"], []).append(c)
    countries = []
    for cc, items in sorted(by_cc.items(), key=lambda kv: -sum(c["measurements"] for c in kv[1])):
        total = sum(int(c["measurements"]) for c in items)
        blocked = sum(int(c["blocked"]) for c in items)
        methods = sorted({c["method"] for c in items if c["method"]})
        countries.append(
            {"probe_cc": cc, "name": country_name(cc, where.lang.code), "measurements": total,
             "blocked": blocked, "methods": methods, "latest": items[-1],
             "days": [{"day": c["day"], "state": c["state"], "method": c["method"],
                       "measurements": c["measurements"]} for c in items]}
        )  # fmt: skip
    until_dt = datetime.combine(last + timedelta(days=1), time())
    events = _events(
        store, cc=[], asn=[], targets=[svc.id], kind=[], since=datetime.combine(first, time()),
        until=until_dt, min_confidence=0.5, limit=50,
    )  # fmt: skip
    known = [
        {"id": k.id, "kind": k.kind, "cc": k.cc, "start": k.start_text, "end": k.end_text,
         "description": k.description, "source": k.source}
        for k in knownmod.select(knownmod.load(), None, svc.id)
    ]  # fmt: skip
    inputs = queries.aggregate(
        store.reader,
        queries.Filters(
            service=[svc.id],
            since=until_dt - timedelta(days=CURRENT_DAYS),
            until=until_dt,
        ),
        "input",
        "probe_cc",
        "day",
    )
    return Page(
        "service.html.j2",
        svc.name,
        {"service": svc.id, "name": svc.name, "category_code": svc.category,
         "domains": list(svc.domains), "urls": list(svc.urls), "since": first, "until": last,
         "countries": countries, "events": events, "known": known, "inputs": inputs},
        {"days": [{k: v for k, v in c.items()} for c in cells], "inputs": inputs,
         "events": events, "known": known},
        f"didban-service-{svc.id}",
    )  # fmt: skip


# --- /event/{id} -----------------------------------------------------------------------------


def event(store: Store, where: Where, params: QueryParams, event_id: str) -> Page:
    saved = None
    if EventTable.exists(store.dir):
        with EventTable(store.dir, readonly=True) as table:
            saved = table.get(event_id)
    if saved is None:
        raise PageError(404, f"there is no event {event_id!r}")
    e = msgspec_builtins(saved.event)
    k = next((k for k in knownmod.load() if k.id == saved.event.known_event), None)
    known = None
    if k is not None:
        known = {"id": k.id, "kind": k.kind, "cc": k.cc, "asns": list(k.asns),
                 "targets": list(k.targets), "start": k.start_text, "end": k.end_text,
                 "description": k.description, "source": k.source, "caveat": k.caveat}  # fmt: skip
    witnesses = [{"measurement_uid": u} for u in saved.event.witnesses]
    target = saved.event.target
    return Page(
        "event.html.j2",
        f"{saved.event.kind} · {target or saved.event.cc}",
        {"event": e, "first_seen": saved.first_seen, "updated": saved.changed,
         "retracted": saved.retracted, "known": known, "witnesses": witnesses,
         "service_name": _service_names().get(target or ""),
         "feeds": {"country": f"/feeds/country/{saved.event.cc}.atom",
                   "target": f"/feeds/target/{target}.atom" if target else None}},
        {"witnesses": witnesses, "asns": [{"probe_asn": a} for a in saved.event.asns]},
        f"didban-event-{event_id}",
    )  # fmt: skip


# --- /timeline/{cc} ---------------------------------------------------------------------------


def _bars(
    entries: list[dict[str, Any]], since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None, list[dict[str, Any]]]:
    """The axis (first, last) and each entry's bar on it, in percent: the window when one
    is given, else from the first start to the last end (now for what is ongoing, the start
    for an outage whose end was not recorded); each bar's label goes after it, before it,
    or inside it, where there is room."""
    now = datetime.now(UTC).replace(tzinfo=None)
    spans = [
        (start, as_datetime(e["end"]) or (now if e["open_ended"] else start))
        for e in entries
        if (start := as_datetime(e["start"]))
    ]
    if not spans:
        return None, None, []
    lo = since or min(s for s, _ in spans)
    hi = until or max(e for _, e in spans)
    width = max((hi - lo).total_seconds(), 3600.0)
    bars = []
    for start, end in spans:
        left = min(max((start - lo).total_seconds() / width, 0.0), 1.0)
        right = min(max((end - lo).total_seconds() / width, 0.0), 1.0)
        bar = {"left": round(100 * left, 2), "width": round(max(100 * (right - left), 0.6), 2)}
        side = "after" if right <= 0.55 else "before" if left >= 0.45 else "inside"
        bars.append({**bar, "side": side})
    return lo, hi, bars


def _ticks(lo: datetime | None, hi: datetime | None, most: int = 8) -> list[dict[str, Any]]:
    """Dates to mark under the timeline's bars, at most ``most``: years over two years,
    months over two months, else days; each with its place in percent."""
    if lo is None or hi is None or hi <= lo:
        return []
    span = (hi - lo).total_seconds()
    days = span / 86400
    marks: list[tuple[datetime, str]] = []
    if days >= 730:
        marks = [(datetime(y, 1, 1), str(y)) for y in range(lo.year + 1, hi.year + 1)]
    elif days >= 60:
        y, m = lo.year, lo.month
        while True:
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
            if datetime(y, m, 1) > hi:
                break
            marks.append((datetime(y, m, 1), f"{y}-{m:02d}"))
    else:
        first = datetime(lo.year, lo.month, lo.day) + timedelta(days=1)
        each = (first + timedelta(days=i) for i in range(int(days) + 1))
        marks = [(t, t.date().isoformat()) for t in each if t <= hi]
    step = max(1, -(-len(marks) // most))
    return [
        {"left": round(100 * (t - lo).total_seconds() / span, 2), "text": text}
        for t, text in marks[::step]
        if (t - lo).total_seconds() / span <= 0.92  # room for the label
    ]


def timeline(store: Store, where: Where, params: QueryParams, cc: str) -> Page:
    parsed = parse(EventsQuery, params, probe_cc=known_country(cc))
    cc = parsed.probe_cc[0]
    entries = [
        e.row()
        for e in api_events.timeline_entries(
            store.dir, cc, parsed.probe_asn, parsed.targets(), parsed.since, parsed.until,
            parsed.min_confidence,
        )
        if not parsed.kind or e.kind in parsed.kind
    ]  # fmt: skip
    lo, hi, bars = _bars(entries, parsed.since, parsed.until)
    name = country_name(cc, where.lang.code)
    return Page(
        "timeline.html.j2",
        name,
        {"cc": cc, "name": name, "entries": entries, "bars": bars, "first": lo, "last": hi,
         "ticks": _ticks(lo, hi),
         "kinds": parsed.kind, "service": parsed.service, "domain": parsed.domain,
         "since": params.get("since") or "", "until": params.get("until") or "",
         "services": _service_names()},
        {"entries": entries},
        f"didban-timeline-{cc}",
        partial="_timeline_results.html.j2",
    )  # fmt: skip


# --- /search ---------------------------------------------------------------------------------


def search(store: Store, where: Where, params: QueryParams) -> Page:
    extra: dict[str, Any] = {"limit": params.get("limit") or PAGE_SIZE}
    if not params.get("report_id"):
        # a bounded range of days, read from its newest end (nothing lies past the newest)
        last = newest_day(store)
        if not params.get("until"):
            extra["until"] = str(last + timedelta(days=1))
        if not params.get("since") and not params.get("until"):
            extra["since"] = str(last - timedelta(days=SEARCH_DAYS - 1))
    parsed = parse(ListingQuery, params, **extra)
    rows, total = queries.list_measurements(
        store.reader, parsed.filters(), parsed.order_by, parsed.order, parsed.limit, parsed.offset
    )
    form = {
        "domain": ",".join(parsed.domain), "input": parsed.input or "",
        "service": ",".join(parsed.service), "probe_cc": ",".join(parsed.probe_cc),
        "probe_asn": ",".join(f"AS{a}" for a in parsed.probe_asn),
        "since": params.get("since") or extra.get("since", ""),
        "until": params.get("until") or extra.get("until", ""),
        "anomaly": params.get("anomaly") or "",
    }  # fmt: skip
    nxt = parsed.offset + parsed.limit if parsed.offset + parsed.limit < total else None
    prev = max(parsed.offset - parsed.limit, 0) if parsed.offset else None
    return Page(
        "search.html.j2",
        where.lang.gettext("Search measurements"),
        {"form": form, "results": rows, "count": total, "offset": parsed.offset,
         "limit": parsed.limit, "next": nxt, "prev": prev, "services": _service_names()},
        {"measurements": rows},
        "didban-search",
        partial="_search_results.html.j2",
    )  # fmt: skip
