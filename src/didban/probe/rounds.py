"""Measuring in rounds: ``didban run --every D [--jitter J] [--overlap N] [--rounds R]``.

A *series* is one output file measured round after round. Each round is a whole
``didban run`` (the selected tests over the selected list) in a child process, with a
``report_id`` of its own (one probe run). Rounds start on the grid of
``didban.probe.schedule`` — slot ``k`` at ``anchor + k·every``, plus a random delay below
``--jitter`` — so the schedule never drifts whatever a round lasts. A round still running
when the next slot comes does not delay it: up to ``--overlap`` rounds run at once (default
1); a slot that finds that many running is skipped, and a line says so. Overlap keeps the
number of measurements per hour constant when censorship makes rounds slow (every
connection to a blocked address waits for its timeout), which the volume detector
(docs/events.md) would otherwise read as an outage.

A round writes its own part file, ``<output>.round-<N>`` (line by line, fsynced, as any
``didban run``). When it ends, the part is appended to the output in one piece and its
``end`` record names where its lines begin; then the part is removed. So the output holds
whole rounds, one after the other, whatever the overlap. A series whose process died
keeps its parts: started again with the same ``--output``, it appends what they hold
(unless the output already ends with it: the append had happened) and closes their rounds
with ``exit: null``, then goes on with the next slot of the same grid.

With ``--upload``, each round queues every measurement durably as it writes it
(``--upload-queue``) and the series sends the queue after every round, on a thread of its
own so a slow collector never holds a slot back, and once at the start when an earlier
run left measurements queued. Ctrl-C, SIGTERM and SIGHUP stop the series: every running
round gets the signal once and keeps what it finished; the command waits for them, appends
their parts and exits 130. What was not uploaded stays queued for the next run.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from rich.console import Console

from didban.probe.schedule import (
    End,
    RoundLog,
    Schedule,
    Series,
    Start,
    log_path,
    next_slot,
    part_path,
    seconds,
    series_of,
    stamp,
)

EXIT_INTERRUPTED: Final = 130
TICK: Final = 0.1  # how often the series looks at its rounds, the clock and the stop flag
_STOPS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class RoundError(RuntimeError):
    """No round can run (the child cannot start, the lab is gone)."""


@dataclass
class Round:
    """How to run one round: the child's command line and environment for a part file,
    and a check that says (one sentence) why no round can run any more (the lab is gone)."""

    command: Callable[[Path], tuple[list[str], dict[str, str]]]
    problem: Callable[[], str | None] = lambda: None


@dataclass
class _Running:
    number: int
    part: Path
    child: subprocess.Popen[bytes]


@dataclass
class _Stopper:
    """Stop signals: remembered, and passed once to every running round."""

    signum: int | None = None
    running: list[_Running] = field(default_factory=list)

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signum is not None:
            return
        self.signum = signum
        for r in list(self.running):
            _signal(r.child, signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self) for s in _STOPS}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _signal(child: subprocess.Popen[bytes], signum: int) -> None:
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)


class _Uploads:
    """``flush`` on a thread of its own, one at a time; a request while one runs is
    remembered and done right after it."""

    def __init__(self, flush: Callable[[], bool]) -> None:
        self.flush = flush
        self.ok = True
        self._lock = threading.Lock()
        self._wanted = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        with self._lock:
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="didban-upload", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._wanted:
                    self._thread = None
                    return
                self._wanted = False
            self.ok = self.flush()

    def finish(self) -> bool:
        """Wait for the uploads asked for; whether the last one sent everything."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()
        return self.ok


def _append_part(output: Path, part: Path) -> tuple[int, int]:
    """Append ``part`` to ``output`` (fsynced); (where its lines begin, how many). A part
    the output already ends with (appended before a crash) is not appended twice."""
    data = part.read_bytes() if part.exists() else b""
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(output, flags, 0o644)
    try:
        size = os.fstat(fd).st_size
        if data and size >= len(data) and os.pread(fd, len(data), size - len(data)) == data:
            return size - len(data), data.count(b"\n")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        return size, data.count(b"\n")
    finally:
        os.close(fd)


def serve(
    plan: Schedule,
    output: Path,
    round_: Round,
    console: Console,
    flush: Callable[[], bool] | None = None,
    pending_uploads: Callable[[], bool] = lambda: False,
    rng: random.Random | None = None,
) -> int:
    """Measure ``output`` in rounds until ``plan.rounds`` or a stop signal; the exit code
    (0 every round measured everything; 1 a round did not, or no round could run; 3 the
    last upload left measurements queued; 130 stopped). ScheduleError, before any round,
    for a round log that cannot be continued."""
    log = RoundLog(log_path(output))
    try:
        series = series_of(log.records, plan.every, time.time(), output)
        rounds = _Rounds(plan, output, round_, console, log, series, rng or random.Random())
        return rounds.run(_Uploads(flush) if flush else None, pending_uploads)
    finally:
        log.close()


