"""Conformance with OONI: classify every measurement in ../shared/fixtures/ooni (read in place)
and compare with OONI's verdicts from labels.csv.

Agreement is counted by state — blocked or not — and, when both say blocked, by layer where
OONI names one (``"dns"`` -> dns; ``"tcp_ip"`` -> tcp/ip; ``"http-diff"`` -> http;
``"http-failure"`` -> tls/http, OONI's one label for both). ``false/true``, ``false/false`` and
``null/null`` are all "not blocked" (ok, down, undecided): which of them is a difference of
convention, not of verdict. For web_connectivity OONI's state is its (blocking, accessible)
pair as the probe wrote it; for the other tests, the state implied by the fastpath assertion
in ``expected_verdict``. The exact pair agreement is printed too. OONI's published verdict
is the probe's pair unless one of OONI's own blocking fingerprints (``reference_data/
fingerprints_{http,dns}.csv``, ooni/blocking-fingerprints) matches a response or a DNS
answer: the fastpath then confirms a block whatever the probe said (fixtures README, the ID
file), at ``http`` (``"http-diff"``) or ``dns``. That confirmation is computed here from
OONI's CSV files, not from didban's fingerprints. Every disagreement must be
listed, with its reason, in the conformance table of docs/methodology.md, and that table
must list nothing else: a regression (a new disagreement) or a fix (a documented one that
vanished) fails the test.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from didban.analysis import classify
from didban.model.verdict import Verdict

REPO = Path(__file__).resolve().parents[2]
METHODOLOGY = REPO / "docs" / "methodology.md"
PK_JSONC = "probecli_manual/20230706183840.201925_PK_webconnectivity_19f5e0d803cbaea7.jsonc"
# The PK file holds only test_keys; its envelope facts are in the fixtures README.
PK_ENVELOPE = {
    "test_name": "web_connectivity",
    "test_version": "0.5.x",
    "probe_cc": "PK",
    "input": "https://mask.icloud.com/",
    "report_id": "20230706183840.201925_PK_webconnectivity_19f5e0d803cbaea7",
}
SKIPPED = {
    "backend_fastpath/http_invalid_request_line.yaml": (
        "data format 0.1.0 (YAML, ooniprobe 1.3.2) and a test didban has no rules for"
    )
}


def _fmt(blocking: Any, accessible: Any) -> str:
    return f"{json.dumps(blocking)}/{json.dumps(accessible)}"


def _fastpath_state(expected: str) -> str | None:
    if "blocking_general=0.0" in expected:
        return "ok"
    if re.search(r"blocking_general=(0\.[5-9]|[1-9])", expected):
        return "blocked"
    if "scores_failed" in expected or "scores == {}" in expected:
        return "inconclusive"
    return None


def _ours(v: Verdict, web: bool) -> str:
    return _fmt(v.blocking, v.accessible) if web else v.state


# OONI's blocking value -> the didban layers it covers
OONI_LAYERS: dict[str, frozenset[str]] = {
    "dns": frozenset({"dns"}),
    "tcp_ip": frozenset({"tcp", "ip"}),
    "http-diff": frozenset({"http"}),
    "http-failure": frozenset({"tls", "http"}),
}


def agrees(ooni: str, v: Verdict, web: bool) -> bool:
    """Same state (blocked or not) and, when both say blocked, a layer OONI's label covers."""
    if not web:
        return (ooni == "blocked") == (v.state == "blocked")
    blocking = json.loads(ooni.split("/", 1)[0])
    ooni_blocked = isinstance(blocking, str)
    if ooni_blocked != (v.state == "blocked"):
        return False
    if not ooni_blocked:
        return True
    layers = OONI_LAYERS.get(blocking)
    return layers is None or v.layer in layers


