"""The fingerprint file is valid and sourced, matching behaves as documented, and
docs/methodology.md documents every rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from didban.analysis import fingerprints, rules
from didban.analysis.fingerprints import Fingerprints
from didban.model.verdict import METHODS

DOC = Path(__file__).resolve().parents[2] / "docs" / "methodology.md"


def test_shipped_fingerprints_are_sourced_and_cover_iran() -> None:
    fps = fingerprints.default()
    rows = fps.blocking.rows + fps.server_side.rows
    assert all(r.source.strip() for r in rows)
    assert {"10.10.34.34", "10.10.34.35", "10.10.34.36", "d0::11"} <= set(fps.blocking.dns)
    for value, fp_id in [
        ("10.10.34.36", "ir.dns.10_10_34_36"),
        ("D0::11", "ir.dns.d0_11"),
        ("10.10.34.35.", "ir.dns.10_10_34_35"),
    ]:
        fp = fps.blocking.match_dns(value)
        assert fp is not None and fp.id == fp_id
    assert fps.blocking.match_dns("10.10.34.37") is None


@pytest.mark.parametrize(
    ("body", "fp_id"),
    [
        (
            '<iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy " style=',
            "ir.body.iframe_10_10_34",
        ),
        ("<html><title>M5-8</title></html>", "ir.body.title_m_series"),
        ("<html><head><title>NTE1</title></head></html>", "ir.body.title_nte1"),
        ("see http://peyvandha.ir/1-2.html", "ir.body.peyvandha"),
        ("<title>Trustpositif</title>", "id.body.trustpositif_title"),
    ],
)
def test_body_fingerprints(body: str, fp_id: str) -> None:
    m = fingerprints.default().blocking.match_body(body)
    assert m is not None and m.fingerprint.id == fp_id


def test_header_fingerprints_case_insensitive_names_and_base64_values() -> None:
    table = fingerprints.default().blocking
    m = table.match_headers(fingerprints.header_map({"LOCATION": "http://10.10.34.35:80"}))
    assert m is not None and m.fingerprint.id == "ir.header.location_10_10_34"
    b64 = {"Location": {"format": "base64", "data": "aHR0cDovL2xhbWFubGFidWguYWR1YW5rb250ZW4uaWQv"}}
    m = table.match_headers(fingerprints.header_map(b64))
    assert m is not None and m.fingerprint.id == "id.header.location_aduankonten"
    assert (
        table.match_headers(fingerprints.header_map({"Location": "https://www.example.com/"}))
        is None
    )


def test_invalid_fingerprint_files_are_rejected() -> None:
    with pytest.raises(ValueError, match="anchor"):
        Fingerprints.from_yaml(
            "fingerprints:\n"
            "- {id: a, kind: body, pattern_type: regexp, pattern: 'x+', source: s}\n"
            "server_side: []\n"
        )
    with pytest.raises(ValueError, match="duplicate"):
        Fingerprints.from_yaml(
            "fingerprints:\n- {id: a, kind: dns, pattern_type: full, pattern: 1.2.3.4, source: s}\n"
            "- {id: a, kind: dns, pattern_type: full, pattern: 1.2.3.5, source: s}\n"
            "server_side: []\n"
        )


def test_every_rule_is_documented_and_uses_known_methods() -> None:
    doc = DOC.read_text(encoding="utf-8")
    missing = [r.id for r in rules.ALL.values() if f"`{r.id}`" not in doc]
    assert missing == []
    assert all(r.method is None or r.method in METHODS for r in rules.ALL.values())
    assert rules.RULES_VERSION in doc