class _Rounds:
    def __init__(
        self,
        plan: Schedule,
        output: Path,
        round_: Round,
        console: Console,
        log: RoundLog,
        series: Series,
        rng: random.Random,
    ) -> None:
        self.plan = plan
        self.output = output
        self.round = round_
        self.say = console.print
        self.log = log
        self.series = series
        self.rng = rng
        self.stopper = _Stopper()
        self.started = series.rounds  # rounds of the series started so far
        self.last_slot = series.last_slot
        self.worst = 0

    def run(self, uploads: _Uploads | None, pending_uploads: Callable[[], bool]) -> int:
        self._greet()
        self._recover()
        if uploads is not None and pending_uploads():
            uploads.request()
        with self.stopper.installed():
            try:
                self._loop(uploads)
            except RoundError as exc:
                self.say(f"[red]error:[/] {exc}")
                self.worst = 1
                self._drain(uploads)
        this_run = self.started - self.series.rounds
        if self.stopper.signum is not None:
            kept = "; what was not uploaded stays queued for the next run" if uploads else ""
            self.say(
                f"stopped after {this_run} round(s) ({self.started} in the series); every "
                f"finished measurement is in {self.output}{kept}"
            )
            return EXIT_INTERRUPTED
        self.say(f"{this_run} round(s) done ({self.started} in the series) into {self.output}")
        uploaded = uploads.finish() if uploads is not None else True
        return self.worst or (0 if uploaded else 3)

    def _greet(self) -> None:
        every, series = seconds(self.plan.every), self.series
        if not series.rounds:
            self.say(f"measuring every {every} into {self.output} (round log {self.log.path})")
            return
        self.say(
            f"continuing the series of {self.output}: {series.rounds} round(s) so far, "
            f"every {every} since {stamp(series.anchor)}"
        )

    def _recover(self) -> None:
        """Close the rounds a dead process left open, keeping what their parts hold; remove
        the parts of rounds that did end."""
        for number in self.series.unfinished:
            part = part_path(self.output, number)
            offset, written = _append_part(self.output, part)
            self.log.append(End(number, stamp(time.time()), None, written, offset, True))
            part.unlink(missing_ok=True)
            self.say(f"round {number} never ended: its {written} finished measurement(s) kept")
        for number in range(1, self.series.rounds + 1):
            part_path(self.output, number).unlink(missing_ok=True)

    def _loop(self, uploads: _Uploads | None) -> None:
        running = self.stopper.running
        plan, anchor = self.plan, self.series.anchor
        due: tuple[int, float] | None = None  # the next round's slot and planned time
        while True:
            for r in [r for r in running if r.child.poll() is not None]:
                running.remove(r)
                self._end(r, uploads)
            wanted = plan.rounds is None or self.started < plan.rounds
            if self.stopper.signum is not None or not wanted:
                if not running:
                    return
                time.sleep(TICK)
                continue
            now = time.time()
            if due is None:
                if self.started == 0:  # a new series: its first round is slot 0, now
                    anchor = now
                    self.series = Series(now, plan.every, 0, -1, ())
                slot = next_slot(anchor, plan.every, self.last_slot, now)
                jitter = self.rng.uniform(0, plan.jitter) if plan.jitter else 0.0
                due = (slot, anchor + slot * plan.every + jitter)
            slot, planned = due
            if now < planned:
                time.sleep(min(TICK, planned - now))
                continue
            due = None
            self.last_slot = slot
            if len(running) >= plan.overlap:
                self.say(f"slot {slot} skipped: {len(running)} round(s) still running")
                continue
            if problem := self.round.problem():
                raise RoundError(problem)
            running.append(self._start(slot, planned))

    def _start(self, slot: int, planned: float) -> _Running:
        self.started += 1
        number = self.started
        part = part_path(self.output, number)
        part.unlink(missing_ok=True)  # a leftover of an earlier series of this name
        series = self.series
        record = Start(
            number, slot, series.every, stamp(series.anchor), stamp(planned), stamp(time.time())
        )
        self.log.append(record)
        cmd, env = self.round.command(part)
        try:
            # its own process group: a Ctrl-C at the terminal reaches it once, through us
            child = subprocess.Popen(cmd, env=env, process_group=0)
        except OSError as exc:
            self.log.append(End(number, stamp(time.time()), 127, 0, 0, False))
            raise RoundError(f"round {number} could not start: {exc.strerror or exc}") from None
        if self.stopper.signum is not None:  # a signal came while it started
            _signal(child, self.stopper.signum)
        self.say(f"round {number} started (slot {slot}, planned {stamp(planned)})")
        return _Running(number, part, child)

    def _end(self, r: _Running, uploads: _Uploads | None) -> None:
        code = r.child.returncode
        code = 128 - code if code < 0 else code
        offset, written = _append_part(self.output, r.part)
        stopped = self.stopper.signum is not None
        self.log.append(End(r.number, stamp(time.time()), code, written, offset, stopped))
        r.part.unlink(missing_ok=True)
        if code not in (0, EXIT_INTERRUPTED):
            self.worst = 1
        self.say(
            f"round {r.number} ended: {written} measurement(s) appended to {self.output.name}, "
            f"exit {code}" + (" (stopped)" if stopped else "")
        )
        if uploads is not None and not stopped:
            uploads.request()

    def _drain(self, uploads: _Uploads | None) -> None:
        """Wait for the running rounds (after an error) and append them."""
        running = self.stopper.running
        while running:
            for r in [r for r in running if r.child.poll() is not None]:
                running.remove(r)
                self._end(r, uploads)
            time.sleep(TICK)
