"""The probe started inside the lab's client namespace without ``--lab`` (as ``didban lab
exec -- didban dnscheck NAME`` starts it): no public resolver answers there, so it measures
with the lab's, says so, and needs no consent (it is the lab)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab

LAB_PROFILE = "clean"


def test_dnscheck_in_the_lab_without_lab_uses_the_lab_resolvers(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    r = lab.run(
        [sys.executable, "-m", "didban.cli", "dnscheck", "-o", str(out), "www.instagram.com"],
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "measuring with the lab's, as with --lab" in r.stderr
    (m,) = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    resolver = lab.desc.udp_resolver
    lookups = m["test_keys"]["lookups"]
    assert f"udp://{resolver}" in lookups and not any("8.8.8.8" in k for k in lookups)
    assert lookups[f"udp://{resolver}"]["failure"] is None
    assert m["annotations"]["x_didban_lab_profile"] == "clean"
