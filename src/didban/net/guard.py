"""Network-safety guard (DESIGN.md §4): refuse destinations a test or demo must never reach.

When ``DIDBAN_NET_GUARD=1`` (set by the test suite and by ``make demo``), every socket
``connect``/``sendto`` of this process is checked:

* from the root network namespace only loopback is allowed;
* from any other namespace (a lab namespace) only loopback and the lab ranges are allowed:
  the TEST-NET ranges, 10.10.34.0/24 (Iran's blockpage hosts), 2001:db8::/32 and d0::/16.

A forgotten real-world default (a public resolver, a control server) therefore fails loudly
with ``NetworkGuardError`` instead of leaking traffic. The environment variable is inherited,
so probes and helpers started inside the lab are guarded too.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any, Final

ENV_VAR: Final = "DIDBAN_NET_GUARD"

LAB_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "10.10.34.0/24",
        "2001:db8::/32",
        "d0::/16",
    )
)


class NetworkGuardError(PermissionError):
    """A connection to a destination outside loopback and the lab was attempted."""


def enabled() -> bool:
    return os.environ.get(ENV_VAR) == "1"


def _netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def in_root_namespace() -> bool:
    """True unless the calling thread is in a named namespace (one ``ip netns add`` made).

    The sandbox's own namespace may differ from PID 1's (containers, microVM init), so
    "root" here means "the namespace we were started in", i.e. not a lab namespace.
    """
    mine = _netns_inode("/proc/thread-self/ns/net")
    return mine is None or not _is_named_netns(mine)


def _is_named_netns(inode: int) -> bool:
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return False
    return any(_netns_inode(f"/run/netns/{n}") == inode for n in names)


def is_lab_address(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return any(addr in net for net in LAB_NETWORKS)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


def check(host: str) -> None:
    """Raise ``NetworkGuardError`` if the guard is on and ``host`` is not allowed from here."""
    if not enabled() or _is_loopback(host):
        return
    if in_root_namespace():
        raise NetworkGuardError(
            f"network guard: refusing {host}: from the root namespace only loopback is allowed"
        )
    if not is_lab_address(host):
        raise NetworkGuardError(
            f"network guard: refusing {host}: only loopback and lab addresses are allowed"
        )


def _host_of(address: Any) -> str | None:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return address[0]
    return None  # AF_UNIX paths, netlink tuples of ints, ...


_installed = False


def install() -> None:
    """Wrap ``socket.socket.connect``/``connect_ex``/``sendto`` with :func:`check`. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    orig_connect = socket.socket.connect
    orig_connect_ex = socket.socket.connect_ex
    orig_sendto = socket.socket.sendto

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and (h := _host_of(address)):
            check(h)
        orig_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and (h := _host_of(address)):
            check(h)
        return orig_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        address = args[-1]
        if self.family in (socket.AF_INET, socket.AF_INET6) and (h := _host_of(address)):
            check(h)
        return orig_sendto(self, data, *args)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]


def install_if_enabled() -> None:
    if enabled():
        install()
