"""Every door's contract: what the collector takes (every real OONI measurement), what it
refuses (in one JSON sentence, storing nothing), the same rules at ingest, and an OpenAPI
document that states what the server does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import measurement

from didban.api.app import create_app
from didban.api.body import BODY_DEPTH
from didban.model.admission import MAX_DEPTH, MAX_INPUT
from didban.store.ingest import ingest
from didban.store.store import Store

REPORT = {
    "data_format_version": "0.2.0",
    "format": "json",
    "probe_asn": "AS197207",
    "probe_cc": "IR",
    "software_name": "ooniprobe",
    "software_version": "3.20.0",
    "test_name": "web_connectivity",
    "test_start_time": "2026-11-01 10:00:00",
    "test_version": "0.4.3",
}


def nothing_stored(store: Store) -> bool:
    tables = [
        store.reader.rows(f"SELECT count(*) AS n FROM {{{t}}}")[0]["n"]
        for t in ("measurements", "observations", "verdicts")
    ]
    return store.count() == 0 and not list(store.raw.rglob("*.zst")) and tables == [0, 0, 0]


def refused(r: Any, status: int = 400) -> str:
    """The one-sentence JSON refusal of ``r``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json", r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300
    return str(detail)


def nested(depth: int) -> Any:
    """A value with ``depth`` levels of arrays and objects (alternating)."""
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


DEEP = "__DEEP__"


def with_deep(value: Any, depth: int) -> str:
    """``value`` as JSON text, its ``DEEP`` string replaced by ``depth`` nested arrays
    (written by hand: json.dumps and orjson cannot write a thousand levels)."""
    return json.dumps(value).replace(f'"{DEEP}"', "[" * depth + "1" + "]" * depth)


def bodies(rid: str, m: dict[str, Any], depth: int, pad: int = 0) -> dict[str, tuple[str, str]]:
    """(path, body text) for each door, with a value ``depth`` levels deep in it."""
    content = with_deep({**m, "report_id": rid, "pad": "x" * pad, "deep": DEEP}, depth)
    return {
        "submit": ("/api/v1/submit_measurement", f'{{"format": "json", "content": {content}}}'),
        "submit-string": (
            "/api/v1/submit_measurement",
            json.dumps({"format": "json", "content": content}),
        ),
        "report": (f"/report/{rid}", f'{{"format": "json", "content": {content}}}'),
        "open": ("/report", with_deep({**REPORT, "pad": "x" * pad, "deep": DEEP}, depth)),
    }


def open_report(client: TestClient) -> str:
    r = client.post("/report", json=REPORT)
    assert r.status_code == 200, r.text
    return str(r.json()["report_id"])


# ---------------------------------------------------------------- real measurements


def test_every_ooni_fixture_is_taken_by_the_collector_and_read_back(
    ooni_fixtures: Path, tmp_path: Path
) -> None:
    """The collector takes every measurement OONI's collector takes (3 of these 22 were
    refused: no 'input', an old query shape), by both protocols, and the API serves them."""
    files = sorted((ooni_fixtures / "backend_fastpath").glob("*.json"))
    assert len(files) == 22
    s = Store(tmp_path / "d", classifier=None)
    try:
        with TestClient(create_app(s)) as c:
            for f in files:
                m = json.loads(f.read_bytes())
                r = c.post(
                    "/api/v1/submit_measurement",
                    json={"format": "json", "content": f.read_text()},
                )
                assert r.status_code == 200, (f.name, r.text)
                got = c.get(f"/api/v1/measurement/{r.json()['measurement_uid']}").json()
                # as sent, but for the collector's uid (and a report id where it was empty)
                sent = {**m, "report_id": m["report_id"] or r.json()["report_id"]}
                kept = got["measurement"]
                assert kept.pop("measurement_uid") == r.json()["measurement_uid"]
                assert kept == {k: v for k, v in sent.items() if k != "measurement_uid"}
                # the report protocol: a report opened with the measurement's own fields
                opened = c.post(
                    "/report",
                    json={
                        k: m.get(k, "")
                        for k in ("probe_cc", "probe_asn", "software_name", "software_version",
                                  "test_name", "test_start_time", "test_version")
                    },
                )  # fmt: skip
                assert opened.status_code == 200, (f.name, opened.text)
                rid = opened.json()["report_id"]
                r = c.post(f"/report/{rid}", json={"content": {**m, "report_id": rid}})
                assert r.status_code == 200, (f.name, r.text)
            listing = c.get("/api/v1/measurements", params={"limit": 100}).json()
            assert listing["metadata"]["count"] == 44
            tor = c.get("/api/v1/measurements", params={"test_name": "tor"}).json()
            assert tor["metadata"]["count"] == 2 and tor["results"][0]["input"] is None
    finally:
        s.close()


