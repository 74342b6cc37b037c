"""Regenerate the lab corpus of v0.5-shaped measurements (``lab_v05.jsonl``, ``expected.csv``).

For each profile below, brings a lab up (not made the current one, always brought down),
runs ``didban run --lab`` on the accuracy cases of ``isp-dns-redirects`` (the resolver,
ghost and redirect cases: ``lab/profiles/isp-dns-redirects.yaml``), trims each measurement
and classifies it. Trimmed: the network events without the reads and writes, response
bodies cut to their first 240 characters (the length and title the probe measured stay in
``x_didban_body_length``/``x_didban_title``), no certificates, the DoH detail ``x_doh`` cut
to its lookup, start times and report ids fixed. The profile's ground truth gives the
expected state, layer and method; a verdict that disagrees with it stops the script and
nothing is written. The rule id and OONI's ``blocking`` of each verdict are written beside
the truth, so ``test_lab_corpus.py`` pins them.

    sudo .venv/bin/python tests/data/lab_corpus/regenerate.py
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from didban.analysis import classify
from didban.lab import accuracy, profiles, runtime

HERE = Path(__file__).resolve().parent
PROFILES = ("isp-dns-redirects", "clean")
CASES = "isp-dns-redirects"
BODY_KEEP = 240
START = "2026-12-01 00:00:00"


def _drop_certs(records: list[dict[str, Any]] | None) -> None:
    for h in records or []:
        h["peer_certificates"] = None


def trim(m: dict[str, Any], profile: str, n: int) -> dict[str, Any]:
    """``m`` smaller and stable (see the module docstring); the times of the steps stay as
    measured."""
    m["measurement_start_time"] = m["test_start_time"] = START
    m["report_id"] = f"20261201T000000Z_webconnectivity_IR_197207_n1_{profile[:12]}{n:04d}"
    tk = m["test_keys"]
    # the byte counts of every read and write are most of a measurement's size
    tk["network_events"] = [
        e for e in tk.get("network_events") or [] if e.get("operation") not in ("read", "write")
    ]
    if tk.get("x_doh"):  # didban's DoH detail: its lookup is in queries already
        tk["x_doh"] = {"queries": tk["x_doh"].get("queries", [])}
    for r in tk.get("requests") or []:
        resp = r.get("response") or {}
        body = resp.get("body")
        if isinstance(body, str) and len(body) > BODY_KEEP:
            # the measured length and title stay in x_didban_body_length / x_didban_title
            resp["body"] = body[:BODY_KEEP]
    _drop_certs(tk.get("tls_handshakes"))
    return m


def measure(profile: str, urls: list[str], work: Path) -> list[dict[str, Any]]:
    desc = runtime.up(profile, control=True, make_current=False)
    try:
        out = work / f"{profile}.jsonl"
        args = [sys.executable, "-m", "didban.cli", "run", "--lab", "--accept-risk"]
        args += ["--no-progress", "--concurrency", "8", "--output", str(out)]
        for u in urls:
            args += ["--url", u]
        env = {**os.environ, "DIDBAN_LAB": str(Path(desc.state_dir) / "lab.json")}
        run = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if run.returncode not in (0, 1) or not out.exists():
            raise SystemExit(f"didban run --lab failed in {profile}: {run.stderr[-500:]}")
        found = [msgspec.json.decode(line) for line in out.read_bytes().splitlines() if line]
    finally:
        runtime.down(desc.state_dir)
    order = {u: i for i, u in enumerate(urls)}
    return sorted(found, key=lambda m: order[m["input"]])


def main() -> int:
    if os.geteuid() != 0:
        print("error: the lab needs root", file=sys.stderr)
        return 1
    urls = accuracy.web_extras(profiles.load(CASES))
    lines: list[bytes] = []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="didban-corpus-") as tmp:
        for name in PROFILES:
            truth = {t.url: t for t in profiles.load(name).ground_truth}
            for i, m in enumerate(measure(name, urls, Path(tmp))):
                m = trim(m, name, i)
                data = msgspec.json.encode(m)
                v = classify(data)
                t = truth[m["input"]]
                want = (t.outcome, t.layer, t.method)
                got = (v.state, v.layer if t.outcome != "ok" else None, v.method)
                if t.outcome == "down":
                    got = (v.state, v.layer, t.method)
                if got != want:
                    print(f"error: {name} {m['input']}: {got} by {v.rule_id}, truth {want}")
                    return 1
                lines.append(data)
                rows.append(
                    {
                        "profile": name,
                        "input": m["input"],
                        "state": v.state,
                        "layer": v.layer or "",
                        "method": v.method or "",
                        "blocking": msgspec.json.encode(v.blocking).decode(),
                        "rule_id": v.rule_id,
                    }
                )
    (HERE / "lab_v05.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with (HERE / "expected.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} measurements written to {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