def _ooni_fingerprints(fixtures: Path, kind: str) -> list[dict[str, str]]:
    path = fixtures / "reference_data" / f"fingerprints_{kind}.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _hit(pattern_type: str, pattern: str, value: str) -> bool:
    if pattern_type == "full":
        return value == pattern
    if pattern_type == "prefix":
        return value.startswith(pattern)
    if pattern_type == "contains":
        return pattern in value
    if pattern_type == "regexp":
        return re.search(pattern, value) is not None
    return False


def _responses(tk: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(body, lower-cased headers) of every response the probe recorded."""
    out = []
    for req in tk.get("requests") or []:
        resp = (req or {}).get("response") or {}
        body = resp.get("body")
        if isinstance(body, dict):  # {"format": "base64", "data": ...}: not a page's text
            body = ""
        headers = {str(k).lower(): str(v) for k, v in (resp.get("headers") or {}).items()}
        out.append((body or "", headers))
    return out


def ooni_confirmation(m: dict[str, Any], fixtures: Path) -> tuple[str, str] | None:
    """(OONI blocking label, fingerprint name) when one of OONI's blocking fingerprints for
    the measurement's country (or for no country in particular) matches, else None."""
    cc = m.get("probe_cc", "")
    tk = m.get("test_keys") or {}

    def mine(fp: dict[str, str]) -> bool:  # scope "fp": a known page that is no block
        countries = [c.strip() for c in (fp.get("expected_countries") or "").split(",")]
        return fp["scope"] != "fp" and (not any(countries) or cc in countries)

    for fp in filter(mine, _ooni_fingerprints(fixtures, "http")):
        where, kind, pattern = fp["location_found"], fp["pattern_type"], fp["pattern"]
        for body, headers in _responses(tk):
            value = body if where == "body" else headers.get(where.removeprefix("header."))
            if value is not None and _hit(kind, pattern, value):
                return "http-diff", fp["name"]
    answers = [
        a.get("ipv4") or a.get("ipv6") or ""
        for q in tk.get("queries") or []
        for a in (q or {}).get("answers") or []
    ]
    for fp in filter(mine, _ooni_fingerprints(fixtures, "dns")):
        if any(_hit(fp["pattern_type"], fp["pattern"], a) for a in answers if a):
            return "dns", fp["name"]
    return None


def _strip_comments(data: bytes) -> bytes:
    return b"\n".join(line for line in data.splitlines() if not line.lstrip().startswith(b"//"))


def documented() -> dict[str, tuple[str, str]]:
    """file -> (OONI, didban) from the table between the conformance markers in methodology.md."""
    text = METHODOLOGY.read_text(encoding="utf-8")
    block = text.split("<!-- conformance:start -->", 1)[1].split("<!-- conformance:end -->", 1)[0]
    out: dict[str, tuple[str, str]] = {}
    for line in block.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] and not set(cells[0]) <= {"-", " "} and cells[0] != "file":
            out[cells[0]] = (cells[1], cells[2])
    return out


def run(fixtures: Path) -> tuple[list[tuple[str, str, str, Verdict]], dict[str, tuple[str, str]]]:
    rows: list[tuple[str, str, str, Verdict]] = []
    with (fixtures / "labels.csv").open(newline="", encoding="utf-8") as fh:
        for label in csv.DictReader(fh):
            data = (fixtures / label["file"]).read_bytes()
            verdict = classify(data)
            web = label["test_name"] == "web_connectivity"
            confirmed = ooni_confirmation(json.loads(data), fixtures) if web else None
            if confirmed is not None:
                ooni = _fmt(confirmed[0], False)
            elif web:
                ooni = _fmt(json.loads(label["blocking"]), json.loads(label["accessible"]))
            else:
                ooni = _fastpath_state(label["expected_verdict"]) or "none"
            rows.append((label["file"], ooni, _ours(verdict, web), verdict))
    pk = json.loads(_strip_comments((fixtures / PK_JSONC).read_bytes()))
    verdict = classify({**PK_ENVELOPE, "test_keys": pk})
    assert ooni_confirmation({**PK_ENVELOPE, "test_keys": pk}, fixtures) is None
    rows.append(
        (PK_JSONC, _fmt(pk.get("blocking"), pk.get("accessible")), _ours(verdict, True), verdict)
    )
    disagreements = {
        f: (o, d)
        for f, o, d, v in rows
        if o != "none" and not agrees(o, v, web="/" in o)  # web cells are blocking/accessible
    }
    return rows, disagreements


