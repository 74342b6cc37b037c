"""The web tests: measurements built with the analysis tests' builders, and an explorer
store filled with OONI's fixture measurements (read in place from ``../shared``) and a
few saved events."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analysis"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))

from web_helpers import fill

from didban.store.store import Store
from didban.web.app import create_app


@pytest.fixture(scope="session")
def explorer_dir(ooni_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("explorer") / "data"
    fill(data_dir, ooni_fixtures)
    return data_dir


@pytest.fixture
def client(explorer_dir: Path) -> Iterator[TestClient]:
    with Store(explorer_dir) as store, TestClient(create_app(store)) as c:
        yield c
