"""``didban ingest``: OONI fixtures read in place, formats, bad records, the ledger."""

from __future__ import annotations

import gzip
from pathlib import Path

import msgspec
import orjson
import zstandard
from store_helpers import measurement
from typer.testing import CliRunner

from didban.cli import app
from didban.store.ingest import ingest
from didban.store.store import Store


def test_ooni_fixtures_are_ingested_and_queryable(ooni_fixtures: Path, tmp_path: Path) -> None:
    s = Store(tmp_path / "d", classifier=None)
    try:
        rep = ingest(s, [ooni_fixtures])
        assert (rep.files, rep.added, rep.bad) == (26, 26, [])
        ir = s.reader.rows(
            "SELECT input, probe_asn FROM {measurements} WHERE probe_cc = 'IR' ORDER BY input"
        )
        assert ir == [
            {"input": "https://fa.wikipedia.org", "probe_asn": 197207},
            {"input": "https://www.facebook.com/", "probe_asn": 197207},
            {"input": "https://yooz.ir/", "probe_asn": 197207},
        ]
        # The Iranian DNS injection answer is kept as an observation.
        dns = s.reader.rows(
            "SELECT ip FROM {observations} WHERE layer = 'dns' AND domain = 'www.facebook.com' "
            "AND probe_cc = 'IR'"
        )
        assert {"ip": "10.10.34.36"} in dns
        again = ingest(s, [ooni_fixtures])
        assert (again.files, again.skipped_files, again.added) == (0, 26, 0)
    finally:
        s.close()


