"""Reading OONI aggregation output (JSON, CSV) and IODA signal exports, and refusing bad files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from didban.events.readers import InputError, read_ioda, read_ooni_aggregation

COUNTS = {
    "anomaly_count": 1,
    "confirmed_count": 2,
    "failure_count": 3,
    "ok_count": 4,
    "measurement_count": 10,
}


def _json(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    p = tmp_path / "agg.json"
    p.write_text(json.dumps({"v": 0, "dimension_count": 1, "result": rows}))
    return p


def test_ooni_json_daily_without_axis_y(tmp_path: Path) -> None:
    rows = [
        {"measurement_start_day": "2022-09-20", **COUNTS},
        {"measurement_start_day": "2022-09-22", **COUNTS, "anomaly_count": 9},
    ]
    s = read_ooni_aggregation(_json(tmp_path, rows), cc="IR")
    g = s.grid
    assert g.step == timedelta(days=1) and g.start == datetime(2022, 9, 20)
    assert g.n_buckets == 3 and g.keys == [("IR", None, None, "")]
    assert g["blocked"][0].tolist() == [3, 0, 11]  # anomaly + confirmed
    assert g["ok"][0].tolist() == [4, 0, 4]
    assert g["n"][0].tolist() == [10, 0, 10]


def test_ooni_json_hourly_with_probe_asn(tmp_path: Path) -> None:
    rows = [
        {"measurement_start_day": "2022-09-21T15:00:00Z", "probe_asn": 44244, **COUNTS},
        {"measurement_start_day": "2022-09-21T16:00:00Z", "probe_asn": "AS197207", **COUNTS},
    ]
    g = read_ooni_aggregation(_json(tmp_path, rows), cc="IR").grid
    assert g.step == timedelta(hours=1)
    assert g.keys == [("IR", 44244, None, ""), ("IR", 197207, None, "")]
    assert g["n"].tolist() == [[10, 0], [0, 10]]


def test_ooni_csv_with_domain_and_hour_axis(tmp_path: Path) -> None:
    p = tmp_path / "agg.csv"
    p.write_text(
        "measurement_start_hour,domain,probe_cc,anomaly_count,confirmed_count,failure_count,"
        "ok_count,measurement_count\n"
        "2022-09-21T15:00:00Z,www.instagram.com,IR,5,0,1,2,8\n"
        "2022-09-21T15:00:00Z,www.whatsapp.com,IR,0,0,0,7,7\n"
    )
    g = read_ooni_aggregation(p).grid
    assert g.keys == [("IR", None, "www.instagram.com", ""), ("IR", None, "www.whatsapp.com", "")]
    assert g["blocked"][:, 0].tolist() == [5, 0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        (
            "day,anomaly_count\n2022-01-01,3\n",
            "has no measurement_start_day or measurement_start_hour",
        ),
        ("measurement_start_day,anomaly_count,ok_count\n2022-01-01,1,2\n", "lacks the column"),
        (
            "measurement_start_day,anomaly_count,ok_count,measurement_count\nyesterday,1,2,3\n",
            "row 1: measurement_start_day 'yesterday' is not a date",
        ),
        (
            "measurement_start_day,anomaly_count,ok_count,measurement_count\n2022-01-01,-1,2,3\n",
            "row 1: anomaly_count is negative",
        ),
        ('{"result": {"anomaly_count": 1}}', "has no time axis"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_bad_ooni_files_are_one_sentence(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=message):
        read_ooni_aggregation(p)


IODA = (
    "Time (UTC),Active Probing (# /24s Up),BGP (# Visible /24s),Telescope (# Unique Source IPs)\n"
    "2019-11-16 13:50:00,1000,500,\n"
    "2019-11-16 14:00:00,990,,300\n"
    "2019-11-16T14:10:00Z,100,40,20\n"
)


def test_ioda_export_with_empty_cells(tmp_path: Path) -> None:
    p = tmp_path / "ioda.csv"
    p.write_text(IODA)
    s = read_ioda(p)
    assert s.step == timedelta(minutes=10)
    assert s.times[0] == datetime(2019, 11, 16, 13, 50)
    assert list(s.signals) == [
        "Active Probing (# /24s Up)",
        "BGP (# Visible /24s)",
        "Telescope (# Unique Source IPs)",
    ]
    bgp = s.signals["BGP (# Visible /24s)"]
    assert bgp[0] == 500 and np.isnan(bgp[1]) and bgp[2] == 40


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("Date,BGP\n2019-11-16,1\n", "first column is 'Date', not 'Time \\(UTC\\)'"),
        ("Time (UTC)\n2019-11-16,1\n", "names no signal"),
        ("Time (UTC),BGP\nnoon,1\n", "line 2: 'noon' is not a time"),
        ("Time (UTC),BGP\n2019-11-16 10:00,-4\n", "line 2: BGP is negative"),
        ("Time (UTC),BGP\n2019-11-16 10:00,lots\n", "is not a number"),
        ("Time (UTC),BGP\n", "holds no rows"),
    ],
)
def test_bad_ioda_files_are_one_sentence(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=message):
        read_ioda(p)
