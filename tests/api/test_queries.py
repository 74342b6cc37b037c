"""Read endpoints: listing filters, aggregation counts against hand counts, services, exports."""

from __future__ import annotations

import csv
import io
import re

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from store_helpers import measurement

from didban.store.schema import TABLES
from didban.store.store import Store

# (cc, asn, url, day, wanted verdict) — the hand counts below are read off this table.
ROWS = [
    ("IR", "AS197207", "https://www.instagram.com/", "2026-11-01", "blocked+confirmed"),
    ("IR", "AS197207", "https://www.instagram.com/", "2026-11-01", "blocked"),
    ("IR", "AS58224", "https://www.instagram.com/", "2026-11-02", "ok"),
    ("IR", "AS58224", "https://telegram.org/", "2026-11-02", "blocked"),
    ("IR", "AS58224", "https://web.telegram.org/", "2026-11-02", "ok"),
    ("IR", "AS197207", "https://signal.org/", "2026-11-02", "down"),
    ("IR", "AS197207", "https://www.bbc.com/persian", "2026-11-03", "inconclusive"),
    ("IR", "AS197207", "https://www.wikipedia.org/", "2026-11-03", None),
    ("TM", "AS20661", "https://www.instagram.com/", "2026-11-01", "ok"),
    ("TM", "AS20661", "https://telegram.org/", "2026-11-03", "blocked"),
]


@pytest.fixture
def loaded(client: TestClient, store: Store) -> list[str]:
    ms = []
    for i, (cc, asn, url, day, want) in enumerate(ROWS):
        m = measurement(i, cc=cc, asn=asn, url=url, start=f"{day} 1{i % 10}:00:00")
        if want:
            m["annotations"]["want"] = want
        ms.append(m)
    return [a.measurement_uid for a in store.add_batch(ms)]


