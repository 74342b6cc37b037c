"""Fixtures of the didban.net tests: a throwaway CA and the loopback site."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trustme
from peers import Site


@pytest.fixture
async def site(ca: trustme.CA) -> AsyncIterator[Site]:
    s = await Site(ca).start()
    yield s
    await s.stop()
