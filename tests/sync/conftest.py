"""Fixtures of the sync tests: a fake OONI bucket on moto's S3 server (127.0.0.1 only)
and a proxy in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ooni_bucket import Archive, MotoServer, Proxy, build_archive, upload


@pytest.fixture(scope="session")
def archive() -> Archive:
    return build_archive()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory, archive: Archive) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    try:
        upload(server.endpoint, archive)
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[Proxy]:
    p = Proxy(moto.port)
    yield p
    p.stop()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "mirror"
