"""A collector killed with SIGKILL mid-submission loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx2
import orjson
import pytest
from server_helpers import free_port, start_server, stop
from store_helpers import measurement


async def _submit_until_killed(
    port: int, proc_pid: int, kill_after: int
) -> tuple[dict[int, str], int]:
    """Submit concurrently; SIGKILL the server once ``kill_after`` were acknowledged."""
    acked: dict[int, str] = {}
    sent = 0
    url = f"http://127.0.0.1:{port}/api/v1/submit_measurement"
    killed = asyncio.Event()

    async def worker(client: httpx2.AsyncClient, start: int) -> None:
        nonlocal sent
        i = start
        while not killed.is_set():
            body = orjson.dumps({"format": "json", "content": measurement(i)})
            sent += 1
            try:
                r = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
            except httpx2.HTTPError:
                return
            if r.status_code == 200:
                acked[i] = r.json()["measurement_uid"]
                if len(acked) >= kill_after and not killed.is_set():
                    os.kill(proc_pid, signal.SIGKILL)
                    killed.set()
            i += 8

    async with httpx2.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(worker(client, k) for k in range(8)))
    return acked, sent


@pytest.mark.slow
def test_sigkill_mid_submission_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    proc = start_server(data, port)
    try:
        acked, sent = asyncio.run(_submit_until_killed(port, proc.pid, kill_after=300))
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        stop(proc)
    assert len(acked) >= 300
    port = free_port()
    proc = start_server(data, port)
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            page = c.get("/api/v1/measurements", params={"limit": 100000}).json()
            listed = page["metadata"]["count"]
            stored = {r["measurement_uid"] for r in page["results"]}
            # Everything acknowledged is queryable; unacknowledged ones may or may not be in.
            assert set(acked.values()) <= stored
            assert len(acked) <= listed <= sent and len(stored) == listed
            for i, uid in list(acked.items())[::25]:
                r = c.get(f"/api/v1/measurement/{uid}")
                assert r.json()["measurement"]["annotations"]["seq"] == str(i)
            # Resubmitting what was acknowledged stores nothing new.
            for i in list(acked)[:50]:
                r = c.post(
                    "/api/v1/submit_measurement",
                    json={"format": "json", "content": measurement(i)},
                )
                assert r.json()["measurement_uid"] == acked[i]
            again = c.get("/api/v1/measurements", params={"limit": 1}).json()["metadata"]["count"]
            assert again == listed
    finally:
        stop(proc)
