"""The lab's private Tor network: Debian's ``tor`` in TestingTorNetwork mode.

Four nodes in the ``inet`` namespace, each on its own lab address (``plan.CIRCUMVENTION``):
a directory authority (also a relay; DirPort 80, ORPort 443), a relay, an exit, and a
bridge (not published) with Debian's ``obfs4proxy`` as its server transport (obfs4 on 443;
its plain ORPort 9001 is what the Snowflake server stand-in connects to). Three relays are
the least that lets a client build a 3-hop circuit and reach 100 %.

Keys: the authority's by ``tor-gencert``, every node's relay identity by ``tor
--list-fingerprint`` (both offline, about 0.4 s a node, run in parallel). Every node runs
in the foreground (one process, its pid recorded) with ``OutboundBindAddress`` so that
nodes sharing a namespace do not take each other's address for their own. Voting every
10 s (tor's lower bound with 2 s delays): a cold start reaches a consensus in which every
relay is Running 14-28 s after the start, and :func:`ready` says when the authority has
published one (read from its data directory, no network). The torrc options are tor's
own (tor(1), "TESTING NETWORK OPTIONS").
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from didban.lab import plan
from didban.lab.circumvention.layout import BRIDGE_OR_PORT
from didban.model.labinfo import LabTor, TorRelay

DIR_PORT: Final = 80
OR_PORT: Final = 443
OBFS4_PORT: Final = 443
OBFS4PROXY: Final = "/usr/bin/obfs4proxy"

# Every node and client of the lab network: tor(1) TESTING NETWORK OPTIONS.
COMMON: Final = (
    "TestingTorNetwork 1",
    "UseDefaultFallbackDirs 0",  # the DirAuthority lines already replace them; explicit
    "AssumeReachable 1",
    "PathsNeededToBuildCircuits 0.25",
    "TestingDirAuthVoteExit *",
    "TestingDirAuthVoteGuard *",
    "TestingDirAuthVoteHSDir *",
    "TestingMinExitFlagThreshold 0",
    "V3AuthNIntervalsValid 2",
    "ShutdownWaitLength 0",
    "SafeLogging 0",
    "LogTimeGranularity 1",
    "Log notice stdout",
)
AUTHORITY: Final = (
    "AuthoritativeDirectory 1",
    "V3AuthoritativeDirectory 1",
    "TestingV3AuthInitialVotingInterval 10",
    "TestingV3AuthInitialVoteDelay 2",
    "TestingV3AuthInitialDistDelay 2",
    "V3AuthVotingInterval 10",
    "V3AuthVoteDelay 2",
    "V3AuthDistDelay 2",
    "TestingAuthDirTimeToLearnReachability 0",
    "AuthDirMaxServersPerAddr 0",
)


@dataclass(frozen=True)
class Node:
    nickname: str
    role: str  # authority, relay, exit, bridge

    @property
    def address(self) -> str:
        return plan.CIRCUMVENTION[f"tor-{self.role}"]

    @property
    def or_port(self) -> int:
        return BRIDGE_OR_PORT if self.role == "bridge" else OR_PORT


NODES: Final = (
    Node("auth0", "authority"),
    Node("relay0", "relay"),
    Node("exit0", "exit"),
    Node("bridge0", "bridge"),
)


class TorNetError(RuntimeError):
    """The network could not be prepared (a tor tool failed); one sentence."""


def node_dir(base: Path, node: Node) -> Path:
    return base / "tor" / node.nickname


def _run(argv: list[str], what: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def generate(base: Path) -> tuple[list[str], dict[str, str]]:
    """Create every node's keys under ``base/tor``; return (the DirAuthority lines, nickname
    → relay fingerprint)."""
    jobs: list[tuple[str, subprocess.Popen[str]]] = []
    for node in NODES:
        d = node_dir(base, node)
        (d / "keys").mkdir(parents=True, mode=0o700)
        d.chmod(0o700)
        jobs.append(
            (
                f"fingerprint of {node.nickname}",
                _run(
                    [
                        "tor", "--list-fingerprint", "--orport", "1",
                        "--dirserver", "x 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff",
                        "--datadirectory", str(d), "--quiet",
                    ],
                    node.nickname,
                ),
            )
        )  # fmt: skip
        if node.role == "authority":
            keys = d / "keys"
            argv = [
                "tor-gencert", "--create-identity-key", "-m", "12",
                "-a", f"{node.address}:{DIR_PORT}",
                "-i", str(keys / "authority_identity_key"),
                "-s", str(keys / "authority_signing_key"),
                "-c", str(keys / "authority_certificate"),
                "--passphrase-fd", "0",
            ]  # fmt: skip
            jobs.append(("tor-gencert", _run(argv, node.nickname)))
    for what, proc in jobs:
        out, _ = proc.communicate("\n", timeout=60)
        if proc.returncode != 0:
            raise TorNetError(f"{what} failed: {out.strip()[-300:]}")
    fingerprints = {
        n.nickname: (node_dir(base, n) / "fingerprint").read_text().split()[1] for n in NODES
    }
    lines = []
    for node in NODES:
        if node.role != "authority":
            continue
        cert = (node_dir(base, node) / "keys" / "authority_certificate").read_text()
        found = re.search(r"^fingerprint (\w+)", cert, re.M)
        if found is None:
            raise TorNetError("tor-gencert wrote no fingerprint into the authority certificate")
        lines.append(
            f"{node.nickname} orport={OR_PORT} no-v2 v3ident={found.group(1)} "
            f"{node.address}:{DIR_PORT} {fingerprints[node.nickname]}"
        )
    return lines, fingerprints


def torrc(base: Path, node: Node, dir_authorities: list[str]) -> Path:
    """Write the node's torrc; return its path."""
    d = node_dir(base, node)
    a = node.address
    lines = [
        *COMMON,
        *(f"DirAuthority {line}" for line in dir_authorities),
        f"DataDirectory {d}",
        f"Nickname {node.nickname}",
        f"Address {a}",
        f"ORPort {a}:{node.or_port}",
        f"OutboundBindAddress {a}",
        "SocksPort 0",
        f"ContactInfo {node.nickname}@lab.test",
    ]
    if node.role == "authority":
        lines += [f"DirPort {a}:{DIR_PORT}", *AUTHORITY]
    if node.role == "exit":
        lines += ["ExitRelay 1", "ExitPolicy accept *:*"]
    else:
        lines += ["ExitRelay 0", "ExitPolicy reject *:*"]
    if node.role == "bridge":
        lines += [
            "BridgeRelay 1",
            "PublishServerDescriptor 0",
            f"ServerTransportPlugin obfs4 exec {OBFS4PROXY}",
            f"ServerTransportListenAddr obfs4 {a}:{OBFS4_PORT}",
            "ExtORPort auto",
        ]
    path = d / "torrc"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def authority_dir(base: Path) -> Path:
    return node_dir(base, next(n for n in NODES if n.role == "authority"))


