"""Bootstrapping Debian's ``tor`` as OONI's vanilla_tor and torsf do, and reading its log.

A tor client runs in a temporary directory of its own (``DataDirectory``, torrc), logs at
notice level to stdout, and is stopped by its pid once it reports ``Bootstrapped 100%`` or
the bootstrap timeout passes. From its log come OONI's keys: the ``Bootstrapped N% (tag):
summary`` lines (``tor_logs``) and the last one's progress, tag and summary; tor's version
(``Tor X running on ...``); and didban's ``x_didban_tor_warnings``, tor's ``Problem
bootstrapping. Stuck at N% (tag): ... (REASON; REASON; count N; ...)`` warnings, which say
at which step and why (``TIMEOUT``, ``CONNECTREFUSED``, ``CONNECTRESET``, ``DONE``,
``IOERROR``, ...) the bootstrap stalled.

On a real network tor uses its compiled-in directory authorities; in the lab the
descriptor's private network (``TestingTorNetwork 1`` and its ``DirAuthority`` lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from didban.data import circumvention
from didban.model import failures
from didban.model.labinfo import LabTor
from didban.model.oonicircumvention import TorBootstrapKeys
from didban.probe.circumvention.process import ClientError, ClientProcess, check_addresses

BOOTSTRAPPED: Final = re.compile(r"Bootstrapped (\d+)% \(([^)]*)\): (.*)$")
PROBLEM: Final = re.compile(r"Problem bootstrapping\. Stuck at (\d+)% \(([^)]*)\)")
VERSION: Final = re.compile(r"\bTor (\d[\w.\-]*) running on\b")
PT_LOG_LINES: Final = 60


@dataclass
class Bootstrap:
    """What the bootstrap needs beyond tor's defaults: extra torrc lines, the addresses
    they make tor contact (checked by the guard), the PT's log file."""

    torrc: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    pt_log: str | None = None
    testing: bool = False


def lab_network(lab: LabTor) -> Bootstrap:
    """The torrc lines that point a client at the lab's private network."""
    return Bootstrap(
        torrc=[
            "TestingTorNetwork 1",
            "UseDefaultFallbackDirs 0",  # only the lab's authorities, never the public network
            "PathsNeededToBuildCircuits 0.25",
            *(f"DirAuthority {line}" for line in lab.dir_authorities),
        ],
        addresses=[r.address for r in lab.relays if r.role != "bridge"],
        testing=True,
    )


def public_network() -> Bootstrap:
    """tor's own defaults: its compiled-in directory authorities (the catalog's)."""
    authorities = circumvention.by_id("tor").of_kind("dir_authority")
    return Bootstrap(addresses=[str(a.address) for a in authorities])


def read_log(keys: TorBootstrapKeys, lines: list[str]) -> None:
    """Fill OONI's log keys (and didban's warnings) from tor's output."""
    for line in lines:
        if (m := VERSION.search(line)) and not keys.tor_version:
            keys.tor_version = m.group(1)
        if m := BOOTSTRAPPED.search(line):
            keys.tor_logs.append(line)
            keys.tor_progress = int(m.group(1))
            keys.tor_progress_tag = m.group(2)
            keys.tor_progress_summary = m.group(3)
        elif PROBLEM.search(line):
            keys.x_didban_tor_warnings.append(line)


async def run(
    keys: TorBootstrapKeys, plan: Bootstrap, timeout: float, client: ClientProcess
) -> None:
    """Bootstrap a tor client with ``plan`` within ``timeout`` seconds in ``client``;
    record the result in ``keys``."""
    keys.timeout = timeout
    keys.x_didban_testing_network = plan.testing
    try:
        check_addresses(plan.addresses)
    except ClientError as exc:
        keys.failure = failures.unknown(str(exc))
        keys.error = "unknown-error"
        return
    data = client.dir / "data"
    data.mkdir(mode=0o700)
    torrc = client.dir / "torrc"
    lines = [
        f"DataDirectory {data}",
        "SocksPort auto",
        "Log notice stdout",
        "LogTimeGranularity 1",
        *plan.torrc,
    ]
    torrc.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t0 = client.clock()
    try:
        await client.start(["tor", "-f", str(torrc)])
    except (ClientError, OSError) as exc:
        keys.failure = failures.unknown(str(exc))
        keys.error = "unknown-error"
        return
    done = await client.wait_for(lambda line: "Bootstrapped 100%" in line, timeout)
    read_log(keys, client.text())
    if plan.pt_log:
        keys.x_didban_pt_log = tail(Path(plan.pt_log))
    if done is not None:
        keys.success = True
        keys.bootstrap_time = round(client.lines[done][0] - t0, 6)
        return
    if client.returncode is not None:
        keys.failure = failures.unknown(f"tor exited with code {client.returncode}")
        keys.error = "unknown-error"
    else:
        keys.failure = failures.GENERIC_TIMEOUT
        keys.error = "timeout-reached"


def tail(path: Path, lines: int = PT_LOG_LINES) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
