"""Shared fixtures of the lab tests: one lab per test module, and helpers to run things in it.

Stable names (other lab test modules rely on them):

* fixture ``lab`` (module scope) -> :class:`Lab`: brings a lab up and ALWAYS tears it down.
  The module chooses with module-level variables:
  ``LAB_PROFILE`` (default ``"clean"``; a shipped profile name or a YAML path),
  ``LAB_CONTROL`` (default ``False``: start the control test helper),
  ``LAB_CURRENT`` (default ``False``: point ``/run/didban/current-lab`` at this lab, for
  code that reads the descriptor from there, e.g. the probe's ``--lab`` mode).
* :meth:`Lab.run` / :func:`run_in` — run a command in a lab namespace, return its
  ``CompletedProcess`` (text, stdout/stderr captured, never raises on exit code).
* :meth:`Lab.python` / :func:`python_in` — run a Python snippet (``python -c``) there.
* :meth:`Lab.switch`, :meth:`Lab.censor_log`, :meth:`Lab.ns`, :attr:`Lab.desc`.

Commands run with the lab CA trusted (SSL_CERT_FILE, CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE)
and, in the client namespace, the ISP resolver as system resolver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from didban.lab import runtime
from didban.model.labinfo import LabDescriptor


def lab_env(desc: LabDescriptor) -> dict[str, str]:
    return {
        **os.environ,
        "SSL_CERT_FILE": desc.ca_file,
        "CURL_CA_BUNDLE": desc.ca_file,
        "REQUESTS_CA_BUNDLE": desc.ca_file,
        "DIDBAN_LAB": str(Path(desc.state_dir) / "lab.json"),
    }


def run_in(
    desc: LabDescriptor,
    argv: Sequence[str],
    *,
    role: str = "client",
    timeout: float = 30.0,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the ``role`` namespace of the lab ``desc``."""
    return subprocess.run(
        ["ip", "netns", "exec", desc.namespaces[role], *argv],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env=lab_env(desc),
        input=input,
        check=False,
    )


def python_in(
    desc: LabDescriptor, code: str, *, role: str = "client", timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet (this interpreter, so didban and its dependencies import)."""
    return run_in(desc, [sys.executable, "-c", code], role=role, timeout=timeout)


class Lab:
    """A running lab, as seen by a test."""

    def __init__(self, desc: LabDescriptor) -> None:
        self.desc = desc
        self.state_dir = Path(desc.state_dir)

    def ns(self, role: str) -> str:
        return self.desc.namespaces[role]

    def run(
        self, argv: Sequence[str], *, role: str = "client", timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        return run_in(self.desc, argv, role=role, timeout=timeout)

    def python(
        self, code: str, *, role: str = "client", timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        return python_in(self.desc, code, role=role, timeout=timeout)

    def switch(self, profile: str) -> str:
        """Switch the censor to ``profile`` (validated; censor reloads on SIGHUP)."""
        name = runtime.switch(profile, self.state_dir)
        self.desc = runtime.read_descriptor(self.state_dir)
        return name

    def censor_log(self) -> list[dict[str, Any]]:
        """Every line of the censor log so far, decoded."""
        path = Path(self.desc.censor_log)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    profile = getattr(request.module, "LAB_PROFILE", "clean")
    control = getattr(request.module, "LAB_CONTROL", False)
    current = getattr(request.module, "LAB_CURRENT", False)
    desc = runtime.up(profile, control=control, make_current=current)
    try:
        yield Lab(desc)
    finally:
        runtime.down(desc.state_dir)