# ---------------------------------------------------------------- nesting and size


@pytest.mark.parametrize("depth", [MAX_DEPTH, 255, 256, 260, 500, 1010, 1025, 1500, 5000])
def test_deep_values_get_one_json_sentence_and_store_nothing(
    client: TestClient, store: Store, depth: int
) -> None:
    """Once a plain-text 500 from 260 to 1,010 levels (orjson's limits, in store/uid.py)."""
    rid = open_report(client)
    for door, (path, text) in bodies(rid, measurement(1), depth).items():
        r = client.post(path, content=text, headers={"content-type": "application/json"})
        if door == "open" and depth < BODY_DEPTH:
            continue  # the report's body may nest as deep as a submission's
        assert "levels of objects and arrays" in refused(r), (door, depth, r.text)
    assert nothing_stored(store)


def test_the_limits_themselves_are_taken(client: TestClient, store: Store) -> None:
    # a measurement exactly MAX_DEPTH levels deep (itself level 1), an input of MAX_INPUT
    m = {**measurement(2), "input": "https://x.example/" + "a" * (MAX_INPUT - 18)}
    m["deep"] = nested(MAX_DEPTH - 1)
    assert len(m["input"]) == MAX_INPUT
    r = client.post("/api/v1/submit_measurement", json={"format": "json", "content": m})
    assert r.status_code == 200, r.text
    m["input"] += "a"
    r = client.post("/api/v1/submit_measurement", json={"format": "json", "content": m})
    assert f"input is {MAX_INPUT + 1} characters long" in refused(r)
    assert store.count() == 1


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    depth=st.sampled_from([MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 255, 256, 1024, 1025])
    | st.integers(min_value=0, max_value=1200),
    pad=st.sampled_from([0, 63 * 1024, 64 * 1024]) | st.integers(min_value=0, max_value=80 * 1024),
    door=st.sampled_from(["submit", "submit-string", "report", "open"]),
)
def test_any_depth_or_size_is_stored_or_refused_clearly(
    client: TestClient, store: Store, depth: int, pad: int, door: str
) -> None:
    """Around and past every limit (the test app's body limit is 64 KiB): a 200 stores the
    measurement, anything else is a one-sentence 4xx and stores nothing."""
    before = store.count()
    rid = open_report(client)
    path, text = bodies(rid, measurement(depth * 100_000 + pad), depth, pad)[door]
    r = client.post(path, content=text, headers={"content-type": "application/json"})
    size = len(text.encode())
    # 'deep' is level depth+1 of the measurement, and of the report's body
    fits = size <= 64 * 1024 and depth + 1 <= (BODY_DEPTH if door == "open" else MAX_DEPTH)
    if fits:
        assert r.status_code == 200, (door, depth, size, r.text)
        assert store.count() == before + (0 if door == "open" else 1)
    else:
        refused(r, 413 if size > 64 * 1024 else 400)
        assert store.count() == before


# ---------------------------------------------------------------- one rule set, every door


BAD_RECORDS = [
    ({"test_name": "../../x"}, "test_name must be a test name"),
    ({"measurement_start_time": "9999-99-99"}, "measurement_start_time must be a UTC time"),
    ({"measurement_start_time": "2026-02-30 10:00:00"}, "is not a real date and time"),
    ({"measurement_start_time": "2099-01-01 00:00:00"}, "is in the future"),
    ({"measurement_start_time": "2011-12-31 23:59:59"}, "is before 2012-01-01"),
    ({"input": "https://x.example/" + "a" * 1_000_000}, "characters long; the limit is 2048"),
    ({"input": ["a", "list"]}, "input must be a string or null"),
    ({"probe_cc": "Iran"}, "probe_cc must be two capital letters"),
    ({"probe_cc": "IR\n"}, "probe_cc must be two capital letters"),
    ({"probe_asn": "foo"}, "probe_asn must look like 'AS197207'"),
    ({"probe_asn": "AS١٢٣"}, "probe_asn must look like 'AS197207'"),
    ({"report_id": "../etc/passwd"}, "report_id must be letters, digits"),
    ({"rule_id": "x", "rules_version": "1", "test_keys": None}, "a didban verdict"),
]


