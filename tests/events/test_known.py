"""The known-events dataset and its matching to detected events."""

from __future__ import annotations

from datetime import datetime

from didban.events import known, timeline
from didban.events.detect import select
from didban.events.record import Event
from didban.events.series import Filters


def _event(
    kind: str, target: str | None, after: str, before: str, asns: list[int] | None = None
) -> Event:
    return Event(
        id="ev-x",
        kind=kind,
        cc="IR",
        asns=asns or [],
        target=target,
        layer=None,
        method=None,
        onset_after=after,
        onset_before=before,
        resolved_after=None,
        resolved_before=None,
        confidence=0.9,
        n_measurements=1,
        n_probes=1,
        witnesses=[],
        source="didban",
    )


def test_every_row_is_dated_and_sourced_with_the_ioda_caveats_kept() -> None:
    rows = known.load()
    assert len(rows) == 3 + 31 + 103
    assert len({k.id for k in rows}) == len(rows)
    assert all(k.source and k.caveat and k.cc == "IR" for k in rows)
    ioda = [k for k in rows if k.id.startswith("ioda-")]
    assert sum("end before begin" in k.caveat for k in ioda) == 11  # event-detection.md §11
    assert all("read as UTC" in k.caveat for k in ioda)
    assert {k.scope for k in ioda if k.asns} == {"AS"}
    ir21 = next(k for k in rows if k.id == "ir-21")
    assert ir21.targets == ("instagram",) and ir21.start == (
        datetime(2022, 9, 21),
        datetime(2022, 9, 22),
    )


def test_brackets_follow_the_precision_of_the_source() -> None:
    assert known.bracket("2009") == (datetime(2009, 1, 1), datetime(2010, 1, 1))
    assert known.bracket("2012-12") == (datetime(2012, 12, 1), datetime(2013, 1, 1))
    assert known.bracket("2019-11-16T14:00Z") == (
        datetime(2019, 11, 16, 14),
        datetime(2019, 11, 16, 14, 1),
    )


def test_a_detected_block_matches_the_public_record() -> None:
    table = known.load()
    e = _event("block", "instagram", "2022-09-21T10:00:00Z", "2022-09-21T12:00:00Z")
    assert known.match(e, table) == "ir-21"
    domain = _event("block", "web.whatsapp.com", "2022-09-21T10:00:00Z", "2022-09-21T12:00:00Z")
    assert known.match(domain, table) == "ir-22"
    assert (
        known.match(
            _event("block", "instagram", "2022-06-01T10:00:00Z", "2022-06-01T11:00:00Z"), table
        )
        is None
    )
    assert (
        known.match(
            _event("block", "wikipedia", "2022-09-21T10:00:00Z", "2022-09-21T12:00:00Z"), table
        )
        is None
    )


def test_unblocks_match_the_end_and_outages_need_the_asn() -> None:
    table = known.load()
    unblock = _event("unblock", "gmail", "2012-09-30T20:00:00Z", "2012-09-30T22:00:00Z")
    assert known.match(unblock, table) == "ir-3"
    itc = _event("outage", None, "2020-04-03T08:00:00Z", "2020-04-03T09:00:00Z", [12880])
    assert known.match(itc, table) in ("ir-14", "ioda-3444BCBC")
    elsewhere = _event("outage", None, "2020-02-27T08:00:00Z", "2020-02-27T09:00:00Z", [44244])
    assert known.match(elsewhere, table) != "ir-11"  # Shatel's outage is AS31549's


def test_select_for_the_timeline() -> None:
    rows = known.select(known.load(), "IR", "telegram", datetime(2017, 1, 1), datetime(2019, 1, 1))
    assert [k.id for k in rows] == ["ir-4", "ir-7"]


def test_an_outage_without_a_recorded_end_is_not_carried_forward() -> None:
    """A block without an end may still hold (Facebook since 2009); an outage or a shutdown
    without one ended, when is not recorded: it is not in a window years later."""
    table = known.load()
    autumn_2022 = known.select(table, "IR", None, datetime(2022, 9, 1), datetime(2022, 10, 15))
    ids = {k.id for k in autumn_2022}
    assert "ir-1" in ids  # Facebook, Twitter, YouTube: blocked since 2009, no end
    assert "ioda-75F63F4C" not in ids  # the Qazvin outage of 2020-01-28, no end recorded
    assert "ir-18" not in ids  # Khuzestan's mobile shutdown of July 2021, no end recorded
    that_day = known.select(table, "IR", None, datetime(2020, 1, 28), datetime(2020, 1, 29))
    assert "ioda-75F63F4C" in {k.id for k in that_day}


def test_the_text_timeline_marks_an_outage_without_an_end_at_its_start() -> None:
    table = {k.id: k for k in known.load()}
    items = timeline.entries([table["ir-1"], table["ioda-75F63F4C"]], [])
    lines = timeline.render(items, datetime(2019, 1, 1), datetime(2023, 1, 1))
    block = next(line for line in lines if "ir-1 " in line)
    outage = next(line for line in lines if "ioda-75F63F4C" in line)
    width = 60  # render's bar for a 100-column terminal
    assert block[:width].count("█") > 40 and block[:width].endswith("→")  # holds on
    assert outage[:width].count("█") == 1 and "→" not in outage  # a mark at its start
    assert [e.row()["open_ended"] for e in items] == [True, False]


def test_select_matches_a_domain_to_its_service() -> None:
    e = _event("block", "www.instagram.com", "2022-09-20T00:00:00Z", "2022-09-22T00:00:00Z")
    assert select([e], Filters(target=("instagram",))) == [e]
    assert select([e], Filters(target=("whatsapp",))) == []
    assert select([e], Filters(kind=("shutdown",))) == []
    assert select([e], Filters(until=datetime(2022, 9, 1))) == []
