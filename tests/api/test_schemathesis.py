"""The OpenAPI document is the truth: schemathesis finds no request it mishandles.

A real ``didban serve`` on 127.0.0.1 and ``schemathesis run`` against its
``/openapi.json`` with every check (``-c all``: no 5xx, documented statuses, content types
and headers, response schemas, schema-valid requests accepted and schema-invalid ones
refused, 405 with ``Allow`` for other methods, links between operations …), in its four
phases (examples, coverage, fuzzing, stateful), a bounded number of cases per operation,
and the deterministic generation mode (a fixed derandomised seed: the same cases every
run). ``schemathesis_hooks.py`` tells the generator the three rules between two values
OpenAPI cannot state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from server_helpers import free_port, start_server, stop

MAX_EXAMPLES = 30


def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    port = free_port()
    server = start_server(tmp_path / "data", port)
    try:
        run = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks", "all",
                "--max-examples", str(MAX_EXAMPLES),
                "--generation-deterministic",
                "--workers", "1",
                "--request-timeout", "30",
                "--no-color",
                "--report", "json",
                "--report-json-path", str(tmp_path / "report.json"),
            ],
            cwd=tmp_path,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
                "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
            },
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
    finally:
        stop(server)
    out = run.stdout + run.stderr
    tail = "\n".join(out.splitlines()[-60:])
    assert run.returncode == 0, tail
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["failures"], report["errors"]) == ([], []), tail
    ops = report["operations"]
    assert ops["tested"] == ops["total"] == ops["selected"] >= 11, ops  # every operation
    assert {p["status"] for p in report["phases"].values()} == {"success"}, report["phases"]
    cases = report["test_cases"]
    assert cases["generated"] > 500 and cases["with_failures"] == cases["errored"] == 0, cases
    print(tail)  # the run's figures, shown with pytest -s