@pytest.mark.parametrize(("change", "words"), BAD_RECORDS)
def test_the_collector_and_ingest_refuse_the_same_records_the_same_way(
    client: TestClient, store: Store, tmp_path: Path, change: dict[str, Any], words: str
) -> None:
    m = {**measurement(3), **change}
    r = client.post(
        "/api/v1/submit_measurement", content=orjson.dumps({"format": "json", "content": m})
    )
    sentence = refused(r, 413 if len(r.request.content) > 64 * 1024 else 400)
    if r.status_code == 400:
        assert words in sentence
    f = tmp_path / "bad.jsonl"
    f.write_bytes(orjson.dumps(m) + b"\n")
    s = Store(tmp_path / "ingested", classifier=None)
    try:
        rep = ingest(s, [f])
        assert rep.added == 0 and len(rep.bad) == 1 and words in rep.bad[0]
        assert rep.bad[0].startswith(f"{f}:1: ")
    finally:
        s.close()
    assert nothing_stored(store)


def test_stored_values_are_ones_the_read_api_can_ask_for(client: TestClient) -> None:
    m = measurement(4, cc="TM", asn="AS20661")
    uid = client.post("/api/v1/submit_measurement", json={"content": m}).json()["measurement_uid"]
    params = {
        "probe_cc": m["probe_cc"],
        "probe_asn": m["probe_asn"],
        "test_name": m["test_name"],
        "report_id": m["report_id"],
        "input": m["input"],
        "since": m["measurement_start_time"][:10],
    }
    r = client.get("/api/v1/measurements", params=params)
    assert [x["measurement_uid"] for x in r.json()["results"]] == [uid], r.text
    long_input = "a" * (MAX_INPUT + 1)
    assert "input is" in refused(client.get("/api/v1/measurements", params={"input": long_input}))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"probe_cc": "Iran"}, "probe_cc must be two capital letters"),
        ({"probe_asn": "foo"}, "probe_asn must look like 'AS197207'"),
        ({"test_name": "../../x"}, "test_name must be a test name"),
        ({"test_start_time": "2099-01-01 00:00:00"}, "is in the future"),
        ({"format": "yaml"}, "format 'yaml' is not supported"),
        ({"software_name": None}, "software_name must be a string"),
    ],
)
def test_a_report_no_measurement_could_join_is_not_opened(
    client: TestClient, change: dict[str, Any], words: str
) -> None:
    r = client.post("/report", json={**REPORT, **change})
    assert words in refused(r)


# ---------------------------------------------------------------- the document


def test_openapi_states_every_status_body_and_media_type(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            assert "422" not in responses, (method, path)
            for status, answer in responses.items():
                for media, content in answer.get("content", {}).items():
                    assert content.get("schema"), (method, path, status, media)
                if status != "200":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}
            if op.get("parameters") or op.get("requestBody"):  # something the client can get wrong
                assert "400" in responses, (method, path)
    export = doc["paths"]["/api/v1/export/{table}"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"application/vnd.apache.parquet", "text/csv"}
    for path in ("/report", "/report/{report_id}", "/api/v1/submit_measurement"):
        assert {"400", "413", "415"} <= set(doc["paths"][path]["post"]["responses"])
    body = doc["paths"]["/api/v1/submit_measurement"]["post"]["requestBody"]["content"]
    content = body["application/json"]["schema"]["properties"]["content"]
    assert content["required"] == ["test_name", "probe_cc", "probe_asn", "measurement_start_time"]
    assert content["properties"]["input"]["maxLength"] == MAX_INPUT
    listing = doc["paths"]["/api/v1/measurements"]["get"]["parameters"]
    assert all(p["allowEmptyValue"] for p in listing)
    assert BODY_DEPTH == MAX_DEPTH + 1


def test_the_documented_time_pattern_is_the_time_rule() -> None:
    """OpenAPI's measurement_start_time pattern accepts a day exactly when the server's rule
    does (for the day the pattern was written: the rule allows up to a day more)."""
    import re
    from datetime import UTC, date, datetime, timedelta

    from didban.model.admission import time_pattern, time_refusal

    today = date(2028, 3, 1)  # after a leap day
    pattern = re.compile(time_pattern(today))
    now = datetime(2028, 3, 1, 0, 0, 0, tzinfo=UTC)
    day = date(2011, 12, 25)
    while day < date(2028, 3, 10):
        for clock in ("00:00:00", "23:59:59"):
            text = f"{day} {clock}"
            if pattern.fullmatch(text):
                assert time_refusal("t", text, now) is None, text
            elif day <= today:
                assert time_refusal("t", text, now) is not None, text
        day += timedelta(days=1)
    for text in ("2016-02-30 10:00:00", "2017-02-29 10:00:00", "2020-01-01 24:00:00"):
        assert not pattern.fullmatch(text) and time_refusal("t", text, now) is not None
