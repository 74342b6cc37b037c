"""The runner bounds the measurements doing work at once, and a measurement that only waits
(late UDP replies) gives its slot back so the next input starts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from didban.probe import slot
from didban.probe.lists import ListEntry
from didban.probe.output import JsonlWriter
from didban.probe.runner import RunOptions, RunResult, run
from didban.probe.scrub import Scrubber


class Waiting:
    """An experiment whose measurements work briefly, then wait passively. With ``release``
    they give their slot back first and wait until all ``n`` are waiting: a gate that opens
    only if more than the concurrency bound can be in flight (were the release broken, it
    would never open and every measurement would time out)."""

    test_name = "web_connectivity"

    def __init__(self, n: int, release: bool) -> None:
        self.n = n
        self.release = release
        self.active = 0
        self.max_active = 0
        self.waiting = 0
        self.max_waiting = 0
        self.gate = asyncio.Event()

    async def measure(self, entry: ListEntry, deadline: float) -> Any:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await asyncio.sleep(0)  # the active part: other inputs may run meanwhile
        self.active -= 1
        if self.release:
            slot.release()
            slot.release()  # harmless twice
        self.waiting += 1
        self.max_waiting = max(self.max_waiting, self.waiting)
        if self.release:
            if self.waiting == self.n:
                self.gate.set()
            await self.gate.wait()
        else:
            await asyncio.sleep(0.01)  # a passive wait that keeps the slot
        self.waiting -= 1
        return {"input": entry.url, "test_name": self.test_name, "test_keys": {}}


def _run(tmp_path: Path, exp: Waiting, n: int, deadline: float) -> tuple[RunResult, list[str]]:
    out = tmp_path / "m.jsonl"
    writer = JsonlWriter(out, Scrubber(set()))
    res = RunResult()
    entries = [ListEntry(f"https://site{i}.example/") for i in range(n)]
    opts = RunOptions(concurrency=2, deadline=deadline, progress=False)
    asyncio.run(run(entries, exp, writer, opts, Console(quiet=True), res))
    writer.close()
    lines = [json.loads(x)["input"] for x in out.read_text().splitlines()]
    return res, lines


def test_a_measurement_that_only_waits_gives_its_slot_back(tmp_path: Path) -> None:
    exp = Waiting(6, release=True)
    res, inputs = _run(tmp_path, exp, 6, deadline=30.0)
    assert res.errors == []
    assert sorted(inputs) == sorted(f"https://site{i}.example/" for i in range(6))
    assert exp.max_active <= 2  # the bound holds for work...
    assert exp.max_waiting == 6  # ...not for sockets left listening


def test_without_the_release_the_bound_holds_for_the_whole_measurement(tmp_path: Path) -> None:
    exp = Waiting(6, release=False)
    res, inputs = _run(tmp_path, exp, 6, deadline=30.0)
    assert res.errors == []
    assert len(inputs) == 6
    assert exp.max_active <= 2 and exp.max_waiting == 2  # never more than the bound in flight


def test_lines_appended_before_an_interrupt_are_all_synced_and_queued(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # Ctrl-C while 20 fsyncs wait in line: every line in the file reaches the upload queue
    import os as _os
    import time as _time

    from didban.probe import output
    from didban.probe.scrub import Scrubber

    real_fsync = _os.fsync

    def slow_fsync(fd: int) -> None:
        _time.sleep(0.05)
        real_fsync(fd)

    monkeypatch.setattr(output.os, "fsync", slow_fsync)
    queued: list[bytes] = []

    class Queue:
        def put(self, measurement: bytes) -> None:
            queued.append(measurement)

    writer = JsonlWriter(tmp_path / "o.jsonl", Scrubber(set()), queue=Queue())
    counted: list[bytes] = []

    async def main() -> None:
        tasks = [asyncio.ensure_future(writer.awrite({"i": i}, counted.append)) for i in range(20)]
        await asyncio.sleep(0.02)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    writer.close()
    lines = (tmp_path / "o.jsonl").read_bytes().splitlines()
    assert len(lines) == len(counted) == len(queued) == 20
