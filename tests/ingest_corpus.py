"""Input files for the ingest tests: OONI-format runs whose run-level verdicts (NIN isolation,
shutdown) depend on records in other blocks and other files, with duplicates."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import msgspec

INTERNATIONAL = ["www.bbc.com", "www.instagram.com", "twitter.com", "www.wikipedia.org"]
DOMESTIC = ["www.digikala.com", "www.aparat.com"]


def web(host: str, n: int, run: str, *, reached: bool) -> dict[str, Any]:
    """A web_connectivity measurement of ``host`` in run ``run``: reached, or a connect that
    timed out while the control connected. ``n`` makes it unique (uid, start time)."""
    url, ip = f"https://{host}/", f"203.0.113.{n % 200 + 10}"
    failure = None if reached else "generic_timeout_error"
    start = f"2026-11-21 10:{n // 60 % 60:02d}:{n % 60:02d}"
    digest = hashlib.sha512(f"{run}-{n}".encode()).hexdigest()[:16]
    return {
        "test_name": "web_connectivity",
        "test_version": "0.4.3",
        "input": url,
        "report_id": run,
        "measurement_start_time": start,
        "test_start_time": "2026-11-21 10:00:00",
        "measurement_uid": f"20261121{11 + n // 3600:02d}0000.{n:06d}_IR_webconnectivity_{digest}",
        "probe_cc": "IR",
        "probe_asn": "AS197207",
        "data_format_version": "0.2.0",
        "software_name": "ooniprobe",
        "software_version": "3.20.0",
        "test_keys": {
            "queries": [
                {
                    "hostname": host,
                    "query_type": "A",
                    "engine": "system",
                    "resolver_address": "",
                    "failure": None,
                    "answers": [{"answer_type": "A", "ipv4": ip}],
                }
            ],
            "tcp_connect": [
                {"ip": ip, "port": 443, "status": {"success": reached, "failure": failure}}
            ],
            "tls_handshakes": [
                {"network": "tcp", "address": f"{ip}:443", "server_name": host, "failure": None}
            ]
            if reached
            else [],
            "requests": [
                {
                    "request": {"url": url, "method": "GET", "headers": {}},
                    "response": {"code": 200, "body": "<title>Home</title>", "headers": {}}
                    if reached
                    else None,
                    "failure": failure,
                }
            ],
            "control": {
                "dns": {"failure": None, "addrs": [ip]},
                "tcp_connect": {f"{ip}:443": {"status": True, "failure": None}},
                "tls_handshake": {f"{ip}:443": {"status": True, "failure": None}},
                "http_request": {
                    "body_length": 19,
                    "failure": None,
                    "title": "Home",
                    "headers": {},
                    "status_code": 200,
                },
            },
            "control_failure": None,
        },
    }


def runs(count: int) -> list[dict[str, Any]]:
    """``count`` runs of 6-12 records: isolated (domestic reached, international timed
    out), shut down (nothing reached) and ordinary ones, one after the other."""
    out: list[dict[str, Any]] = []
    n = 0
    for r in range(count):
        run = f"20261121T100000Z_webconnectivity_IR_197207_n1_run{r:04d}"
        kind = r % 3
        hosts = INTERNATIONAL + DOMESTIC + INTERNATIONAL[: r % 7]
        for host in hosts:
            domestic = host in DOMESTIC
            reached = (kind == 0 and domestic) or (kind == 2 and (domestic or n % 2 == 0))
            out.append(web(host, n, run, reached=reached))
            n += 1
    return out


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    """``records`` as JSONL, gzip-compressed when ``path`` ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(msgspec.json.encode(r) + b"\n" for r in records)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path
