"""From verdicts to events: clustering across networks and targets, kinds, evidence, ids."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from events_helpers import T0, hourly, verdict, write_store

from didban.events.cluster import Finding, cluster
from didban.events.detect import Settings, detect_store, findings
from didban.events.grid import Grid
from didban.events.record import WITNESS_CAP, event_id, parse_iso, read_jsonl, write_jsonl
from didban.events.series import Filters, VerdictSource

HOUR = timedelta(hours=1)
ASNS = (44244, 197207, 58224, 16322)


def _events(tmp_path: Path, rows: list[dict[str, object]], **kw: object):
    return detect_store(VerdictSource.store(write_store(tmp_path, rows)), Filters(**kw)).events  # type: ignore[arg-type]


def test_a_national_block_is_one_event_with_its_asns_evidence_and_bracket(tmp_path: Path) -> None:
    rows = []
    for i, asn in enumerate(ASNS):
        rows += hourly(24 * 6, 6, blocked_from=24 * 5 + i, asn=asn)
        rows += hourly(24 * 6, 6, asn=asn, service="telegram")
    (e,) = _events(tmp_path, rows)
    assert (e.kind, e.cc, e.target, e.asns) == ("block", "IR", "instagram", sorted(ASNS))
    # bucket edges: after the start of the last normal hour, before the end of the first blocked
    assert (e.onset_after, e.onset_before) == ("2026-03-05T23:00:00Z", "2026-03-06T01:00:00Z")
    assert e.layer == "tls" and e.method == "tls.sni.reset"
    assert e.resolved_before is None and e.confidence >= 0.9
    assert len(e.witnesses) == WITNESS_CAP and e.n_probes > 0
    assert e.source == "didban" and e.id.startswith("ev-")


def test_rollout_over_days_is_one_event_and_its_end_resolves_it(tmp_path: Path) -> None:
    rows = []
    for i, asn in enumerate(ASNS):  # one ISP a day, all lifted on day 9
        rows += hourly(24 * 10, 5, blocked_from=24 * (4 + i), blocked_until=24 * 9, asn=asn)
    (e,) = _events(tmp_path, rows)
    assert e.asns == sorted(ASNS) and e.onset_before == "2026-03-05T01:00:00Z"
    assert e.resolved_after is not None
    assert (
        parse_iso(e.resolved_after) <= T0 + timedelta(days=9) <= parse_iso(e.resolved_before or "")
    )


def test_block_then_unblock_then_block_again_are_two_events(tmp_path: Path) -> None:
    rows = hourly(24 * 12, 6, blocked_when=lambda h: 96 <= h < 144 or h >= 216)
    events = _events(tmp_path, rows)
    assert [e.onset_before[:13] for e in events] == ["2026-03-05T01", "2026-03-10T01"]
    assert events[0].resolved_before == "2026-03-07T01:00:00Z"
    assert events[1].resolved_before is None
    assert events[0].id != events[1].id


def test_a_target_blocked_throughout_is_no_event_its_unblock_is(tmp_path: Path) -> None:
    rows = hourly(24 * 6, 6, blocked_from=0) + hourly(
        24 * 6, 6, blocked_from=0, blocked_until=100, service="signal"
    )
    events = _events(tmp_path, rows)
    assert [(e.kind, e.target) for e in events] == [("unblock", "signal")]
    (e,) = events
    assert parse_iso(e.onset_after or "") <= T0 + timedelta(hours=100) <= parse_iso(e.onset_before)
    assert e.method is None and e.witnesses  # witnesses of an unblock are ok verdicts


def test_silence_is_a_shutdown_with_the_silent_networks(tmp_path: Path) -> None:
    rows = []
    for asn in ASNS[:3]:
        for svc in ("instagram", "telegram", "wikipedia"):
            rows += hourly(24 * 10, 4, asn=asn, service=svc)
    gap = (T0 + timedelta(days=8, hours=3), T0 + timedelta(days=8, hours=15))
    rows = [r for r in rows if not gap[0] <= r["measurement_start_time"] < gap[1]]
    events = _events(tmp_path, rows)
    assert [(e.kind, e.target, e.asns) for e in events] == [("shutdown", None, sorted(ASNS[:3]))]
    (e,) = events
    assert parse_iso(e.onset_after or "") <= gap[0] <= parse_iso(e.onset_before)
    assert parse_iso(e.resolved_after or "") <= gap[1] <= parse_iso(e.resolved_before or "")
    assert e.witnesses == []  # nothing was measured: silence has no witness


def test_one_silent_network_is_an_outage(tmp_path: Path) -> None:
    rows = []
    for asn in ASNS:
        for svc in ("instagram", "telegram", "wikipedia"):
            rows += hourly(24 * 10, 4, asn=asn, service=svc)
    gap = (T0 + timedelta(days=8), T0 + timedelta(days=8, hours=6))
    rows = [
        r
        for r in rows
        if not (r["probe_asn"] == "AS58224" and gap[0] <= r["measurement_start_time"] < gap[1])
    ]
    assert [(e.kind, e.asns) for e in _events(tmp_path, rows)] == [("outage", [58224])]


def test_nin_isolation_verdicts_are_a_nin_event_not_blocks(tmp_path: Path) -> None:
    rows = []
    for asn in ASNS[:2]:
        for svc in ("instagram", "telegram", "wikipedia", "digikala"):
            for r in hourly(24 * 6, 4, asn=asn, service=svc):
                if svc != "digikala" and r["measurement_start_time"] >= T0 + timedelta(days=5):
                    r.update(state="blocked", method="nin.isolated", layer="ip")
                rows.append(r)
    events = _events(tmp_path, rows)
    assert [(e.kind, e.asns, e.method) for e in events] == [
        ("nin", sorted(ASNS[:2]), "nin.isolated")
    ]


def test_an_isp_switching_many_targets_at_once_is_one_event_without_target() -> None:
    t0 = datetime(2026, 1, 1, 10)
    fs = [
        Finding("block", "IR", 44244, t, t0 - HOUR, t0, None, None, 3.0, "didban")
        for t in ("instagram", "telegram", "signal", "wikipedia")
    ]
    ((c, e),) = cluster(fs, HOUR)
    assert (e.target, e.asns, c.scope) == (None, [44244], "asn:44244")


def test_a_target_moving_in_many_countries_at_once_is_an_artefact() -> None:
    t0 = datetime(2026, 1, 1, 10)
    fs = [
        Finding("block", cc, 1, "wikipedia", t0 - HOUR, t0, None, None, 5.0, "didban")
        for cc in ("IR", "RU", "CN", "TR")
    ]
    pairs = cluster(fs, HOUR)
    assert len(pairs) == 4 and all(e.confidence <= 0.2 for _, e in pairs)
    assert all(c.artefact for c, _ in pairs)
    (alone,) = cluster(fs[:1], HOUR)
    assert alone[1].confidence > 0.9
    blips = [
        Finding("block", cc, 1, "wikipedia", t0 - HOUR, t0, None, None, 1.0, "didban")
        for cc in ("RU", "CN", "TR")
    ]
    real = {e.cc: e.confidence for _, e in cluster(fs[:1] + blips, HOUR)}
    assert real["IR"] > 0.9  # blips elsewhere (confidence 0) do not make it an artefact


def test_a_shutdown_absorbs_the_outages_it_overlaps() -> None:
    t0 = datetime(2026, 1, 1, 10)
    fs = [
        Finding(
            "shutdown", "IR", None, None, t0 - HOUR, t0, t0 + 5 * HOUR, t0 + 6 * HOUR, 4.0, "didban"
        )
    ]
    fs += [
        Finding(
            "outage",
            "IR",
            a,
            None,
            t0 - HOUR,
            t0 + HOUR,
            t0 + 4 * HOUR,
            t0 + 5 * HOUR,
            2.0,
            "didban",
        )
        for a in ASNS
    ]
    fs.append(
        Finding(
            "outage", "IR", 12880, None, t0 + 30 * HOUR, t0 + 31 * HOUR, None, None, 3.0, "didban"
        )
    )
    events = [e for _, e in cluster(fs, HOUR)]
    assert [(e.kind, e.asns) for e in events] == [("shutdown", sorted(ASNS)), ("outage", [12880])]


def test_ids_are_derived_from_content_and_stable(tmp_path: Path) -> None:
    rows = []
    for asn in ASNS[:2]:
        rows += hourly(24 * 6, 6, blocked_from=24 * 5, asn=asn)
    first = _events(tmp_path / "a", rows)
    again = _events(tmp_path / "b", list(reversed(rows)))  # same data, another order
    assert [e.id for e in first] == [e.id for e in again]
    e = first[0]
    assert e.id == event_id("didban", "block", "IR", "instagram", "*", e.onset_before)
    assert event_id("didban", "block", "IR", "telegram", "*", e.onset_before) != e.id


def test_backfill_gives_the_same_events(tmp_path: Path) -> None:
    """Late data arriving in a later file changes nothing about events it does not touch."""
    rows = hourly(24 * 6, 6, blocked_from=24 * 5)
    early, late = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    d = tmp_path / "store"
    write_store(d, early, name="part-0")
    write_store(d, late, name="inc-1")
    split = detect_store(VerdictSource.store(d), Filters()).events
    whole = _events(tmp_path / "whole", rows)
    assert [(e.id, e.onset_before) for e in split] == [(e.id, e.onset_before) for e in whole]


def test_jsonl_is_written_atomically_and_reads_back(tmp_path: Path) -> None:
    rows = hourly(24 * 6, 6, blocked_from=24 * 5)
    events = _events(tmp_path, rows)
    out = tmp_path / "events.jsonl"
    assert write_jsonl(out, events) == 1
    assert list(read_jsonl(out)) == events
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_findings_on_a_grid_of_counts() -> None:
    n = np.full((2, 100), 8.0)
    k = np.zeros_like(n)
    k[1, 60:] = 8
    g = Grid(
        datetime(2026, 1, 1),
        HOUR,
        100,
        ("cc", "asn", "target", "resolver"),
        [("IR", 1, "a", ""), ("IR", 1, "b", "")],
        {"ok": n - k, "blocked": k},
    )
    (f,) = findings(g, Settings())
    assert (f.kind, f.target, f.onset_before) == ("block", "b", datetime(2026, 1, 3, 13))


def test_verdict_helper_rows_are_the_store_schema(tmp_path: Path) -> None:
    write_store(tmp_path, [verdict(T0, "ok")])
    assert [p.name for p in (tmp_path / "tables" / "verdicts").iterdir()] == ["day=2026-03-01"]
