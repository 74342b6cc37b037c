"""Fixtures of the API tests: a store with constructed verdicts behind a TestClient."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))

from store_helpers import by_annotation

from didban.api.app import create_app
from didban.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", classifier=by_annotation())
    yield s
    s.close()


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, max_body=64 * 1024)) as c:
        yield c
