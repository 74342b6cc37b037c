"""The lab corpus: v0.5-shaped measurements made by didban's probe in the lab
(``tests/data/lab_corpus/lab_v05.jsonl``, written by ``regenerate.py`` there), one per
resolver, ghost and redirect case of the ``isp-dns-redirects`` profile and the same targets
under ``clean``.
Each must get the verdict in ``expected.csv`` beside it: the profile's ground truth (state,
layer, method), the rule that gives it and OONI's ``blocking``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import msgspec
import pytest

from didban.analysis import classify

CORPUS = Path(__file__).resolve().parents[1] / "data" / "lab_corpus"
LINES = (CORPUS / "lab_v05.jsonl").read_bytes().splitlines()
with (CORPUS / "expected.csv").open(newline="", encoding="utf-8") as _f:
    EXPECTED = list(csv.DictReader(_f))


def test_the_corpus_and_its_expectations_line_up() -> None:
    assert len(LINES) == len(EXPECTED) > 0
    profiles = {row["profile"] for row in EXPECTED}
    assert profiles == {"isp-dns-redirects", "clean"}
    for line, row in zip(LINES, EXPECTED, strict=True):
        m = msgspec.json.decode(line)
        assert m["input"] == row["input"]
        assert m["annotations"]["x_didban_lab_profile"] == row["profile"]
        assert m["test_version"].startswith("0.5")


@pytest.mark.parametrize(
    ("line", "row"),
    list(zip(LINES, EXPECTED, strict=True)),
    ids=[f"{r['profile']}:{r['input']}" for r in EXPECTED],
)
def test_lab_measurement_gets_its_verdict(line: bytes, row: dict[str, str]) -> None:
    v = classify(line)
    got = (v.state, v.layer or "", v.method or "", json.dumps(v.blocking), v.rule_id)
    want = (row["state"], row["layer"], row["method"], row["blocking"], row["rule_id"])
    assert got == want, v.reason


def test_blocked_hops_leave_no_request_and_carry_their_depth() -> None:
    """The probe's v0.5 shape: a redirect hop that failed before HTTP has its records
    tagged depth=1 and no entry in ``requests``; its failure is the experiment's."""
    seen = 0
    for line, row in zip(LINES, EXPECTED, strict=True):
        if row["profile"] != "isp-dns-redirects" or "/to/" not in row["input"]:
            continue
        tk = msgspec.json.decode(line)["test_keys"]
        assert [r["response"]["code"] for r in tk["requests"]] == [302]
        assert all("depth=0" in r["tags"] for r in tk["requests"])
        hop = [
            x
            for key in ("queries", "tcp_connect", "tls_handshakes", "network_events")
            for x in tk[key]
            if "depth=1" in (x.get("tags") or [])
        ]
        assert hop and tk["http_experiment_failure"]
        seen += 1
    assert seen == 10