def test_every_fixture_is_classified_and_disagreements_are_documented(ooni_fixtures: Path) -> None:
    rows, disagreements = run(ooni_fixtures)
    on_disk = {
        str(p.relative_to(ooni_fixtures))
        for d in ("backend_fastpath", "probecli_manual")
        for p in (ooni_fixtures / d).iterdir()
    }
    assert on_disk == {r[0] for r in rows} | set(SKIPPED), (
        "a fixture file is neither classified nor skipped"
    )

    compared = [r for r in rows if r[1] != "none"]
    agree = len(compared) - len(disagreements)
    exact = sum(1 for _, ooni, ours, _ in compared if ooni == ours)
    print(
        f"\nconformance with OONI: {agree}/{len(compared)} agree on state (blocked or not) and "
        f"layer, {len(disagreements)} documented departures; exact (blocking, accessible) or "
        f"state: {exact}/{len(compared)}; {len(rows) - len(compared)} without an OONI "
        f"verdict, {len(SKIPPED)} skipped"
    )
    print(f"{'file':<62} {'OONI':<22} {'didban':<22} rule")
    for f, ooni, ours, v in rows:
        mark = "≠ " if f in disagreements else ("  " if ooni in (ours, "none") else "~ ")
        print(f"{mark}{f[-60:]:<60} {ooni:<22} {ours:<22} {v.rule_id} {v.method or ''}")
    for f, reason in SKIPPED.items():
        print(f"  {f[-60:]:<60} skipped: {reason}")

    assert disagreements == documented()


def test_fastpath_confirmations_are_reproduced(ooni_fixtures: Path) -> None:
    """Where the fastpath asserts a fingerprint, didban confirms with its own fingerprint."""
    ir = classify((ooni_fixtures / "backend_fastpath/web_connectivity_ir_fp.json").read_bytes())
    assert (ir.state, ir.method, ir.confirmed, ir.fingerprint_id) == (
        "blocked",
        "dns.hijack",
        True,
        "ir.dns.10_10_34_36",
    )
    indo = classify(
        (
            ooni_fixtures / "backend_fastpath/"
            "20250527233111.802678_ID_webconnectivity_5a37ec909dbf14e3.json"
        ).read_bytes()
    )
    assert (indo.state, indo.method, indo.confirmed) == ("blocked", "http.blockpage", True)
    assert indo.fingerprint_id is not None and indo.fingerprint_id.startswith("id.")
    nofp = classify((ooni_fixtures / "backend_fastpath/web_connectivity_b64_hdr.json").read_bytes())
    assert nofp.fingerprint_id is None


def test_ooni_fingerprints_confirm_where_the_fastpath_asserts_it(ooni_fixtures: Path) -> None:
    """OONI's own fingerprints, matched here, agree with every fastpath assertion."""

    def confirmation(name: str) -> tuple[str, str] | None:
        m = json.loads((ooni_fixtures / "backend_fastpath" / name).read_bytes())
        return ooni_confirmation(m, ooni_fixtures)

    assert confirmation("web_connectivity_ir_fp.json") == ("dns", "ooni.ir_10dot10_ipv4_1")
    indo = confirmation("20250527233111.802678_ID_webconnectivity_5a37ec909dbf14e3.json")
    assert indo is not None and indo[0] == "http-diff"
    assert confirmation("web_connectivity_b64_hdr.json") is None  # match_fingerprints == []
