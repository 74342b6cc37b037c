"""Isolation: no lab namespace has a route to, or can reach, any root-namespace address, and
every veth of the lab has both ends inside the lab (DESIGN.md §4, pitfall P14)."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from didban.lab import plan
from didban.net import guard

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab
LAB_PROFILE = "clean"


def _root_addresses() -> list[str]:
    """The root namespace's own IPv4 addresses (except 127/8) and its default gateways.

    They may overlap the lab's TEST-NET ranges (a sandbox whose own network is 192.0.2.0/24):
    the same numbers are then different hosts inside the lab, which is why the decisive
    check is that a root-namespace listener never sees a connection."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    addrs = [m.group(1) for m in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+)/", out.stdout)]
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "default"], capture_output=True, text=True
    )
    addrs += re.findall(r"via (\d+\.\d+\.\d+\.\d+)", routes.stdout)
    return sorted({a for a in addrs if not ipaddress.ip_address(a).is_loopback})


@pytest.fixture(scope="module")
def root_listeners() -> Iterator[tuple[list[socket.socket], int, list[str]]]:
    """TCP listeners in the root namespace on 127.0.0.1 and on each root address."""
    socks: list[socket.socket] = []
    port = 0
    bound: list[str] = []
    for addr in ["127.0.0.1", *_root_addresses()]:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
        except OSError:
            s.close()
            continue
        s.listen(8)
        port = s.getsockname()[1]
        socks.append(s)
        bound.append(addr)
    try:
        yield socks, port, bound
    finally:
        for s in socks:
            s.close()


_TRY = r"""
import json, socket, sys
port = int(sys.argv[1]); out = {}
for addr in sys.argv[2:]:
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((addr, port)); out[addr] = "CONNECTED"
    except OSError as e:
        out[addr] = e.__class__.__name__ + ":" + str(e.errno)
    finally:
        s.close()
print(json.dumps(out))
"""


def test_no_lab_namespace_has_a_default_route_or_a_route_out(lab: Lab) -> None:
    # Route lookups send nothing; addresses inside the lab ranges are lab hosts in the lab.
    outside = [a for a in _root_addresses() if not guard.is_lab_address(a)]
    for role in plan.ROLES:
        assert lab.run(["ip", "-4", "route", "show", "default"], role=role).stdout == ""
        for addr in [*outside, "10.255.255.1", "172.16.0.1", "8.8.8.8"]:
            r = lab.run(["ip", "-4", "route", "get", addr], role=role)
            assert r.returncode != 0, f"{role} has a route to {addr}: {r.stdout}"
            assert "unreachable" in r.stderr.lower(), r.stderr


def test_no_lab_namespace_can_reach_a_root_namespace_listener(
    lab: Lab, root_listeners: tuple[list[socket.socket], int, list[str]]
) -> None:
    socks, port, bound = root_listeners
    assert "127.0.0.1" in bound
    for role in plan.ROLES:
        r = lab.run([sys.executable, "-c", _TRY, str(port), *bound], role=role)
        assert r.returncode == 0, r.stderr
        results = json.loads(r.stdout)
        # The lab's own loopback has no such listener.
        assert results.pop("127.0.0.1") == "ConnectionRefusedError:111", role
        for addr, outcome in results.items():
            if not guard.is_lab_address(addr):
                assert outcome.endswith(":101"), f"{role} -> {addr}: {outcome}"  # ENETUNREACH
    # Decisive: not one connection attempt arrived at any root-namespace listener.
    for s in socks:
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.accept()


def test_every_veth_peer_is_inside_the_lab(lab: Lab) -> None:
    ours = {lab.ns(r) for r in plan.ROLES}
    for role in plan.ROLES:
        out = lab.run(["ip", "-o", "-d", "link", "show"], role=role).stdout
        for line in out.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name == "lo":
                continue
            assert " veth " in f" {line} ", f"{role}: unexpected interface {name}"
            peer = re.search(r"link-netns (\S+)", line)
            assert peer is not None and peer.group(1) in ours, f"{role}: {line}"
