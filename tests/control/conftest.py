"""Fixtures of the control tests: the loopback site, a DNS server and a running helper."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "net"))

from peers import DNSServer, Site

from didban.control.helper import HelperConfig
from didban.control.server import start


@dataclass
class Lab:
    site: Site
    dns: DNSServer
    helper_url: str
    ca_file: str


@pytest.fixture
async def lab(ca: trustme.CA, ca_file: str) -> AsyncIterator[Lab]:
    site = await Site(ca).start()
    dns = await DNSServer({"site.test": ["127.0.0.1"], "www.site.test": ["127.0.0.1"]}).start()
    cfg = HelperConfig(
        resolver=f"127.0.0.1:{dns.port}", ca_file=ca_file, allow_loopback=True, asn_map=[]
    )
    server = await start("127.0.0.1", 0, cfg)
    port = server.sockets[0].getsockname()[1]
    yield Lab(site, dns, f"http://127.0.0.1:{port}/", ca_file)
    server.close()
    dns.stop()
    await site.stop()
