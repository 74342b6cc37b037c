"""From per-series findings to events: clustering across networks and targets, confidence, ids.

A *finding* is one episode of one series (a block of a target on one ASN, a silent ASN,
NIN isolation on one ASN…) with its brackets as times. Findings become events
(event-detection.md §4.2, "cluster changepoints into events by (cc, target) and (cc, asn),
per direction; the larger cluster subsumes the smaller"):

* blocks and unblocks are linked per (country, target) across ASNs, and per (country, ASN)
  across targets; each finding goes to the larger of its two clusters (an ASN cluster only
  counts with ``MIN_TARGETS`` targets or more) — a national block is one event with its ASN
  list, an ISP switching many targets at once is one event with ``target`` null;
* NIN isolation is linked per country across ASNs; shutdowns (from ``shutdown`` verdicts or
  a country's silence) absorb the ASN outages that overlap them; other outages are linked
  per country when simultaneous.

Linking is single-linkage in time: a finding joins a cluster when its onset is within
``gap`` of the cluster's latest onset and some member is still unresolved at that onset
(or it starts within ``simultaneous`` of the first): a rollout over days stays one event, a
second block after an unblock is a new one.

A target that moves in ``ARTEFACT_COUNTRIES`` countries or more within
``ARTEFACT_WINDOW`` is suspected to be a pipeline or instrument artefact (event-detection.md
§6.2, §4.2): its events keep their place but their confidence is capped at
``ARTEFACT_CONFIDENCE``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from didban.events.record import Event, Kind, event_id, iso

MIN_TARGETS: Final = 3
ARTEFACT_COUNTRIES: Final = 3
ARTEFACT_WINDOW: Final = timedelta(hours=2)
ARTEFACT_CONFIDENCE: Final = 0.2
ARTEFACT_FLOOR: Final = 0.5  # only events that would be reported count as moves
BLOCK_GAP: Final = timedelta(hours=72)
OUTAGE_SIMULTANEOUS: Final = timedelta(hours=2)


@dataclass
class Finding:
    kind: Kind
    cc: str
    asn: int | None
    target: str | None
    onset_after: datetime | None
    onset_before: datetime
    resolved_after: datetime | None
    resolved_before: datetime | None
    strength: float  # statistic peak ÷ threshold (≥ 1)
    source: str
    n_measurements: int = 0
    detected: datetime | None = None  # end of the bucket where the statistic crossed
    layer: str | None = None
    method: str | None = None

    def ongoing_at(self, t: datetime) -> bool:
        return self.resolved_before is None or self.resolved_before > t


@dataclass
class Cluster:
    kind: Kind
    cc: str
    target: str | None
    scope: str  # "*" (across ASNs) or "asn:N" (across targets on one ASN)
    members: list[Finding] = field(default_factory=list)
    artefact: bool = False

    @property
    def first(self) -> Finding:
        return min(self.members, key=lambda f: f.onset_before)

    @property
    def detected(self) -> datetime | None:
        """When a detector run at each bucket's end would first have reported it."""
        times = [m.detected for m in self.members if m.detected is not None]
        return min(times) if times else None


def _link(findings: list[Finding], gap: timedelta, simultaneous: timedelta) -> list[list[Finding]]:
    groups: list[list[Finding]] = []
    for f in sorted(findings, key=lambda f: f.onset_before):
        if groups:
            g = groups[-1]
            last = max(m.onset_before for m in g)
            first = min(m.onset_before for m in g)
            near = f.onset_before - last <= gap
            alive = any(m.ongoing_at(f.onset_before) for m in g)
            if near and (alive or f.onset_before - first <= simultaneous):
                g.append(f)
                continue
        groups.append([f])
    return groups


def confidence(members: Iterable[Finding]) -> float:
    """``1 − 0.5^E``, E = Σ (strength − 1) over the members: the evidence beyond the
    threshold, in threshold units. One series just over the threshold is 0 (a blip); one
    series with twice the threshold's evidence, or several networks together, is 0.5 or
    more; capped at 0.99."""
    excess = sum(max(m.strength - 1.0, 0.0) for m in members)
    return round(min(1.0 - 0.5 ** min(excess, 30.0), 0.99), 3)


def _block_clusters(findings: list[Finding], step: timedelta) -> list[Cluster]:
    simultaneous = max(step, OUTAGE_SIMULTANEOUS)
    gap = max(BLOCK_GAP, 3 * step) if step >= timedelta(hours=1) else 3 * step
    by_target: dict[tuple[Kind, str, str | None], list[Finding]] = defaultdict(list)
    by_asn: dict[tuple[Kind, str, int | None], list[Finding]] = defaultdict(list)
    for f in findings:
        by_target[(f.kind, f.cc, f.target)].append(f)
        by_asn[(f.kind, f.cc, f.asn)].append(f)
    size_t: dict[int, int] = {}
    for fs in by_target.values():
        for g in _link(fs, gap, simultaneous):
            for f in g:
                size_t[id(f)] = len(g)
    to_asn: set[int] = set()
    for fs in by_asn.values():
        for g in _link(fs, simultaneous, simultaneous):
            if len({f.target for f in g}) >= MIN_TARGETS:
                to_asn.update(id(f) for f in g if len(g) > size_t[id(f)])
    out: list[Cluster] = []
    for (kind, cc, target), fs in by_target.items():
        for g in _link([f for f in fs if id(f) not in to_asn], gap, simultaneous):
            out.append(Cluster(kind, cc, target, "*", g))
    for (kind, cc, asn), fs in by_asn.items():
        for g in _link([f for f in fs if id(f) in to_asn], simultaneous, simultaneous):
            out.append(Cluster(kind, cc, None, f"asn:{asn}", g))
    return out


