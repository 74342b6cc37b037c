"""Saved events: same id → same row, retraction by complete runs, alerts once per transition."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import msgspec
from events_helpers import hourly, write_store
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from didban.api.app import create_app
from didban.cli import app
from didban.events.alerts import Outbox
from didban.events.record import Event
from didban.events.saved import Coverage, EventTable, publish
from didban.events.series import Filters
from didban.store.store import Store

COMPLETE = Coverage("didban", complete=True)
WINDOWED = Coverage("didban", since=datetime(2026, 3, 5))
DAY1, DAY2, DAY3 = datetime(2026, 3, 8), datetime(2026, 3, 9), datetime(2026, 3, 10)


def _event(eid: str, *, resolved: bool = False, confidence: float = 0.9, **kw: object) -> Event:
    fields: dict[str, object] = {
        "id": eid,
        "kind": "block",
        "cc": "IR",
        "asns": [44244],
        "target": "instagram",
        "layer": "tls",
        "method": "tls.sni.reset",
        "onset_after": "2026-03-06T00:00:00Z",
        "onset_before": "2026-03-06T01:00:00Z",
        "resolved_after": "2026-03-07T00:00:00Z" if resolved else None,
        "resolved_before": "2026-03-07T01:00:00Z" if resolved else None,
        "confidence": confidence,
        "n_measurements": 10,
        "n_probes": 2,
        "witnesses": ["u1"],
        "source": "didban",
        **kw,
    }
    return msgspec.convert(fields, Event)


def _keys(data_dir: Path) -> list[str]:
    with Outbox(data_dir) as box:
        rows = box.db.execute("SELECT idempotency_key FROM outbox ORDER BY id").fetchall()
    return [r[0] for r in rows]


def test_the_same_event_saved_again_is_the_same_row(tmp_path: Path) -> None:
    with EventTable(tmp_path) as table:
        assert table.save([_event("ev-1")], COMPLETE, DAY1).added == 1
        again = table.save([_event("ev-1")], COMPLETE, DAY2)
        assert (again.added, again.changed, again.unchanged) == (0, 0, 1)
        first = table.get("ev-1")
        assert first is not None
        assert (first.first_seen, first.changed, first.last_seen) == (
            "2026-03-08T00:00:00Z",
            "2026-03-08T00:00:00Z",
            "2026-03-09T00:00:00Z",
        )
        ended = table.save([_event("ev-1", resolved=True)], COMPLETE, DAY3)
        assert (ended.added, ended.changed) == (0, 1)
        now = table.get("ev-1")
        assert now is not None and now.event.resolved_before == "2026-03-07T01:00:00Z"
        assert (now.first_seen, now.changed) == ("2026-03-08T00:00:00Z", "2026-03-10T00:00:00Z")
        assert len(table.query(Filters())[1]) == 1
        assert table.get("ev-unknown") is None


def test_a_complete_run_retracts_what_it_no_longer_finds_a_windowed_run_does_not(
    tmp_path: Path,
) -> None:
    with EventTable(tmp_path) as table:
        table.save([_event("ev-old"), _event("ev-other", target="telegram")], COMPLETE, DAY1)
        # late data moved the onset: the event has a new id; a windowed run keeps the old one
        table.save([_event("ev-new", onset_before="2026-03-05T23:00:00Z")], WINDOWED, DAY2)
        assert {s.event.id for s in table.query(Filters())[1]} == {"ev-old", "ev-other", "ev-new"}
        done = table.save(
            [_event("ev-new", onset_before="2026-03-05T23:00:00Z"), _event("ev-other")],
            COMPLETE,
            DAY3,
        )
        assert done.retracted == 1
        assert {s.event.id for s in table.query(Filters())[1]} == {"ev-new", "ev-other"}
        gone = table.get("ev-old")  # a cited id still answers, marked retracted
        assert gone is not None and gone.retracted == "2026-03-10T00:00:00Z"
        # found again: back in the listings
        table.save([_event("ev-old"), _event("ev-new"), _event("ev-other")], COMPLETE, DAY3)
        assert {s.event.id for s in table.query(Filters())[1]} == {"ev-old", "ev-new", "ev-other"}
        # events of another source are not this source's to retract
        table.save([_event("ev-ooni", source="ooni-aggregation")], Coverage("x"), DAY3)
        table.save([], COMPLETE, DAY3)
        assert [s.event.id for s in table.query(Filters())[1]] == ["ev-ooni"]


def test_query_filters_by_country_kind_time_and_confidence(tmp_path: Path) -> None:
    with EventTable(tmp_path) as table:
        table.save(
            [
                _event("ev-a", resolved=True),
                _event("ev-b", cc="TM", onset_before="2026-03-20T01:00:00Z"),
                _event("ev-c", kind="shutdown", target=None, confidence=0.2),
            ],
            COMPLETE,
            DAY1,
        )
        assert [s.event.id for s in table.query(Filters(cc=["TM"]))[1]] == ["ev-b"]
        assert [s.event.id for s in table.query(Filters(kind=["shutdown"]))[1]] == ["ev-c"]
        assert {s.event.id for s in table.query(Filters(), min_confidence=0.5)[1]} == {
            "ev-a",
            "ev-b",
        }
        table.save(
            [
                _event("ev-d", target="scontent.cdninstagram.com", asns=[58224, 197207]),
                _event("ev-e", target="news.example.org", confidence=0.3),
            ],
            Coverage("x"),
            DAY1,
        )
        assert [s.event.id for s in table.query(Filters(target=["example.org"]))[1]] == ["ev-e"]
        assert table.query(Filters(target=["ample.org"]))[1] == []  # a subdomain, not a suffix
        by_service = table.query(Filters(target=["instagram"]))[1]  # a domain of the service
        assert {s.event.id for s in by_service} == {"ev-a", "ev-b", "ev-d"}
        by_domain = table.query(Filters(target=["www.instagram.com"]))[1]  # a domain's service
        assert {s.event.id for s in by_domain} == {"ev-a", "ev-b", "ev-d"}
        assert [s.event.id for s in table.query(Filters(asn=[58224, 1]))[1]] == ["ev-d"]
        assert table.query(Filters(asn=[5822]))[1] == []  # whole numbers, not digits
        total, page = table.query(Filters(), limit=2, offset=1, min_confidence=0.5)
        assert total == 3 and [s.event.id for s in page] == ["ev-a", "ev-d"]
        # active in [since, until): ev-a ended on the 7th, ev-b began on the 20th
        _, window = table.query(Filters(since=datetime(2026, 3, 8), until=datetime(2026, 3, 10)))
        assert {s.event.id for s in window} == {"ev-c", "ev-d", "ev-e"}


def test_alerts_once_per_transition_when_detection_runs_again(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        box.add("http://127.0.0.1:9/hook", cc="IR")
    first = publish(tmp_path, [_event("ev-1"), _event("ev-2", resolved=True)], COMPLETE, DAY1)
    assert (first.transitions, first.queued) == (3, 3)
    again = publish(tmp_path, [_event("ev-1"), _event("ev-2", resolved=True)], COMPLETE, DAY2)
    assert (again.transitions, again.queued) == (0, 0)
    ended = publish(tmp_path, [_event("ev-1", resolved=True), _event("ev-2", resolved=True)],
                    COMPLETE, DAY3)  # fmt: skip
    assert (ended.transitions, ended.queued) == (1, 1)
    assert _keys(tmp_path) == ["ev-1:start", "ev-2:start", "ev-2:end", "ev-1:end"]
    # a subscription added later hears of what happens from then on, not of the history
    with Outbox(tmp_path) as box:
        box.add("http://127.0.0.1:9/late")
    later = publish(tmp_path, [_event("ev-1", resolved=True), _event("ev-2", resolved=True),
                               _event("ev-3")], COMPLETE, DAY3)  # fmt: skip
    assert (later.transitions, later.queued) == (1, 2)
    assert _keys(tmp_path)[-2:] == ["ev-3:start", "ev-3:start"]


def test_a_crash_between_queueing_and_saving_neither_loses_nor_repeats(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        box.add("http://127.0.0.1:9/hook")
    events = [_event("ev-1", resolved=True)]
    with EventTable(tmp_path) as table, Outbox(tmp_path) as box:
        assert box.enqueue_transitions(table.transitions(events)) == 2  # then the crash
    redo = publish(tmp_path, events, COMPLETE, DAY1)
    assert (redo.transitions, redo.queued) == (2, 0)
    assert _keys(tmp_path) == ["ev-1:start", "ev-1:end"]
    with EventTable(tmp_path) as table:
        assert table.get("ev-1") is not None


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_detect_saves_runs_over_the_whole_store_and_refuses_to_save_narrowed_ones(
    tmp_path: Path,
) -> None:
    store = write_store(tmp_path / "store", hourly(24 * 6, 6, blocked_from=24 * 5))
    code, _, stderr = _run("events", "detect", "--data-dir", str(store))
    assert code == 0, stderr
    assert "1 new, 0 changed, 0 unchanged, 0 retracted" in stderr
    code, _, stderr = _run("events", "detect", "--data-dir", str(store))
    assert code == 0 and "0 new, 0 changed, 1 unchanged" in stderr
    code, _, stderr = _run("events", "detect", "--data-dir", str(store), "--cc", "IR")
    assert code == 0 and "not saved" in stderr
    code, _, stderr = _run("events", "detect", "--data-dir", str(store), "--cc", "IR", "--save")
    assert code == 2 and "--save needs a run over the whole store" in stderr
    with EventTable(store, readonly=True) as table:
        (saved,) = table.query(Filters())[1]
    assert saved.event.target == "instagram" and saved.event.resolved_before is None
    # the block ends in later data: the same id, now resolved, and an end to announce
    more = hourly(24 * 2, 6, start=datetime(2026, 3, 7), blocked_until=10, blocked_from=0)
    write_store(store, more, name="part-1")
    code, _, stderr = _run("events", "detect", "--data-dir", str(store))
    assert code == 0 and "0 new, 1 changed" in stderr and "1 start(s)/end(s) new" in stderr
    with EventTable(store, readonly=True) as table:
        (ended,) = table.query(Filters())[1]
    assert ended.event.id == saved.event.id and ended.event.resolved_before is not None
    assert json.loads(msgspec.json.encode(ended.event))["kind"] == "block"


def test_what_detect_saves_is_what_the_api_and_feeds_serve(tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", hourly(24 * 6, 6, blocked_from=24 * 5))
    code, _, stderr = _run("events", "detect", "--data-dir", str(store))
    assert code == 0, stderr
    with Store(store, classifier=None) as s, TestClient(create_app(s)) as client:
        (listed,) = client.get("/api/v1/events?probe_cc=IR&service=instagram").json()["results"]
        assert listed["kind"] == "block" and listed["asns"] == [44244]
        one = client.get(listed["url"]).json()
        assert one["witness_measurements"][0]["measurement_uid"] == listed["witnesses"][0]
        feed = client.get("/feeds/target/instagram.atom").text
        assert listed["url"] in feed
