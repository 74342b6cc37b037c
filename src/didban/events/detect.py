"""Detection end to end: a source (the store, an OONI aggregation file, an IODA export) → events.

``detect_store`` reads the verdicts into a dense grid (``series``), runs the detector on
every target series (blocks), every network (NIN isolation, ``shutdown`` verdicts) and every
volume series (silence), clusters the findings into events (``cluster``), fills in the
evidence from the verdicts (measurement and probe counts, witnesses, dominant layer and
method) and matches the known events. ``detect_ooni`` and ``detect_ioda`` do the same for
outside data. Each is a pure function of its input and filters: run twice, or after a
backfill, it gives the same events. ``select`` filters event records the way the API's
``/api/v1/events`` will (the aggregation filters plus ``kind``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import pyarrow as pa

from didban.events import known as knownmod
from didban.events import readers, series
from didban.events.cluster import Cluster, Finding, cluster
from didban.events.detector import (
    BlockParams,
    Episode,
    VolumeParams,
    detect_blocks,
    detect_drops,
    ioda_params,
    ratio_drops,
)
from didban.events.grid import Grid
from didban.events.methods import METHODS
from didban.events.record import WITNESS_CAP, Event, Kind, parse_iso
from didban.events.series import Filters, VerdictSource

Progress = Callable[[str], None]
SOURCE: Final = "didban"


@dataclass(frozen=True)
class Settings:
    step: timedelta = timedelta(hours=1)
    block: BlockParams = field(default_factory=BlockParams)
    volume: VolumeParams = field(default_factory=VolumeParams)
    by_resolver: bool = False
    match_known: bool = True
    method: str = "cusum"  # a key of methods.METHODS (the others are for comparison)
    min_confidence: float = 0.5  # weaker events are dropped (suspected artefacts are kept)


def _keep(pairs: list[tuple[Cluster, Event]], settings: Settings) -> list[tuple[Cluster, Event]]:
    return [(c, e) for c, e in pairs if c.artefact or e.confidence >= settings.min_confidence]


@dataclass
class Result:
    events: list[Event]
    n_series: int = 0
    n_buckets: int = 0
    n_verdicts: int = 0
    n_findings: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _quiet(_: str) -> None:
    return None


def _finding(
    g: Grid,
    ep: Episode,
    kind: Kind,
    source: str,
    asn: int | None,
    target: str | None,
    support: np.ndarray | None,
) -> Finding:
    """A finding with the episode's brackets turned into bucket-edge times: the change
    happened after the start of the last normal bucket and before the end of the first
    changed one."""
    step = g.step
    if kind == "unblock":
        before_b, after_b = ep.resolved_before, ep.resolved_after
        assert before_b is not None
        onset_after = g.time(after_b) if after_b is not None else None
        onset_before = g.time(before_b) + step
        resolved_after = resolved_before = None
        span = (before_b, g.n_buckets)
    else:
        onset_after = g.time(ep.onset_after) if ep.onset_after is not None else None
        onset_before = g.time(ep.onset_before) + step
        resolved_after = g.time(ep.resolved_after) if ep.resolved_after is not None else None
        resolved_before = (
            g.time(ep.resolved_before) + step if ep.resolved_before is not None else None
        )
        if resolved_after is None and resolved_before is not None:
            resolved_after = onset_after
        span = (ep.onset_before, ep.resolved_before or g.n_buckets)
    n = int(support[ep.series, span[0] : span[1]].sum()) if support is not None else 0
    return Finding(
        kind=kind,
        cc=str(g.keys[ep.series][0]),
        asn=asn,
        target=target,
        onset_after=onset_after,
        onset_before=onset_before,
        resolved_after=resolved_after,
        resolved_before=resolved_before,
        strength=ep.strength,
        source=source,
        n_measurements=n,
        detected=g.time(ep.detected) + step,
    )


def findings(g: Grid, settings: Settings, source: str = SOURCE) -> list[Finding]:
    """Every finding of a target grid (keys cc, asn, target, resolver): blocks, unblocks,
    NIN isolation, shutdowns (verdicts and silence) and outages."""
    out: list[Finding] = []
    if g.n_series == 0:
        return out
    total = g["ok"] + g["blocked"]
    if settings.method == "cusum":
        episodes = detect_blocks(g["blocked"], total, settings.block)
    else:
        episodes = METHODS[settings.method](g["blocked"], total)
    for ep in episodes:
        if ep.initial and ep.resolved_before is None:
            continue  # blocked throughout the window: no change to report
        _, asn, target, _ = g.keys[ep.series]
        kind: Kind = "unblock" if ep.initial else "block"
        out.append(_finding(g, ep, kind, source, asn, target, total))
    if "isolated" in g.counts:
        net = series.rollup(g, ("cc", "asn"))
        all_n = net["ok"] + net["blocked"] + net["isolated"] + net["shutdown"]
        net_kinds: tuple[tuple[str, Kind], ...] = (("isolated", "nin"), ("shutdown", "shutdown"))
        for name, kind in net_kinds:
            for ep in detect_blocks(net[name], all_n, settings.block):
                asn = net.keys[ep.series][1]
                out.append(_finding(net, ep, kind, source, asn, None, net[name]))
    vol_cc = series.volume(g, ("cc",)) if "n" not in g.counts else _sum(g, ("cc",))
    for ep in detect_drops(vol_cc["n"], g.step, settings.volume):
        out.append(_finding(vol_cc, ep, "shutdown", source, None, None, vol_cc["n"]))
    if any(k[1] is not None for k in g.keys):
        vol_asn = series.volume(g, ("cc", "asn")) if "n" not in g.counts else _sum(g, ("cc", "asn"))
        for ep in detect_drops(vol_asn["n"], g.step, settings.volume):
            asn = vol_asn.keys[ep.series][1]
            if asn is not None:
                out.append(_finding(vol_asn, ep, "outage", source, asn, None, vol_asn["n"]))
    return out


def _sum(g: Grid, keys: Sequence[str]) -> Grid:
    return series.rollup(g, keys, ["n"])


def match_known(events: list[Event]) -> list[Event]:
    """``events`` with ``known_event`` set from the known-events dataset."""
    table = knownmod.load()
    return [msgspec.structs.replace(e, known_event=knownmod.match(e, table)) for e in events]


_SPAN_SCHEMA: Final = pa.schema(
    [
        ("eid", pa.int64()),
        ("kind", pa.string()),
        ("cc", pa.string()),
        ("asn", pa.int64()),
        ("target", pa.string()),
        ("t0", pa.timestamp("us")),
        ("t1", pa.timestamp("us")),
    ]
)


def _evidence(
    src: VerdictSource,
    f: Filters,
    pairs: list[tuple[Cluster, Event]],
    step: timedelta,
    end: datetime,
) -> list[Event]:
    """Fill ``n_measurements``, ``n_probes``, ``witnesses``, ``layer`` and ``method`` of each
    event from the verdicts of its member series during the event (one scan). The layer
    and the method are the most common among the supporting verdicts, a tie going to the
    first by name (as ``cluster._mode``), so that the event does not depend on the order
    the verdicts are read in."""
    rows: list[dict[str, Any]] = []
    for eid, (c, e) in enumerate(pairs):
        for m in c.members:
            rows.append(
                {
                    "eid": eid,
                    "kind": e.kind,
                    "cc": m.cc,
                    "asn": m.asn,
                    "target": m.target,
                    "t0": m.onset_before - step,  # the first changed bucket
                    "t1": m.resolved_before or end,
                }
            )
    if not rows:
        return [e for _, e in pairs]
    spans = pa.Table.from_pylist(rows, schema=_SPAN_SCHEMA)
    base = series.base_query(src, f, False)
    if base is None:
        return [e for _, e in pairs]
    sql, params = base
    con = series.connect()
    con.register("spans", spans)
    query = f"""
        WITH base AS ({sql}),
        tagged AS (
            SELECT s.eid, b.measurement_uid, b.report_id, b.measurement_start_time,
                   b.layer, b.method,
                   CASE s.kind
                     WHEN 'block' THEN b.state = 'blocked'
                          AND coalesce(b.method, '') NOT IN ('nin.isolated', 'shutdown')
                     WHEN 'unblock' THEN b.state = 'ok'
                     WHEN 'nin' THEN b.method = 'nin.isolated'
                     WHEN 'shutdown' THEN b.method = 'shutdown'
                     ELSE false END AS support
            FROM base b JOIN spans s
              ON b.cc = s.cc
             AND (s.asn IS NULL OR b.asn = s.asn)
             AND (s.target IS NULL OR b.target = s.target)
             AND b.measurement_start_time >= s.t0 AND b.measurement_start_time < s.t1
        ),
        layers AS (SELECT eid, layer AS v, count(*) AS k FROM tagged
                   WHERE support AND layer IS NOT NULL GROUP BY eid, layer),
        methods AS (SELECT eid, method AS v, count(*) AS k FROM tagged
                    WHERE support AND method IS NOT NULL GROUP BY eid, method),
        top_layer AS (SELECT eid, first(v ORDER BY k DESC, v) AS v FROM layers GROUP BY eid),
        top_method AS (SELECT eid, first(v ORDER BY k DESC, v) AS v FROM methods GROUP BY eid)
        SELECT t.eid,
               count(DISTINCT t.measurement_uid) AS n,
               count(DISTINCT t.report_id) AS probes,
               list(t.measurement_uid ORDER BY t.measurement_start_time, t.measurement_uid)
                   FILTER (WHERE t.support) AS uids,
               any_value(l.v) AS layer,
               any_value(m.v) AS method
        FROM tagged t
        LEFT JOIN top_layer l ON l.eid = t.eid
        LEFT JOIN top_method m ON m.eid = t.eid
        GROUP BY t.eid
    """
    found = {r[0]: r[1:] for r in con.execute(query, params).fetchall()}
    out: list[Event] = []
    for eid, (_, e) in enumerate(pairs):
        got = found.get(eid)
        if got is None:
            out.append(e)
            continue
        n, probes, uids, layer, method = got
        seen: list[str] = []
        for u in uids or []:
            if u not in seen:
                seen.append(u)
            if len(seen) == WITNESS_CAP:
                break
        out.append(
            msgspec.structs.replace(
                e,
                n_measurements=int(n),
                n_probes=int(probes),
                witnesses=seen,
                layer=layer if e.kind in ("block", "unblock") else e.layer,
                method=method or e.method,
            )
        )
    return out


def detect_store(
    src: VerdictSource,
    f: Filters,
    settings: Settings | None = None,
    progress: Progress = _quiet,
) -> Result:
    """Events in the verdicts of ``src`` selected by ``f``."""
    settings = settings or Settings()
    clock: dict[str, float] = {}
    t = time.perf_counter()
    progress("reading verdicts into the grid")
    g = series.target_grid(src, f, settings.step, by_resolver=settings.by_resolver, probes=False)
    clock["grid"] = time.perf_counter() - t
    if g.n_series == 0:
        return Result([], seconds=clock)
    t = time.perf_counter()
    progress(f"detecting over {g.n_series:,} series × {g.n_buckets:,} buckets")
    found = findings(g, settings)
    clock["detect"] = time.perf_counter() - t
    t = time.perf_counter()
    progress(f"clustering {len(found):,} findings")
    pairs = _keep(cluster(found, settings.step), settings)
    clock["cluster"] = time.perf_counter() - t
    t = time.perf_counter()
    progress(f"reading the evidence of {len(pairs):,} events")
    end = g.time(g.n_buckets)
    events = _evidence(src, f, pairs, settings.step, end)
    if settings.match_known:
        events = match_known(events)
    clock["evidence"] = time.perf_counter() - t
    n_verdicts = int(sum(g[n].sum() for n in series.STATE_COUNTS))
    return Result(events, g.n_series, g.n_buckets, n_verdicts, len(found), clock)


def detect_ooni(
    path: Path, cc: str | None, settings: Settings | None = None, step: timedelta | None = None
) -> Result:
    """Events in an OONI aggregation file (its own grain unless ``step`` is given)."""
    settings = settings or Settings()
    data = readers.read_ooni_aggregation(path, cc, step)
    g = data.grid
    found = findings(g, settings, "ooni-aggregation")
    events = [e for _, e in _keep(cluster(found, g.step), settings)]
    if settings.match_known:
        events = match_known(events)
    return Result(events, g.n_series, g.n_buckets, int(g["n"].sum()), len(found))


def detect_ioda(
    path: Path, cc: str, asn: int | None = None, settings: Settings | None = None
) -> Result:
    """Outages in an IODA signal export: each signal on IODA's own rule, overlapping
    drops of several signals merged into one event (``source`` ``ioda``)."""
    settings = settings or Settings()
    data = readers.read_ioda(path)
    g = Grid(data.times[0], data.step, len(data.times), ("cc",), [(cc,)])
    index = {t: i for i, t in enumerate(data.times)}
    out: list[Finding] = []
    for name, values in data.signals.items():
        dense = np.full(g.n_buckets, np.nan)
        for t, v in zip(data.times, values, strict=True):
            dense[index[t]] = v
        for ep in ratio_drops(dense, data.step, ioda_params(name)):
            f = _finding(g, ep, "outage", name, asn, None, None)
            f.n_measurements = 0
            out.append(f)
    events = [e for _, e in _keep(cluster(out, data.step), settings)]
    if settings.match_known:
        events = match_known(events)
    return Result(events, len(data.signals), g.n_buckets, 0, len(out))


def select(events: Iterable[Event], filters: Filters) -> list[Event]:
    """The events matching the filters (a value list is "any of"; a target matches its
    subdomains, and a domain its catalog service both ways; ``since``/``until`` keep events
    active in [since, until))."""
    target = filters.targets()
    out = []
    for e in events:
        if filters.cc and e.cc not in filters.cc:
            continue
        if filters.asn and not set(filters.asn) & set(e.asns):
            continue
        if target and (e.target is None or not knownmod.target_matches(e.target, target)):
            continue
        if filters.kind and e.kind not in filters.kind:
            continue
        if filters.until and parse_iso(e.onset_before) > filters.until:
            continue
        if filters.since and e.resolved_before and parse_iso(e.resolved_before) < filters.since:
            continue
        out.append(e)
    return out
