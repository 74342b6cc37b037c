"""The network-safety guard refuses non-loopback destinations from the root namespace."""

from __future__ import annotations

import socket

import pytest

from didban.net import guard


def test_guard_refuses_public_address_from_root_namespace() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(guard.NetworkGuardError, match="only loopback"):
            s.connect(("8.8.8.8", 53))
    finally:
        s.close()


def test_guard_refuses_udp_sendto_and_lab_addresses_from_root() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(guard.NetworkGuardError):
            s.sendto(b"x", ("1.1.1.1", 53))
        with pytest.raises(guard.NetworkGuardError):
            s.sendto(b"x", ("203.0.113.5", 53))
    finally:
        s.close()


def test_guard_allows_loopback() -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        c.connect(srv.getsockname())
    finally:
        c.close()
        srv.close()


def test_lab_ranges() -> None:
    assert guard.is_lab_address("10.10.34.36")
    assert guard.is_lab_address("198.51.100.7")
    assert not guard.is_lab_address("10.10.35.1")
    assert not guard.is_lab_address("8.8.8.8")


@pytest.mark.lab
def test_guard_in_a_lab_namespace_allows_only_lab_ranges() -> None:
    import os
    import subprocess
    import sys
    import uuid

    ns = f"dbg{uuid.uuid4().hex[:6]}-guard"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        code = (
            "from didban.net import guard\n"
            "assert not guard.in_root_namespace()\n"
            "guard.check('203.0.113.10'); guard.check('10.10.34.36')\n"
            "try:\n    guard.check('8.8.8.8')\nexcept guard.NetworkGuardError as e:\n"
            "    print('refused:', e)\n"
        )
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, guard.ENV_VAR: "1"},
            check=True,
        ).stdout
        assert "refused: network guard: refusing 8.8.8.8" in out
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
