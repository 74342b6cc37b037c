"""The runner: measures a test list with bounded concurrency and writes results as they finish.

A global semaphore bounds the URLs in flight (default 32), a per-host semaphore keeps the
probe polite (default 4 per host name), each URL has a deadline (default 60 s, OONI's
whole-measurement bound), a rich progress bar shows live counts (done, failed steps, rate),
and every finished measurement is appended to the JSONL output and fsynced at once, so an
interrupted run leaves a valid file of what finished. The runner never judges: its summary
table lists per-step outcome strings.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from didban.probe import slot
from didban.probe.lists import ListEntry
from didban.probe.output import JsonlWriter
from didban.probe.summary import Outcome, outcome

DEFAULT_CONCURRENCY = 32
DEFAULT_PER_HOST = 4
DEFAULT_DEADLINE = 60.0


class Experiment(Protocol):
    """One experiment run over one input; never raises for network failures.

    An experiment may also have ``close()``: the runner calls it when the run ends, to
    release what it shared between inputs (web_connectivity's DoH connection).
    """

    test_name: str

    async def measure(self, entry: ListEntry, deadline: float) -> Any:
        """The measurement (a msgspec struct or dict) for ``entry``, within ``deadline`` s."""
        ...


@dataclass(slots=True)
class RunOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    per_host: int = DEFAULT_PER_HOST
    deadline: float = DEFAULT_DEADLINE
    progress: bool = True


@dataclass(slots=True)
class RunResult:
    outcomes: list[Outcome] = field(default_factory=list)
    written: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    interrupted: bool = False

    @property
    def failed_steps(self) -> int:
        return sum(o.failed_steps for o in self.outcomes)


async def run(
    entries: Sequence[ListEntry],
    experiment: Experiment,
    writer: JsonlWriter,
    options: RunOptions,
    console: Console | None = None,
    result: RunResult | None = None,
) -> RunResult:
    """Measure every entry with one experiment (:func:`run_many` with one batch)."""
    return await run_many([(experiment, entries)], writer, options, console, result)


async def run_many(
    batches: Sequence[tuple[Experiment, Sequence[ListEntry]]],
    writer: JsonlWriter,
    options: RunOptions,
    console: Console | None = None,
    result: RunResult | None = None,
) -> RunResult:
    """Measure every entry of every batch (an experiment and its inputs), all under the
    same concurrency bounds; results are written (scrubbed, fsynced) as each finishes.

    ``result`` (optional) is filled in place, so a caller interrupted by Ctrl-C still has
    the outcomes of what finished.
    """
    console = console or Console(stderr=True)
    result = result if result is not None else RunResult()
    # getaddrinfo (the system resolver) runs in the loop's default executor, whose default
    # size (CPUs + 4) would queue lookups behind each other: one thread per URL in flight.
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(
        max_workers=max(8, options.concurrency + 4), thread_name_prefix="didban-resolve"
    )
    loop.set_default_executor(executor)
    sem = asyncio.Semaphore(max(1, options.concurrency))
    per_host: dict[str, asyncio.Semaphore] = defaultdict(
        lambda: asyncio.Semaphore(max(1, options.per_host))
    )
    started = time.monotonic()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed steps: {task.fields[failed]}"),
        TextColumn("{task.fields[rate]:.1f} URL/s"),
        TimeElapsedColumn(),
        console=console,
        disable=not options.progress,
        transient=False,
    )

    async def one(experiment: Experiment, task_id: TaskID, entry: ListEntry) -> None:
        host_sem = per_host[entry.host or entry.url]
        await sem.acquire()
        try:
            await host_sem.acquire()
        except BaseException:
            sem.release()
            raise
        held = True

        def give_back() -> None:  # once: the experiment may release it before it returns
            nonlocal held
            if held:
                held = False
                host_sem.release()
                sem.release()

        # the slot as the experiment sees it (didban.probe.slot); the task wait_for makes
        # below copies this context
        slot.bind(give_back)
        try:
            m = await asyncio.wait_for(
                experiment.measure(entry, options.deadline), options.deadline + 10.0
            )
        except TimeoutError:
            result.errors.append(f"{entry.url}: did not finish within its deadline")
            return
        except Exception as exc:  # a bug, not a network failure: report, keep going
            result.errors.append(f"{entry.url}: internal error: {exc!r}")
            return
        finally:
            give_back()

        def appended(raw: bytes) -> None:  # the line is in the file: count it now
            result.written += 1
            try:
                result.outcomes.append(outcome(msgspec.json.decode(raw)))
            except Exception as exc:  # a summary bug must not cost the measurement
                result.errors.append(f"{entry.url}: written, but not summarised: {exc!r}")
                return
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(
                task_id,
                advance=1,
                failed=result.failed_steps,
                rate=len(result.outcomes) / elapsed,
            )

        await writer.awrite(m, appended)

    with progress:
        tasks = []
        for experiment, entries in batches:
            task_id = progress.add_task(
                experiment.test_name, total=len(entries), failed=0, rate=0.0
            )
            tasks += [asyncio.create_task(one(experiment, task_id, e)) for e in entries]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            result.interrupted = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            result.elapsed += time.monotonic() - started
            for experiment, _ in batches:
                close = getattr(experiment, "close", None)
                if callable(close):  # what the experiment shared between URLs (connections)
                    close()
    return result


def summary_table(result: RunResult, order: Sequence[ListEntry] | None = None) -> Table:
    """Per input: the DNS/TCP/TLS/HTTP/QUIC outcome strings (not verdicts); a column with
    the test's name when the run measured more than one test."""
    table = Table(title="measured (outcomes per step; verdicts: didban analyze)")
    rows = result.outcomes
    several = len({o.test for o in rows}) > 1
    for col in ("test",) * several + ("URL", "DNS", "TCP", "TLS", "HTTP", "QUIC"):
        table.add_column(col, overflow="fold")
    if order is not None:
        rank = {e.url: i for i, e in enumerate(order)}
        rows = sorted(rows, key=lambda o: rank.get(o.url, len(rank)))
    for o in rows:
        cells = (o.url, o.dns, o.tcp, o.tls, o.http, o.quic)
        table.add_row(*((o.test,) if several else ()), *cells)
    return table
