"""End to end: the probe in the lab → ``--upload`` → collector → analysis → HTTP API.

One iran-2022 lab (control helper on) for the module. ``didban serve`` runs in the root
namespace on loopback as a subprocess (stopped by its pid at the end), started with the
lab's descriptor so addresses get the lab's IP→ASN rows. ``didban run --lab --upload`` runs
as a user would run it: the measuring process runs in the client namespace (which cannot
reach the root namespace's loopback), and the parent process, still in the root namespace,
puts the finished output into the durable upload queue and flushes it to the collector.
Everything is then checked through HTTP only, against the profile's ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest

from didban.data import catalog
from didban.lab import plan, profiles
from didban.probe.upload import UploadQueue

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))

from server_helpers import free_port, stop

pytestmark = pytest.mark.lab

LAB_PROFILE = "iran-2022"
LAB_CONTROL = True


@dataclass
class E2E:
    base: str
    out: Path
    queue_dir: Path
    probe: subprocess.CompletedProcess[str]
    lines: list[bytes]
    truth: dict[str, str]  # url -> ok | blocked | down


def _start_server(data_dir: Path, port: int, lab_json: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "didban.cli", "serve", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(data_dir), "--lab", str(lab_json)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"didban serve exited with {proc.returncode}: {err}")
        try:
            if httpx2.get(base + "/", timeout=1).status_code == 200:
                return proc
        except httpx2.HTTPError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.1)
    stop(proc)
    raise RuntimeError("didban serve did not answer")


@pytest.fixture(scope="module")
def e2e(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    tmp = tmp_path_factory.mktemp("e2e")
    lab_json = Path(lab.desc.state_dir) / "lab.json"
    port = free_port()
    server = _start_server(tmp / "data", port, lab_json)
    base = f"http://127.0.0.1:{port}"
    try:
        out = tmp / "out.jsonl"
        env = {
            **os.environ,
            "DIDBAN_LAB": str(lab_json),
            "XDG_STATE_HOME": str(tmp / "state"),
            "COLUMNS": "200",
        }
        probe = subprocess.run(
            [sys.executable, "-m", "didban.cli", "run", "--lab", "--no-progress",
             "--output", str(out), "--upload", base],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        lines = [x for x in out.read_bytes().splitlines() if x.strip()] if out.exists() else []
        truth = {t.url: t.outcome for t in profiles.load(LAB_PROFILE).ground_truth}
        yield E2E(base, out, tmp / "state" / "didban" / "upload-queue", probe, lines, truth)
    finally:
        stop(server)


def _get(e: E2E, path: str, **params: Any) -> Any:
    r = httpx2.get(e.base + path, params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.headers, r.json() if "json" in r.headers.get("content-type", "") else r.text


def _listing(e: E2E) -> list[dict[str, Any]]:
    _, body = _get(e, "/api/v1/measurements", probe_cc="IR", limit=1000)
    results: list[dict[str, Any]] = body["results"]
    assert body["metadata"]["count"] == len(results)
    return results


def _window() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {"since": str(today - timedelta(days=1)), "until": str(today + timedelta(days=1))}


def test_probe_uploads_every_measurement_from_the_lab(e2e: E2E) -> None:
    assert e2e.probe.returncode == 0, e2e.probe.stderr[-3000:]
    urls = profiles.default_urls()
    assert len(e2e.lines) == len(urls)
    assert f"uploaded {len(urls)} to {e2e.base}\n" in e2e.probe.stderr  # all of them
    assert list((e2e.queue_dir / "pending").glob("*.json")) == []
    sent = (e2e.queue_dir / "sent.jsonl").read_bytes().splitlines()
    assert len(sent) == len(urls)


def test_measurements_list_one_per_default_url(e2e: E2E) -> None:
    rows = _listing(e2e)
    assert sorted(r["input"] for r in rows) == sorted(profiles.default_urls())
    assert {r["probe_cc"] for r in rows} == {"IR"}
    assert {r["probe_asn"] for r in rows} == {plan.PROBE_ASN}
    assert {r["test_name"] for r in rows} == {"web_connectivity"}


def test_services_have_the_ground_truth_state(e2e: E2E) -> None:
    expected: dict[str, str] = {}  # a service is blocked if any of its measured URLs is
    for url in profiles.default_urls():
        outcome = e2e.truth[url]
        svc = catalog.service_for_url(url)
        if svc is None:
            continue
        if outcome == "blocked" or expected.get(svc) == "blocked":
            expected[svc] = "blocked"
        else:
            expected.setdefault(svc, outcome)
    _, body = _get(e2e, "/api/v1/services/IR")
    got = {s["service"]: s["state"] for s in body["services"]}
    assert got == {s.id: expected.get(s.id, "no_data") for s in catalog.services()}
    assert got["instagram"] == "blocked" and got["whatsapp"] == "blocked"
    assert got["digikala"] == "ok"
    by_id = {s["service"]: s for s in body["services"]}
    witness = by_id["instagram"]["witness"]
    assert witness["input"] == "https://www.instagram.com/"
    assert witness["probe_asn"] == plan.PROBE_ASN
    assert (
        by_id["instagram"]["method"]
        == profiles.load(LAB_PROFILE).truth("https://www.instagram.com/").method
    )


def test_one_measurement_has_raw_verdict_and_evidence(e2e: E2E) -> None:
    rows = {r["input"]: r for r in _listing(e2e)}
    uid = rows["https://www.instagram.com/"]["measurement_uid"]
    _, body = _get(e2e, f"/api/v1/measurement/{uid}")
    raw = body["measurement"]
    submitted = next(
        msgspec.json.decode(x) for x in e2e.lines if b'"https://www.instagram.com/"' in x
    )
    assert raw["measurement_uid"] == uid
    assert {k: v for k, v in raw.items() if k != "measurement_uid"} == submitted
    assert body["verdict"]["state"] == "blocked"
    assert body["verdict"]["layer"] == "tls"
    assert body["evidence"], "a blocked verdict must point at its evidence"
    for ev in body["evidence"]:
        assert ev["pointer"].startswith("/test_keys/")


def test_aggregation_matches_hand_counts(e2e: E2E) -> None:
    rows = _listing(e2e)
    # by service: measurement_count from the test list, anomaly_count from the ground truth
    _, body = _get(e2e, "/api/v1/aggregation", probe_cc="IR", axis_x="service", **_window())
    got = {r["service"]: r for r in body["result"]}
    per_service = Counter(catalog.service_for_url(u) for u in profiles.default_urls())
    blocked = Counter(
        catalog.service_for_url(u) for u in profiles.default_urls() if e2e.truth[u] == "blocked"
    )
    assert set(got) == set(per_service)
    for svc, n in per_service.items():
        assert got[svc]["measurement_count"] == n, svc
        # OONI's counts: anomaly_count excludes confirmed ones; together they are the blocked
        assert got[svc]["anomaly_count"] + got[svc]["confirmed_count"] == blocked[svc], svc
    # by category: every count against the listing's flags, counted by hand
    _, body = _get(e2e, "/api/v1/aggregation", probe_cc="IR", axis_x="category_code", **_window())
    hand: dict[str, Counter[str]] = {}
    for r in rows:
        c = hand.setdefault(r["category_code"], Counter())
        c["measurement_count"] += 1
        # OONI's definitions (ooni-backend.md §9.4)
        c["anomaly_count"] += r["anomaly"] and not r["confirmed"] and not r["failure"]
        c["confirmed_count"] += r["confirmed"] and not r["failure"]
        c["failure_count"] += r["failure"]
        c["ok_count"] += not (r["anomaly"] or r["confirmed"] or r["failure"])
    flagged = sum(c["anomaly_count"] + c["confirmed_count"] for c in hand.values())
    assert flagged == sum(blocked.values())
    for r in body["result"]:
        for count in ("measurement_count", "anomaly_count", "confirmed_count",
                      "failure_count", "ok_count"):  # fmt: skip
            assert r[count] == hand[r["category_code"]][count], (r, count)
    assert {r["category_code"] for r in body["result"]} == set(hand)
    # CSV gives the same figures
    _, text = _get(
        e2e, "/api/v1/aggregation", probe_cc="IR", axis_x="category_code", format="CSV",
        **_window(),
    )  # fmt: skip
    table = list(csv.DictReader(io.StringIO(text)))
    assert {r["category_code"]: int(r["anomaly_count"]) for r in table} == {
        k: c["anomaly_count"] for k, c in hand.items()
    }


def test_observations_carry_the_lab_asn_of_each_address(e2e: E2E) -> None:
    today = datetime.now(UTC).date()
    r = httpx2.get(
        f"{e2e.base}/api/v1/export/observations",
        params={"since": str(today - timedelta(days=1)), "until": str(today),
                "probe_cc": "IR", "format": "csv"},
        timeout=60,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    obs = list(csv.DictReader(io.StringIO(r.text)))
    ig_addr = plan.SERVICE_ADDRS["instagram"][0]
    ig = [o for o in obs if o["ip"] == ig_addr]
    assert ig, f"no observation of Instagram's lab address {ig_addr}"
    assert {o["ip_asn"] for o in ig} == {str(plan.SERVICE_OWNERS["instagram"][0])}
    assert {o["ip_cc"] for o in ig} == {"US"}
    digikala = [o for o in obs if o["hostname"] == "www.digikala.com" and o["ip"]]
    assert digikala and {o["ip_cc"] for o in digikala} == {"IR"}


def test_resubmitting_the_queue_creates_no_duplicates(e2e: E2E) -> None:
    before = len(_listing(e2e))
    queue = UploadQueue(e2e.queue_dir)
    for line in e2e.lines:
        queue.put(line)
    assert len(queue.pending()) == len(e2e.lines)
    sent, failed = asyncio.run(queue.flush(e2e.base))
    assert (sent, failed) == (len(e2e.lines), 0)
    assert len(_listing(e2e)) == before == len(e2e.lines)
    uids = [msgspec.json.decode(x)["measurement_uid"]
            for x in (e2e.queue_dir / "sent.jsonl").read_bytes().splitlines()]  # fmt: skip
    assert len(uids) == 2 * len(e2e.lines) and len(set(uids)) == len(e2e.lines)
