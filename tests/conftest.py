"""Test-wide setup: the network-safety guard, the lab skip rule and fixture locations."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trustme

from didban.net import guard

# DESIGN.md §4: from the root namespace only loopback; subprocesses inherit the variable.
os.environ[guard.ENV_VAR] = "1"
guard.install()

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
OONI_FIXTURES = SHARED / "fixtures" / "ooni"


def lab_unavailable_reason() -> str | None:
    """Why the censorship lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the censorship lab needs root (network namespaces, iptables); run as root"
    for tool in ("ip", "iptables", "tc"):
        if shutil.which(tool) is None:
            return f"the censorship lab needs '{tool}' (make test installs it with apt-get)"
    probe = "didban-probe-ns"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create a network namespace here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


_LAB_REASON: str | None = None
_LAB_CHECKED = False


def lab_reason() -> str | None:
    global _LAB_REASON, _LAB_CHECKED
    if not _LAB_CHECKED:
        _LAB_REASON = lab_unavailable_reason()
        _LAB_CHECKED = True
    return _LAB_REASON


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("lab") for item in items):
        return
    reason = lab_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("lab"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ooni_fixtures() -> Path:
    """``../shared/fixtures/ooni`` (read in place, never copied); skips when absent."""
    if not OONI_FIXTURES.is_dir():
        pytest.skip(f"OONI fixtures not present at {OONI_FIXTURES}")
    return OONI_FIXTURES


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway CA for loopback TLS peers (net, control and probe tests)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``ca`` as a PEM file, for code that takes a CA bundle path."""
    path = Path(tmp_path_factory.mktemp("ca")) / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)