def test_formats_and_bad_lines_are_reported_not_fatal(tmp_path: Path) -> None:
    lines = [orjson.dumps(measurement(i)) for i in range(3)]
    (tmp_path / "in").mkdir()
    with gzip.open(tmp_path / "in" / "a.jsonl.gz", "wb") as fh:
        fh.write(b"\n".join(lines[:2]) + b"\n")
    (tmp_path / "in" / "b.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress(lines[2] + b"\n{broken\n" + b'{"test_name": "x"}\n')
    )
    (tmp_path / "in" / "c.json").write_bytes(
        orjson.dumps(measurement(9), option=orjson.OPT_INDENT_2)
    )
    s = Store(tmp_path / "d", classifier=None)
    try:
        rep = ingest(s, [tmp_path / "in"])
        assert rep.added == 4
        assert len(rep.bad) == 2
        assert rep.bad[0].startswith(f"{tmp_path / 'in' / 'b.jsonl.zst'}:2: not valid JSON")
        assert rep.bad[1] == f"{tmp_path / 'in' / 'b.jsonl.zst'}:3: missing field 'probe_cc'"
    finally:
        s.close()


def test_cli_ingest_and_bad_path(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_bytes(orjson.dumps(measurement(1)) + b"\n" + orjson.dumps(measurement(1)) + b"\n")
    runner = CliRunner()
    r = runner.invoke(app, ["ingest", str(f), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert "2 records: 1 added, 1 duplicate, 0 bad" in r.output
    r = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 2
    assert "no such file or directory" in r.output


def test_cli_ingest_of_verdicts_stores_nothing_and_fails(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_bytes(orjson.dumps(measurement(1)) + b"\n")
    v = tmp_path / "v.jsonl"
    runner = CliRunner()
    assert runner.invoke(app, ["analyze", str(m), "-q", "-o", str(v)]).exit_code == 0
    r = runner.invoke(app, ["ingest", str(v), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 1
    assert f"{v}:1: a didban verdict, not a measurement" in r.output
    assert "1 record: 0 added, 0 duplicates, 1 bad" in r.output
    r = runner.invoke(app, ["store", "info", "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 0 and "archived measurements: 0" in r.output


def test_cli_rebuild(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_bytes(b"\n".join(orjson.dumps(measurement(i)) for i in range(4)) + b"\n")
    runner = CliRunner()
    d = str(tmp_path / "d")
    assert runner.invoke(app, ["ingest", str(f), "--data-dir", d]).exit_code == 0
    r = runner.invoke(app, ["store", "rebuild", "--data-dir", d])
    assert r.exit_code == 0, r.output
    assert "rebuilt the tables from the archive: 4 measurements" in r.output


def test_ingest_with_a_lab_descriptor_uses_its_asn_rows(tmp_path: Path) -> None:
    from didban.model.labinfo import AsnRow, LabDescriptor

    lab = LabDescriptor(
        prefix="db0000-", profile="iran", state_dir="/run/didban/labs/db0000-", namespaces={},
        client_netns="db0000-client", ca_file="ca.pem", system_resolver="198.51.100.8",
        udp_resolver="198.51.100.8:53", doh_url="https://dns.google/dns-query",
        doh_bootstrap="198.51.100.8", control_url="http://198.51.100.200/", probe_cc="IR",
        probe_asn="AS197207", probe_network_name="MCI", censor_log="censor.jsonl",
        created="2026-11-21T00:00:00Z",
        asn_map=[AsnRow("203.0.113.0/24", 32934, "US", "Facebook (lab)")],
    )  # fmt: skip
    desc = tmp_path / "lab.json"
    desc.write_bytes(msgspec.json.encode(lab))
    f = tmp_path / "m.jsonl"
    f.write_bytes(orjson.dumps(measurement(1, ip="203.0.113.10")) + b"\n")
    runner = CliRunner()
    d = str(tmp_path / "d")
    r = runner.invoke(app, ["ingest", str(f), "--data-dir", d, "--lab", str(desc)])
    assert r.exit_code == 0, r.output
    s = Store(Path(d), classifier=None)
    try:
        assert s.reader.rows("SELECT DISTINCT ip_asn, ip_as_org FROM {observations}") == [
            {"ip_asn": 32934, "ip_as_org": "Facebook (lab)"}
        ]
    finally:
        s.close()
    (tmp_path / "bad.json").write_text("{}")
    r = runner.invoke(app, ["ingest", str(f), "--data-dir", d, "--lab", str(tmp_path / "bad.json")])
    assert r.exit_code == 2
    assert "cannot read the lab descriptor" in r.output
    # A lab's state directory (or the current-lab link) names the same descriptor.
    from didban.store.cli import lab_asn_map

    assert lab_asn_map(tmp_path) == lab_asn_map(desc) == list(lab.asn_map)


def test_store_commands_refuse_bad_data_dirs_in_one_sentence(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "typo"
    r = runner.invoke(app, ["store", "info", "--data-dir", str(missing)])
    assert r.exit_code == 2 and f"there is no store at {missing}" in r.output
    assert not missing.exists()  # a mistyped path does not become an empty store
    a_file = tmp_path / "f.jsonl"
    a_file.write_bytes(orjson.dumps(measurement(1)) + b"\n")
    r = runner.invoke(app, ["ingest", str(a_file), "--data-dir", str(a_file)])
    assert r.exit_code == 2 and "is a file, not a directory" in r.output
    d = tmp_path / "d"
    assert runner.invoke(app, ["ingest", str(a_file), "--data-dir", str(d)]).exit_code == 0
    (d / "index.sqlite").write_bytes(b"not a database at all, just bytes" * 40)
    r = runner.invoke(app, ["store", "info", "--data-dir", str(d)])
    assert r.exit_code == 1 and "is damaged" in r.output and "Traceback" not in r.output
    (d / "index.sqlite").unlink()
    r = runner.invoke(app, ["store", "rebuild", "--data-dir", str(d)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["store", "info", "--data-dir", str(d)])
    assert "archived measurements: 1" in r.output
    r = runner.invoke(app, ["store", "compact", "--data-dir", str(d), "--min-files", "0"])
    assert r.exit_code == 2 and "--min-files must be 2 or more" in r.output


def test_a_truncated_archive_is_read_as_analyze_reads_it(tmp_path: Path) -> None:
    import zlib

    lines = [orjson.dumps({**measurement(i), "pad": "x" * 30_000}) + b"\n" for i in range(80)]
    packed = gzip.compress(b"".join(lines))
    cut = packed[: len(packed) * 2 // 3]
    f = tmp_path / "cut.jsonl.gz"
    f.write_bytes(cut)
    whole = zlib.decompressobj(31).decompress(cut).count(b"\n")
    s = Store(tmp_path / "d", classifier=None)
    try:
        rep = ingest(s, [f])
    finally:
        s.close()
    assert rep.added == whole > 20  # every complete record before the damage
    assert rep.bad[-1].startswith(f"{f}: cannot read: Compressed file ended")
    zst = tmp_path / "cut.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines))[:-100])
    s = Store(tmp_path / "d2", classifier=None)
    try:
        rep = ingest(s, [zst])
    finally:
        s.close()
    assert rep.bad[-1] == f"{zst}: cannot read: the archive ends inside a frame (truncated)"
