"""The store: de-duplication, tables, verdict flags, crash recovery, rebuild, compaction."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import zstandard
from store_helpers import by_annotation, measurement

from didban.store import archive
from didban.store.store import Store, StoreBusy


def count(store: Store, table: str) -> int:
    return int(store.reader.rows(f"SELECT count(*) AS n FROM {{{table}}}")[0]["n"])


def test_same_content_is_stored_once(store: Store) -> None:
    m = measurement(1)
    reordered = orjson.loads(orjson.dumps(dict(reversed(list(m.items())))))
    first = store.add_batch([m], received=None)[0]
    again = store.add_batch([reordered, m])
    assert not first.duplicate
    assert [a.duplicate for a in again] == [True, True]
    assert {a.measurement_uid for a in again} == {first.measurement_uid}
    assert store.count() == 1
    lines = sum(len(f.lines) for p in archive.files(store.raw) for f in archive.scan(p))
    assert lines == 1 and count(store, "measurements") == 1


def test_rows_carry_service_category_asn_and_verdict_flags(store: Store) -> None:
    m = measurement(1)
    m["annotations"]["want"] = "blocked+confirmed"
    uid = store.add_batch([m])[0].measurement_uid
    row = store.reader.rows("SELECT * FROM {measurements}")[0]
    assert row["measurement_uid"] == uid
    assert (row["service"], row["category_code"], row["domain"]) == (
        "instagram",
        "GRP",
        "www.instagram.com",
    )
    assert (row["anomaly"], row["confirmed"], row["failure"]) == (True, True, False)
    assert (row["probe_asn"], row["method"], row["rules_version"]) == (
        197207,
        "tcp.reset",
        "test-rules-1",
    )
    obs = store.reader.rows("SELECT layer, ip, ip_asn, failure FROM {observations} ORDER BY layer")
    assert obs == [
        {"layer": "dns", "ip": "157.240.1.174", "ip_asn": 32934, "failure": None},
        {"layer": "tcp", "ip": "157.240.1.174", "ip_asn": 32934, "failure": "connection_reset"},
    ]
    v = store.reader.rows("SELECT state, rule_id, evidence FROM {verdicts}")[0]
    assert v["state"] == "blocked" and v["rule_id"] == "test.rule"
    assert orjson.loads(v["evidence"])[0]["pointer"] == "/test_keys/tcp_connect/0"


def test_no_verdict_is_a_failure_never_ok(store: Store) -> None:
    store.add_batch([measurement(1)])
    row = store.reader.rows("SELECT state, anomaly, failure FROM {measurements}")[0]
    assert row == {"state": None, "anomaly": False, "failure": True}


def test_second_writer_is_refused_with_a_clear_message(store: Store) -> None:
    with pytest.raises(StoreBusy, match="in use by another didban process"):
        Store(store.dir)


def test_half_written_frame_is_cut_and_unindexed_frame_recovered(tmp_path: Path) -> None:
    d = tmp_path / "data"
    s = Store(d, classifier=None)
    s.add_batch([measurement(1)])
    s.close()
    path = archive.files(d / "raw")[0]
    # A complete frame the index never heard of (crash after fsync, before the commit) …
    stray = {
        **measurement(2),
        "measurement_uid": "20261101100000.000000_IR_webconnectivity_00ff00ff00ff00ff",
    }
    archive.append(path, [orjson.dumps(stray)])
    size_with_stray = path.stat().st_size
    # … then half a frame (crash during the write).
    frame = zstandard.ZstdCompressor().compress(orjson.dumps(measurement(3)) + b"\n")
    with path.open("ab") as fh:
        fh.write(frame[:20])
    s = Store(d, classifier=None)
    try:
        assert path.stat().st_size == size_with_stray
        assert s.count() == 2
        assert s.get(stray["measurement_uid"])["annotations"] == {"seq": "2"}
        assert count(s, "measurements") == 2
    finally:
        s.close()


def test_unflushed_rows_are_rederived_after_a_crash(tmp_path: Path) -> None:
    d = tmp_path / "data"
    s = Store(d, classifier=None)
    s.add_batch([measurement(i) for i in range(5)])
    # Simulate a crash: rows were buffered, never flushed; a flush was half done.
    half = s.tables_root / "measurements" / "day=2026-11-01" / "inc-1-1-1.parquet"
    half.parent.mkdir(parents=True)
    half.write_bytes(b"partial")
    s.index.begin_pending("flush", orjson.dumps([str(half)]).decode())
    s.writer._uids.clear()  # the buffered rows die with the process
    s.index.close()
    s._lockfile.close()
    s = Store(d, classifier=None)
    try:
        assert not half.exists()
        assert count(s, "measurements") == 5
        assert count(s, "observations") == 10
    finally:
        s.close()


def test_rebuild_recreates_the_same_tables(store: Store) -> None:
    ms = [measurement(i) for i in range(20)]
    for i, m in enumerate(ms):
        m["annotations"]["want"] = ["ok", "blocked", "down"][i % 3]
    store.add_batch(ms)
    before = store.reader.rows("SELECT measurement_uid, state FROM {measurements} ORDER BY 1")
    assert store.rebuild() == 20
    after = store.reader.rows("SELECT measurement_uid, state FROM {measurements} ORDER BY 1")
    assert before == after and store.count() == 20


def test_compaction_keeps_every_row_once(store: Store) -> None:
    for i in range(6):
        store.add_batch([measurement(i)])
        store.flush()
    day = store.tables_root / "measurements" / "day=2026-11-01"
    assert len(list(day.glob("*.parquet"))) == 6
    assert store.compact(min_files=2) == 2  # measurements and observations (no verdicts)
    assert len(list(day.glob("*.parquet"))) == 1
    assert count(store, "measurements") == 6
    assert (
        store.reader.rows("SELECT count(DISTINCT measurement_uid) AS n FROM {measurements}")[0]["n"]
        == 6
    )


def test_analysis_failure_does_not_lose_the_measurement(tmp_path: Path) -> None:
    def broken(_: dict) -> None:  # type: ignore[type-arg]
        raise RuntimeError("rule crashed")

    s = Store(tmp_path / "d", classifier=broken)
    try:
        uid = s.add_batch([measurement(1)])[0].measurement_uid
        assert s.get(uid) is not None
        assert s.reader.rows("SELECT failure FROM {measurements}") == [{"failure": True}]
    finally:
        s.close()


def test_lab_asn_map_overrides_the_snapshot(tmp_path: Path) -> None:
    from didban.model.labinfo import AsnRow

    s = Store(
        tmp_path / "d",
        classifier=by_annotation(),
        lab_asn_map=[AsnRow("157.240.0.0/16", 64500, "US", "Lab Facebook")],
    )
    try:
        s.add_batch([measurement(1)])
        assert s.reader.rows("SELECT DISTINCT ip_asn, ip_as_org, ip_cc FROM {observations}") == [
            {"ip_asn": 64500, "ip_as_org": "Lab Facebook", "ip_cc": "US"}
        ]
    finally:
        s.close()


def test_a_reused_uid_on_different_content_gets_a_new_uid(store: Store) -> None:
    uid = "20261101100000.000000_IR_webconnectivity_00ff00ff00ff00ff"
    a = {**measurement(1), "measurement_uid": uid}
    b = {**measurement(2), "measurement_uid": uid}
    first = store.add_batch([a])[0].measurement_uid
    second = store.add_batch([b])[0].measurement_uid
    assert first == uid and second != uid
    assert second.startswith("20261101100000.000001_IR_webconnectivity_")
    assert store.get(second)["annotations"] == {"seq": "2"}
    assert count(store, "measurements") == 2