def consensus_ready(base: Path) -> bool:
    """True when the authority has a microdescriptor consensus in which every relay but
    the bridge is Running and one is an Exit: a client can bootstrap to 100 %."""
    try:
        text = (authority_dir(base) / "cached-microdesc-consensus").read_text(errors="replace")
    except OSError:
        return False
    flags = [line for line in text.splitlines() if line.startswith("s ")]
    running = sum(" Running" in f for f in flags)
    published = sum(1 for n in NODES if n.role != "bridge")
    return running >= published and any(" Exit" in f for f in flags)


def obfs4_bridge_line(base: Path, fingerprint: str) -> str | None:
    """The bridge's obfs4 line once obfs4proxy has written its state, else None."""
    bridge = next(n for n in NODES if n.role == "bridge")
    path = node_dir(base, bridge) / "pt_state" / "obfs4_bridgeline.txt"
    try:
        text = path.read_text()
    except OSError:
        return None
    found = re.search(r"cert=(\S+) iat-mode=(\d)", text)
    if found is None:
        return None
    return (
        f"obfs4 {bridge.address}:{OBFS4_PORT} {fingerprint} "
        f"cert={found.group(1)} iat-mode={found.group(2)}"
    )


def describe(
    dir_authorities: list[str], fingerprints: dict[str, str], obfs4: str, ready: Path
) -> LabTor:
    relays = [
        TorRelay(
            nickname=n.nickname,
            role=n.role,
            address=n.address,
            or_port=n.or_port,
            fingerprint=fingerprints[n.nickname],
            dir_port=DIR_PORT if n.role == "authority" else None,
        )
        for n in NODES
    ]
    return LabTor(
        dir_authorities=dir_authorities, relays=relays, obfs4_bridge=obfs4, ready_file=str(ready)
    )
