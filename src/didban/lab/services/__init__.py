"""The lab's fake internet: web sites (HTTP/1.1, HTTP/2, HTTP/3), public resolvers (UDP, TCP,
DoT, DoH), the ISP resolver, Iran's blockpage host and the domestic sites.

Run as ``python -m didban.lab.services {inet|domestic} --state-dir DIR`` inside the
namespace of that role (``lab up`` does it); see :mod:`didban.lab.services.main`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

ROLES: Final = ("inet", "domestic")  # the namespaces that run a service process


def ready_file(state_dir: Path, role: str) -> Path:
    """Written by the ``role`` service process once every listener is up."""
    return state_dir / f"{role}-services.ready"
