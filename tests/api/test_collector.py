"""The collector: OONI's report protocol, single-call submission, and refusing bad bodies."""

from __future__ import annotations

import orjson
import zstandard
from fastapi.testclient import TestClient
from store_helpers import measurement

from didban.api.collector import REPORT_ID
from didban.store.store import Store


def open_report(client: TestClient, cc: str = "IR", asn: str = "AS197207") -> str:
    r = client.post(
        "/report",
        json={
            "data_format_version": "0.2.0",
            "format": "json",
            "probe_asn": asn,
            "probe_cc": cc,
            "software_name": "ooniprobe",
            "software_version": "3.20.0",
            "test_name": "web_connectivity",
            "test_start_time": "2026-11-01 10:00:00",
            "test_version": "0.4.3",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["supported_formats"] == ["json"]
    return str(r.json()["report_id"])


def test_report_protocol_round_trip(client: TestClient, store: Store) -> None:
    rid = open_report(client)
    assert REPORT_ID.match(rid) and "_webconnectivity_IR_197207_n0_" in rid
    m = {**measurement(1), "report_id": rid}
    r = client.post(f"/report/{rid}", json={"format": "json", "content": m})
    assert r.status_code == 200, r.text
    uid = r.json()["measurement_uid"]
    assert uid.endswith("_IR_webconnectivity_" + uid[-16:])
    assert client.post(f"/report/{rid}/close").json() == {}
    got = client.get(f"/api/v1/measurement/{uid}").json()
    assert got["measurement"]["report_id"] == rid
    assert store.count() == 1


def test_submit_measurement_dedupes_resubmissions(client: TestClient, store: Store) -> None:
    m = measurement(2)
    body = {"format": "json", "content": orjson.dumps(m).decode()}
    first = client.post("/api/v1/submit_measurement", json=body).json()
    second = client.post("/api/v1/submit_measurement", json={"format": "json", "content": m}).json()
    assert first["measurement_uid"] == second["measurement_uid"]
    assert first["verification_status"] == "unverified" and first["report_id"] == m["report_id"]
    assert store.count() == 1


def test_zstd_body_is_accepted(client: TestClient, store: Store) -> None:
    raw = orjson.dumps({"format": "json", "content": measurement(3)})
    r = client.post(
        "/api/v1/submit_measurement",
        content=zstandard.ZstdCompressor().compress(raw),
        headers={"content-encoding": "zstd", "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert store.count() == 1


def test_bad_bodies_get_4xx_and_store_nothing(client: TestClient, store: Store) -> None:
    rid = open_report(client)
    good = {**measurement(4), "report_id": rid}
    cases = [
        ("/api/v1/submit_measurement", b"{not json", {}, 400, "not valid JSON"),
        ("/api/v1/submit_measurement", b"", {}, 400, "body is empty"),
        ("/api/v1/submit_measurement", b"x" * (65 * 1024), {}, 413, "limit"),
        (
            "/api/v1/submit_measurement",
            orjson.dumps({"format": "json", "content": {**good, "probe_cc": "iran"}}),
            {},
            400,
            "probe_cc must be two capital letters",
        ),
        (
            "/api/v1/submit_measurement",
            orjson.dumps(
                {
                    "format": "json",
                    "content": {k: v for k, v in good.items() if k != "measurement_start_time"},
                }
            ),
            {},
            400,
            "missing field 'measurement_start_time'",
        ),
        (
            "/api/v1/submit_measurement",
            orjson.dumps({"format": "json", "content": good}),
            {"content-encoding": "br"},
            415,
            "not supported",
        ),
        (
            f"/report/{rid}",
            orjson.dumps({"format": "json", "content": {**good, "probe_cc": "TM"}}),
            {},
            400,
            "inconsistent measurement",
        ),
        ("/report/not-a-report", orjson.dumps({"content": good}), {}, 400, "not a report id"),
    ]
    for path, body, headers, status, words in cases:
        r = client.post(path, content=body, headers={"content-type": "application/json", **headers})
        assert r.status_code == status, (path, r.text)
        assert words in r.json()["detail"], r.text
    # A zstd bomb: small on the wire, over the limit once decompressed.
    bomb = zstandard.ZstdCompressor().compress(b" " * (200 * 1024))
    r = client.post(
        "/api/v1/submit_measurement", content=bomb, headers={"content-encoding": "zstd"}
    )
    assert r.status_code == 413
    assert store.count() == 0
    assert not list(store.raw.rglob("*.zst"))
