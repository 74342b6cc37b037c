"""DNS lookups recorded as OONI ``dnst`` queries, one module per transport behind one
interface (:class:`Transport`): UDP with late replies (``udp``), TCP (``tcp``), DoT
(``dot``), DoH over didban's HTTP client (``doh``) and the system resolver (``system``);
``message`` holds what they share. This module only re-exports."""

from didban.net.dns.doh import DoH, DoHSession
from didban.net.dns.dot import DoT
from didban.net.dns.message import (
    DEFAULT_TIMEOUT,
    DNSResult,
    Transport,
    answer_addrs,
    resolver,
)
from didban.net.dns.system import System
from didban.net.dns.tcp import TCP
from didban.net.dns.udp import DEFAULT_DUPLICATE_WAIT, UDP

__all__ = [
    "DEFAULT_DUPLICATE_WAIT",
    "DEFAULT_TIMEOUT",
    "TCP",
    "UDP",
    "DNSResult",
    "DoH",
    "DoHSession",
    "DoT",
    "System",
    "Transport",
    "answer_addrs",
    "resolver",
]
