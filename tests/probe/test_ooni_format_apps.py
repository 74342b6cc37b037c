"""OONI's data models of the app tests (tests/ooni_models.py) load OONI's own measurements
of those tests, and refuse a measurement whose keys have the wrong types: the models the
probe's app measurements are checked against (test_probe_apps.py, the lab tests)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

import ooni_models

FIXTURES = ("whatsapp.json", "signal_022.json")


@pytest.mark.parametrize("name", FIXTURES)
def test_oonis_own_measurements_load(ooni_fixtures: Path, name: str) -> None:
    ooni_models.check(json.loads((ooni_fixtures / "backend_fastpath" / name).read_text()))


def test_a_measurement_without_input_is_refused(ooni_fixtures: Path) -> None:
    """telegram_nourl.json (MK era) has no ``input`` key, which OONI's model requires (its
    fastpath fails on the same file): the mirror is as strict as the original."""
    m = json.loads((ooni_fixtures / "backend_fastpath" / "telegram_nourl.json").read_text())
    with pytest.raises(msgspec.ValidationError, match="input"):
        ooni_models.check(m)


def test_a_wrong_type_is_refused() -> None:
    m = {
        "input": None, "report_id": "r", "measurement_start_time": "2026-01-01 00:00:00",
        "test_start_time": "2026-01-01 00:00:00", "probe_asn": "AS1", "probe_cc": "IR",
        "test_name": "telegram", "test_version": "0.3.1", "test_runtime": 1.0,
        "software_name": "didban", "software_version": "0",
        "test_keys": {"telegram_tcp_blocking": "yes"},
    }  # fmt: skip
    with pytest.raises(msgspec.ValidationError, match="telegram_tcp_blocking"):
        ooni_models.check(m)
    m["test_keys"] = {"tcp_connect": [{"ip": "1.2.3.4", "port": 443}]}
    with pytest.raises(msgspec.ValidationError, match="status"):
        ooni_models.check(m)