def _network_clusters(findings: list[Finding], step: timedelta) -> list[Cluster]:
    simultaneous = max(step, OUTAGE_SIMULTANEOUS)
    out: list[Cluster] = []
    by_cc: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        by_cc[("outage" if f.kind in ("shutdown", "outage") else str(f.kind), f.cc)].append(f)
    for (family, cc), fs in by_cc.items():
        if family == "nin":
            for g in _link(fs, simultaneous * 3, simultaneous):
                out.append(Cluster("nin", cc, None, "*", g))
            continue
        shutdowns = _link([f for f in fs if f.kind == "shutdown"], simultaneous, simultaneous)
        clusters = [Cluster("shutdown", cc, None, "*", g) for g in shutdowns]
        rest: list[Finding] = []
        for f in (f for f in fs if f.kind == "outage"):
            home = next((c for c in clusters if _overlaps(c.members, f)), None)
            if home is not None:
                home.members.append(f)
            else:
                rest.append(f)
        clusters += [
            Cluster("outage", cc, None, "*", g) for g in _link(rest, simultaneous, simultaneous)
        ]
        out += clusters
    return out


def _overlaps(members: list[Finding], f: Finding) -> bool:
    end = f.resolved_before or datetime.max
    return any(
        m.onset_before <= end and f.onset_before <= (m.resolved_before or datetime.max)
        for m in members
    )


def _mark_artefacts(clusters: list[Cluster]) -> None:
    """Flag the confident target clusters whose target moved in ``ARTEFACT_COUNTRIES``
    countries or more at once (blips below ``ARTEFACT_FLOOR`` neither count nor get flagged)."""
    by_target: dict[tuple[str, str | None], list[Cluster]] = defaultdict(list)
    for c in clusters:
        if c.target is not None and confidence(c.members) >= ARTEFACT_FLOOR:
            by_target[(c.kind, c.target)].append(c)
    for group in by_target.values():
        for c in group:
            t = c.first.onset_before
            near = {o.cc for o in group if abs(o.first.onset_before - t) <= ARTEFACT_WINDOW}
            if len(near) >= ARTEFACT_COUNTRIES:
                c.artefact = True


def _mode(values: Iterable[str | None]) -> str | None:
    counts: dict[str, int] = defaultdict(int)
    for v in values:
        if v:
            counts[v] += 1
    return max(sorted(counts), key=lambda k: counts[k]) if counts else None


def to_event(c: Cluster) -> Event:
    first = c.first
    ongoing = any(m.resolved_before is None for m in c.members)
    last = None if ongoing else max(c.members, key=lambda m: m.resolved_before or datetime.min)
    conf = confidence(c.members)
    if c.artefact:
        conf = min(conf, ARTEFACT_CONFIDENCE)
    sources = sorted({m.source for m in c.members})
    source = sources[0] if len(sources) == 1 else _merged_source(sources)
    onset = iso(first.onset_before) or ""
    return Event(
        id=event_id(source, c.kind, c.cc, c.target, c.scope, onset),
        kind=c.kind,
        cc=c.cc,
        asns=sorted({m.asn for m in c.members if m.asn is not None}),
        target=c.target,
        layer=_mode(m.layer for m in c.members),
        method=_mode(m.method for m in c.members),
        onset_after=iso(first.onset_after),
        onset_before=onset,
        resolved_after=iso(last.resolved_after) if last else None,
        resolved_before=iso(last.resolved_before) if last else None,
        confidence=conf,
        n_measurements=sum(m.n_measurements for m in c.members),
        n_probes=0,
        witnesses=[],
        source=source,
    )


def _merged_source(sources: list[str]) -> str:
    """Several sources in one event: didban's own, else OONI's, else IODA's signals."""
    for name in ("didban", "ooni-aggregation"):
        if name in sources:
            return name
    return "ioda"


def cluster(findings: Iterable[Finding], step: timedelta) -> list[tuple[Cluster, Event]]:
    """Every finding in exactly one cluster; the clusters with their events, by onset."""
    fs = list(findings)
    blocks = [f for f in fs if f.kind in ("block", "unblock")]
    others = [f for f in fs if f.kind not in ("block", "unblock")]
    clusters = _block_clusters(blocks, step) + _network_clusters(others, step)
    _mark_artefacts(clusters)
    pairs = [(c, to_event(c)) for c in clusters]
    pairs.sort(key=lambda p: (p[1].onset_before, p[1].cc, p[1].kind, p[1].target or ""))
    return pairs