def test_aggregation_counts_match_hand_counts(client: TestClient, loaded: list[str]) -> None:
    r = client.get(
        "/api/v1/aggregation",
        params={"since": "2026-11-01", "until": "2026-11-04", "axis_x": "probe_cc"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dimension_count"] == 1
    by_cc = {row["probe_cc"]: row for row in body["result"]}
    # IR: 8 measurements; ok 2; anomaly (blocked, not confirmed) 2; confirmed 1;
    # failure = down + inconclusive + no verdict = 3.
    assert {
        k: by_cc["IR"][k]
        for k in (
            "measurement_count",
            "ok_count",
            "anomaly_count",
            "confirmed_count",
            "failure_count",
            "down_count",
        )
    } == {
        "measurement_count": 8,
        "ok_count": 2,
        "anomaly_count": 2,
        "confirmed_count": 1,
        "failure_count": 3,
        "down_count": 1,
    }
    assert (by_cc["TM"]["measurement_count"], by_cc["TM"]["anomaly_count"]) == (2, 1)


def test_aggregation_by_service_and_day_and_csv(client: TestClient, loaded: list[str]) -> None:
    params = {
        "probe_cc": "IR",
        "since": "2026-11-01",
        "until": "2026-11-04",
        "axis_x": "measurement_start_day",
        "axis_y": "service",
        "time_grain": "day",
    }
    rows = client.get("/api/v1/aggregation", params=params).json()["result"]
    cell = {(r["measurement_start_day"], r["service"]): r for r in rows}
    assert cell[("2026-11-01", "instagram")]["measurement_count"] == 2
    assert cell[("2026-11-02", "telegram")]["anomaly_count"] == 1
    assert cell[("2026-11-02", "telegram")]["ok_count"] == 1
    r = client.get("/api/v1/aggregation", params={**params, "format": "CSV"})
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    telegram = next(
        t for t in table if (t["measurement_start_day"], t["service"]) == ("2026-11-02", "telegram")
    )
    assert (telegram["anomaly_count"], telegram["ok_count"]) == ("1", "1")


def test_aggregation_by_blocking_type_counts_methods(client: TestClient, loaded: list[str]) -> None:
    # OONI's blocking_type axis is didban's verdict method (a column of the same name as the
    # axis exists too: grouping by name once answered 500 here).
    r = client.get(
        "/api/v1/aggregation",
        params={"since": "2026-11-01", "until": "2026-11-04", "axis_x": "blocking_type"},
    )
    assert r.status_code == 200, r.text
    by_method = {row["blocking_type"]: row["measurement_count"] for row in r.json()["result"]}
    assert by_method["tcp.reset"] == 4


def test_openapi_shows_the_parameter_types(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()["paths"]
    listing = {p["name"]: p["schema"] for p in spec["/api/v1/measurements"]["get"]["parameters"]}
    cc = re.compile(listing["probe_cc"]["pattern"])
    assert cc.match("IR,TM") and cc.match("IR, TM") and not cc.match("Iran")
    assert listing["order"]["enum"] == ["asc", "desc"]
    assert "measurement_start_time" in listing["order_by"]["enum"]
    assert (listing["limit"]["minimum"], listing["limit"]["maximum"]) == (1, 100_000)
    assert listing["anomaly"]["type"] == "boolean"
    aggregation = {p["name"]: p["schema"] for p in spec["/api/v1/aggregation"]["get"]["parameters"]}
    assert "blocking_type" in aggregation["axis_x"]["anyOf"][0]["enum"]
    assert {s["format"] for s in aggregation["since"]["oneOf"]} == {"date", "date-time"}
    export = {p["name"]: p["schema"] for p in spec["/api/v1/export/{table}"]["get"]["parameters"]}
    assert export["table"]["enum"] == list(TABLES)  # the API's Literal follows store.schema
    assert {"since", "until"} <= {
        p["name"] for p in spec["/api/v1/export/{table}"]["get"]["parameters"] if p["required"]
    }


def test_measurement_listing_filters(client: TestClient, loaded: list[str]) -> None:
    r = client.get("/api/v1/measurements", params={"probe_cc": "IR", "anomaly": "true"}).json()
    assert r["metadata"]["count"] == 3  # anomaly is true for confirmed ones too
    assert {x["input"] for x in r["results"]} == {
        "https://www.instagram.com/",
        "https://telegram.org/",
    }
    r = client.get(
        "/api/v1/measurements",
        params={"probe_asn": "58224", "since": "2026-11-02", "until": "2026-11-03",
                "order": "asc", "limit": 2},
    ).json()  # fmt: skip
    assert r["metadata"]["count"] == 3 and len(r["results"]) == 2
    assert r["metadata"]["next_url"].endswith("offset=2")
    assert r["results"][0]["probe_asn"] == "AS58224"
    conf = client.get("/api/v1/measurements", params={"confirmed": "true"}).json()
    assert [x["measurement_uid"] for x in conf["results"]] == [loaded[0]]
    dom = client.get("/api/v1/measurements", params={"domain": "telegram.org"}).json()
    assert dom["metadata"]["count"] == 2
    cat = client.get("/api/v1/measurements", params={"category_code": "COMT"}).json()
    assert cat["metadata"]["count"] == 4  # IR telegram.org, web.telegram.org, signal; TM telegram


def test_one_measurement_has_verdict_and_evidence(client: TestClient, loaded: list[str]) -> None:
    got = client.get(f"/api/v1/measurement/{loaded[0]}").json()
    assert got["measurement"]["input"] == "https://www.instagram.com/"
    assert got["verdict"]["state"] == "blocked" and got["verdict"]["confirmed"] is True
    assert got["evidence"][0]["pointer"] == "/test_keys/tcp_connect/0"
    missing = client.get(
        "/api/v1/measurement/20261101100000.000000_IR_webconnectivity_0000000000000000"
    )
    assert missing.status_code == 404


def test_services_state_per_country(client: TestClient, loaded: list[str]) -> None:
    r = client.get(
        "/api/v1/services/IR", params={"since": "2026-11-01", "until": "2026-11-04"}
    ).json()
    svc = {s["service"]: s for s in r["services"]}
    # instagram: latest measurement (11-02, ok) — the per-input latest decides.
    assert svc["instagram"]["state"] == "ok"
    # telegram: telegram.org blocked, web.telegram.org ok → blocked, witness the blocked one.
    assert svc["telegram"]["state"] == "blocked"
    assert svc["telegram"]["witness"]["measurement_uid"] == loaded[3]
    assert svc["telegram"]["method"] == "tcp.reset"
    assert svc["signal"]["state"] == "down"
    assert svc["whatsapp"]["state"] == "no_data" and svc["whatsapp"]["witness"] is None


def test_exports_stream_parquet_and_csv(client: TestClient, loaded: list[str]) -> None:
    r = client.get(
        "/api/v1/export/measurements",
        params={"since": "2026-11-01", "until": "2026-11-02", "probe_cc": "IR"},
    )
    assert r.status_code == 200
    t = pq.read_table(io.BytesIO(r.content))
    assert t.num_rows == 6 and "measurement_uid" in t.column_names
    r = client.get(
        "/api/v1/export/observations",
        params={"since": "2026-11-01", "until": "2026-11-03", "format": "csv"},
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 20 and {row["layer"] for row in rows} == {"dns", "tcp"}
    empty = client.get(
        "/api/v1/export/verdicts", params={"since": "2020-01-01", "until": "2020-01-02"}
    )
    assert pq.read_table(io.BytesIO(empty.content)).num_rows == 0


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/api/v1/measurements", {"probe_cc": "Iran"}, "probe_cc must be two-letter"),
        ("/api/v1/measurements", {"probe_asn": "ASX"}, "probe_asn must be AS numbers"),
        ("/api/v1/measurements", {"since": "yesterday"}, "since must be a date"),
        ("/api/v1/measurements", {"anomaly": "maybe"}, "anomaly must be true or false"),
        ("/api/v1/measurements", {"limit": "0"}, "limit must be between"),
        ("/api/v1/measurements", {"limit": "many"}, "limit"),
        ("/api/v1/measurements", {"order_by": "probe_ip"}, "order_by must be one of"),
        ("/api/v1/aggregation", {"axis_x": "probe_ip"}, "axis_x must be one of"),
        ("/api/v1/aggregation", {"time_grain": "minute"}, "time_grain must be one of"),
        ("/api/v1/aggregation", {"since": "2026-12-01", "until": "2026-11-01"}, "since must not"),
        ("/api/v1/aggregation", {"format": "XML"}, "format must be one of"),
        ("/api/v1/aggregation", {"since": "2026-11-01xyz"}, "since must be a date"),
        ("/api/v1/aggregation", {"download": "perhaps"}, "download must be true or false"),
        ("/api/v1/aggregation", {"axis_x": "state", "axis_y": "state"}, "must differ"),
        ("/api/v1/services/iran", {}, "probe_cc must be two-letter"),
        ("/api/v1/export/measurements", {"since": "2026-11-01"}, "until"),
        ("/api/v1/export/measurements", {"since": "", "until": "2026-11-01"}, "are required"),
        ("/api/v1/measurement/x", {}, "is not a measurement uid"),
    ],
)
def test_bad_parameters_get_400(
    client: TestClient, path: str, params: dict[str, str], words: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert words in r.json()["detail"]


def test_an_unknown_table_is_404_whatever_the_other_parameters(client: TestClient) -> None:
    for params in ({"since": "2026-11-01", "until": "2026-11-02"}, {"since": "x"}):
        r = client.get("/api/v1/export/logs", params=params)
        assert r.status_code == 404
        assert r.json()["detail"].startswith("no table 'logs'; tables: measurements")
