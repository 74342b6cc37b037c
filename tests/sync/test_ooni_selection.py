"""Which prefixes of OONI's bucket a selection lists, and how flags are read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from ooni_bucket import BUCKET, Archive, MotoServer, Proxy

from didban.store.oonisync.s3 import AnonymousS3
from didban.store.oonisync.selection import (
    SelectionError,
    can_prefixes,
    jsonl_prefixes,
    member_cc,
    parse_selection,
    raw_prefixes,
)


def test_days_are_inclusive_and_hours_are_read() -> None:
    sel = parse_selection("ir", "2024-02-01", "20240202", ["web_connectivity", "webconnectivity"])
    assert (sel.cc, sel.tests) == ("IR", ("webconnectivity",))
    assert sel.since == datetime(2024, 2, 1, 0, tzinfo=UTC)
    assert sel.until == datetime(2024, 2, 2, 23, tzinfo=UTC)
    assert len(sel.hours()) == 48
    one = parse_selection("IR", "2024-02-01T05:30", "2024-02-01 06:00:00Z", [])
    assert [h.hour for h in one.hours()] == [5, 6]


def test_raw_prefixes_per_hour_country_and_test() -> None:
    sel = parse_selection("IR", "2024-02-01T22", "2024-02-02T01", ["telegram"])
    got = [p.prefix for p in raw_prefixes(sel, BUCKET)]
    assert got == [
        "raw/20240201/22/IR/telegram/",
        "raw/20240201/23/IR/telegram/",
        "raw/20240202/00/IR/telegram/",
        "raw/20240202/01/IR/telegram/",
    ]
    for tests in ([], ["telegram", "signal"]):  # the country's hour, tests filtered after
        every = parse_selection("IR", "2024-02-01T22", "2024-02-01T23", tests)
        assert [p.prefix for p in raw_prefixes(every, BUCKET)] == [
            "raw/20240201/22/IR/",
            "raw/20240201/23/IR/",
        ]


def test_old_days_come_from_jsonl_or_from_the_cans_of_the_right_bucket() -> None:
    sel = parse_selection("IR", "2019-11-16", "2019-11-17", ["web_connectivity"])
    assert raw_prefixes(sel, BUCKET) == []
    assert [p.prefix for p in jsonl_prefixes(sel, BUCKET, list(sel.tests))] == [
        "jsonl/webconnectivity/IR/20191116/",
        "jsonl/webconnectivity/IR/20191117/",
    ]
    late = parse_selection("IR", "2020-06-01", "2020-06-02", [])
    assert [(p.bucket, p.prefix) for p in can_prefixes(late, BUCKET, "ooni-data")] == [
        ("ooni-data", "canned/2020-06-01/"),
        (BUCKET, "canned/2020-06-02/"),
    ]
    edge = parse_selection("IR", "2020-10-20", "2020-10-22", ["ndt"])
    assert raw_prefixes(edge, BUCKET)[0].prefix == "raw/20201020/00/IR/ndt/"
    assert [p.prefix for p in jsonl_prefixes(edge, BUCKET, ["ndt"])] == ["jsonl/ndt/IR/20201020/"]
    assert [p.prefix for p in can_prefixes(edge, BUCKET, "ooni-data")] == [
        "canned/2020-10-20/",
        "canned/2020-10-21/",
    ]


def test_refusals_are_sentences() -> None:
    with pytest.raises(SelectionError, match="did you mean web_connectivity"):
        parse_selection("IR", "2024-01-01", "2024-01-02", ["web-conectivity"])
    with pytest.raises(SelectionError, match="is before"):
        parse_selection("IR", "2024-01-02", "2024-01-01T23", [])


def test_country_of_a_report_inside_a_can() -> None:
    name = (
        "2019-11-16/20191116T100000Z-IR-AS58224-web_connectivity-"
        "20191116T100000Z_AS58224_x-0.2.0-probe.json"
    )
    assert member_cc(name) == "IR"
    assert member_cc("2019-11-16/index.json") is None


def test_listing_follows_continuation_tokens(proxy: Proxy, archive: Archive) -> None:
    async def listing() -> list[str]:
        async with AnonymousS3(proxy.endpoint) as s3:
            got = await s3.list(BUCKET, "raw/20240201/", page_size=5)
            return sorted(o.key for o in got.objects)

    assert asyncio.run(listing()) == archive.keys(r"^raw/20240201/")
    assert len(archive.keys(r"^raw/20240201/")) == 24
    assert len(proxy.log) == 5  # five pages of at most five


def test_listing_with_a_delimiter_gives_the_test_directories(moto: MotoServer) -> None:
    async def dirs() -> list[str]:
        async with AnonymousS3(moto.endpoint) as s3:
            return (await s3.list(BUCKET, "jsonl/", delimiter="/", page_size=1)).prefixes

    assert sorted(asyncio.run(dirs())) == ["jsonl/telegram/", "jsonl/webconnectivity/"]
