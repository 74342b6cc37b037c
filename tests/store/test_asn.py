"""The shipped IP→ASN snapshot and ``didban data update`` refusing a bad source."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from didban.cli import app
from didban.data.ipasn import country, default_db, snapshot_dir
from didban.model.labinfo import AsnRow


def test_snapshot_answers_known_networks() -> None:
    db = default_db()
    assert db.lookup("8.8.8.8").asn == 15169  # type: ignore[union-attr]
    assert db.lookup("2a00:1450:4001::1").asn == 15169  # type: ignore[union-attr]
    assert db.lookup("157.240.192.35").org == "Facebook, Inc."  # type: ignore[union-attr]
    assert db.lookup("10.10.34.36") is None  # Iran's blockpage address is private
    assert db.lookup("not an ip") is None


def test_snapshot_gives_the_registration_country_of_public_addresses_only() -> None:
    tci = default_db().lookup("2.176.0.1")  # Iran's TCI/ITC address space
    assert tci is not None and (tci.asn, tci.cc) == (12880, "IR")
    assert default_db().lookup("8.8.8.8").cc == "US"  # type: ignore[union-attr]
    assert country("2a01:5ec0::1") == "IR"  # Irancell
    assert country("10.10.34.36") is None and country("192.0.2.1") is None
    assert country("not an ip") is None


def test_snapshot_is_documented_with_its_licence() -> None:
    d = snapshot_dir()
    meta = json.loads((d / "SOURCE.json").read_text())
    assert meta["package"] == "@ip-location-db/asn" and "CC BY 4.0" in meta["licence"]
    for name in ("DBIP-LICENSE", "ROUTEVIEWS-LICENSE", "NRO_LICENSE", "README.md"):
        assert (d / name).exists(), name


def test_lab_rows_take_precedence() -> None:
    db = default_db().with_overrides([AsnRow("198.51.100.0/24", 58224, "IR", "TCI lab")])
    info = db.lookup("198.51.100.8")
    assert info is not None and (info.asn, info.cc) == (58224, "IR")
    assert db.lookup("8.8.8.8").asn == 15169  # type: ignore[union-attr]


def test_data_update_refuses_a_bad_package(tmp_path: Path) -> None:
    before = (snapshot_dir() / "SOURCE.json").read_text()
    r = CliRunner().invoke(app, ["data", "update", "--from", str(tmp_path)])
    assert r.exit_code == 2
    assert "not an @ip-location-db/asn package" in r.output
    assert (snapshot_dir() / "SOURCE.json").read_text() == before


def test_data_update_refuses_a_malformed_package_json(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{bad")
    r = CliRunner().invoke(app, ["data", "update", "--from", str(tmp_path)])
    assert r.exit_code == 2
    assert "is not a readable package.json" in r.output and "Traceback" not in r.output
