"""The probe's upload queue against a real collector on loopback: down, up, resubmitted."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
import uvicorn
from server_helpers import free_port
from store_helpers import measurement

from didban.api.app import create_app
from didban.probe.upload import UploadQueue, submit_url
from didban.store.store import Store


@contextmanager
def collector(store: Store, port: int) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning")
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=20)


def test_queue_survives_a_down_collector_then_delivers_once(tmp_path: Path, store: Store) -> None:
    q = UploadQueue(tmp_path / "queue")
    for i in range(20):
        q.put(orjson.dumps(measurement(i)))
    q.put(orjson.dumps(measurement(0)))  # the same bytes again: one entry
    assert len(q.pending()) == 20
    port = free_port()
    # Nobody listens yet: every attempt fails, nothing is lost.
    sent, failed = asyncio.run(q.flush(f"http://127.0.0.1:{port}", attempts=3, backoff=0.01))
    assert (sent, failed) == (0, 20) and len(q.pending()) == 20
    with collector(store, port) as url:
        sent, failed = asyncio.run(q.flush(url))
    assert (sent, failed) == (20, 0) and q.pending() == []
    assert store.count() == 20
    assert len((q.dir / "sent.jsonl").read_text().splitlines()) == 20


def test_resubmitted_queue_creates_no_duplicates(tmp_path: Path, store: Store) -> None:
    q = UploadQueue(tmp_path / "queue")
    for i in range(10):
        q.put(measurement(i))
    # Keep a copy, as if the probe died after sending but before removing the files.
    shutil.copytree(q.pending_dir, tmp_path / "copy")
    with collector(store, free_port()) as url:
        assert asyncio.run(q.flush(url)) == (10, 0)
        for f in (tmp_path / "copy").glob("*.json"):
            shutil.copy(f, q.pending_dir / f.name)
        assert asyncio.run(q.flush(url)) == (10, 0)
        store.flush()
    assert store.count() == 10
    uids = [
        orjson.loads(line)["measurement_uid"]
        for line in (q.dir / "sent.jsonl").read_bytes().splitlines()
    ]
    assert len(uids) == 20 and len(set(uids)) == 10


def test_rejected_measurement_is_set_aside_with_the_reason(tmp_path: Path, store: Store) -> None:
    q = UploadQueue(tmp_path / "queue")
    bad = {**measurement(1), "probe_cc": "iran"}
    q.put(bad)
    q.put(measurement(2))
    with collector(store, free_port()) as url:
        assert asyncio.run(q.flush(url)) == (1, 1)
    assert q.pending() == [] and len(q.rejected()) == 1
    reason = (q.rejected_dir / (q.rejected()[0].name + ".reason")).read_text()
    assert reason.startswith("400") and "probe_cc must be two capital letters" in reason
    assert store.count() == 1


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    q = UploadQueue(tmp_path / "queue")
    with pytest.raises(ValueError, match="not a JSON measurement"):
        q.put(b"{nope")
    with pytest.raises(ValueError, match="must start with http"):
        submit_url("127.0.0.1:8080")
    assert submit_url("http://h:1/") == "http://h:1/api/v1/submit_measurement"
