"""Series from the store's verdicts: dense buckets, state counts, probes, filters, resolvers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from events_helpers import T0, hourly, verdict, write_store

from didban.events import series
from didban.events.grid import parse_bucket
from didban.events.series import Filters, SourceError, VerdictSource


def test_dense_grid_counts_every_state_and_keeps_empty_hours(tmp_path: Path) -> None:
    rows = [
        verdict(T0 + timedelta(minutes=5), "ok", report="a"),
        verdict(T0 + timedelta(minutes=15), "blocked", report="b"),
        verdict(T0 + timedelta(minutes=25), "inconclusive", report="b"),
        verdict(T0 + timedelta(hours=3, minutes=1), "down", report="c"),
        verdict(
            T0 + timedelta(hours=3, minutes=2),
            "blocked",
            method="nin.isolated",
            layer="ip",
            report="c",
        ),
    ]
    g = series.target_grid(VerdictSource.store(write_store(tmp_path, rows)), Filters())
    assert g.keys == [("IR", 44244, "instagram", "")]
    assert g.start == T0 and g.n_buckets == 4  # hours 1 and 2 are present, with zeros
    assert g["ok"][0].tolist() == [1, 0, 0, 0]
    assert g["blocked"][0].tolist() == [1, 0, 0, 0]  # nin.isolated is not a block of the target
    assert g["isolated"][0].tolist() == [0, 0, 0, 1]
    assert g["inconclusive"][0].tolist() == [1, 0, 0, 0]
    assert g["down"][0].tolist() == [0, 0, 0, 1]
    assert g["probes"][0].tolist() == [2, 0, 0, 1]


def test_volume_series_per_network_and_country(tmp_path: Path) -> None:
    rows = hourly(3, 4, asn=44244) + hourly(3, 2, asn=197207) + hourly(3, 1, service="telegram")
    g = series.target_grid(VerdictSource.store(write_store(tmp_path, rows)), Filters())
    by_asn = series.volume(g, ("cc", "asn"))
    assert dict(zip(by_asn.keys, by_asn["n"][:, 0].tolist(), strict=True)) == {
        ("IR", 44244): 5,
        ("IR", 197207): 2,
    }
    by_cc = series.volume(g, ("cc",))
    assert by_cc["n"].tolist() == [[7, 7, 7]]


def test_filters_and_bucket_sizes(tmp_path: Path) -> None:
    rows = hourly(48, 2, asn=44244) + hourly(48, 2, asn=197207, cc="AF")
    src = VerdictSource.store(write_store(tmp_path, rows))
    g = series.target_grid(src, Filters(cc=("AF",)), parse_bucket("1d"))
    assert [k[:2] for k in g.keys] == [("AF", 197207)]
    assert g.n_buckets == 2 and g["ok"].tolist() == [[48, 48]]
    g = series.target_grid(
        src,
        Filters(asn=(44244,), since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=3)),
        parse_bucket("1m"),
    )
    assert g.n_buckets == 60 and g["ok"].sum() == 2
    assert series.target_grid(src, Filters(target=("telegram",))).n_series == 0
    assert series.target_grid(src, Filters(target=("www.instagram.com",))).n_series == 2


def test_layer_grid_keys_blocks_by_layer(tmp_path: Path) -> None:
    rows = [
        verdict(T0, "blocked", method="dns.injection.bogon", layer="dns"),
        verdict(T0, "blocked"),
        verdict(T0, "ok"),
    ]
    g = series.layer_grid(VerdictSource.store(write_store(tmp_path, rows)), Filters())
    layers = {k[3]: int(g["blocked"][i].sum() + g["ok"][i].sum()) for i, k in enumerate(g.keys)}
    assert layers == {"dns": 1, "tls": 1, None: 1}


def test_dns_series_by_resolver_kind_joins_the_measurements(tmp_path: Path) -> None:
    v = [
        verdict(T0, "blocked", method="dns.injection.bogon", layer="dns", uid="u1"),
        verdict(T0, "ok", uid="u2"),
        verdict(T0, "ok", uid="u3"),
    ]
    m = [
        {
            "measurement_uid": "u1",
            "measurement_start_time": T0,
            "probe_asn": 44244,
            "resolver_asn": 44244,
        },
        {
            "measurement_uid": "u2",
            "measurement_start_time": T0,
            "probe_asn": 44244,
            "resolver_asn": 15169,
        },
    ]
    write_store(tmp_path, v)
    write_store(tmp_path, m, table="measurements")
    g = series.target_grid(VerdictSource.store(tmp_path), Filters(), by_resolver=True)
    kinds = {k[3]: (int(g["blocked"][i, 0]), int(g["ok"][i, 0])) for i, k in enumerate(g.keys)}
    assert kinds == {"isp": (1, 0), "other": (0, 1), "": (0, 1)}


def test_bad_sources_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="there is no store at"):
        VerdictSource.store(tmp_path / "missing")
    empty = series.target_grid(VerdictSource.store(tmp_path), Filters())
    assert empty.n_series == 0
    with pytest.raises(ValueError, match="a bucket is a number"):
        parse_bucket("1w")
    with pytest.raises(ValueError, match="a bucket is a number"):
        parse_bucket("0s")


def test_buckets_down_to_seconds_for_a_short_lab_scenario() -> None:
    assert parse_bucket("10s") == timedelta(seconds=10)
    assert parse_bucket("1m") == timedelta(minutes=1)
    assert parse_bucket("1d") == timedelta(days=1)


def test_grid_rows_round_trip(tmp_path: Path) -> None:
    rows = hourly(2, 3)
    g = series.target_grid(VerdictSource.store(write_store(tmp_path, rows)), Filters())
    long = g.rows()
    assert [(r["t"], r["ok"]) for r in long] == [(T0, 3), (T0 + timedelta(hours=1), 3)]
    assert np.all(g["blocked"] == 0)
