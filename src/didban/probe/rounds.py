"""Measuring in rounds: ``didban run --every DURATION [--jitter DURATION] [--rounds N]``.

A *series* is one output file measured round after round. Each round is a whole
``didban run`` (the selected tests over the selected list) in a child process that appends
to the output (``--append``), with a ``report_id`` of its own (one probe run). Rounds
start on a fixed grid: slot ``k`` is ``anchor + k·every`` (plus a random delay below
``--jitter``), so the schedule never drifts whatever a round lasts; a round that overruns
its slot makes the next one wait for the next free slot (the slots it covered are
skipped, not made up).

Beside the output, ``<output>.rounds`` is the series' round log (JSON lines, each appended
with one write and fsynced): a ``start`` record when a round starts (its number, slot,
the anchor and interval, the planned and actual start, the output's size) and an ``end``
record when it ends (exit code, measurements written, whether it was stopped). It is
the series' memory: started again with the same ``--output``, ``run --every`` continues
the series — round numbers go on, the next round waits for the next slot of the same
grid, the output is appended to — and refuses another interval (one sentence). The log
is locked while a series runs, so two processes never measure into one file.

With ``--upload``, each child queues every measurement durably as it writes it
(``--upload-queue``) and this process sends the queue after every round, and once at the
start when an earlier run left measurements in it. Ctrl-C, SIGTERM and SIGHUP stop the
series: during a round the signal is passed to the child once, which keeps every
finished measurement and exits; between rounds the wait ends at once. Either way the round
log is closed with what happened, and the command exits 130.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec
from rich.console import Console

EXIT_INTERRUPTED: Final = 130
LOG_SUFFIX: Final = ".rounds"
MIN_EVERY: Final = 1.0
TICK: Final = 0.2  # a wait between rounds looks at the stop flag this often
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_STOPS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ScheduleError(ValueError):
    """Flags or a round log that cannot make a series; the message is one sentence."""


def parse_duration(text: str, flag: str) -> float:
    """``90``, ``90s``, ``1.5m``, ``2h``, ``1d`` as seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ScheduleError(
            f"{flag} is seconds or a number with s, m, h or d (90, 30s, 5m, 1h), not {text!r}"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class Schedule:
    every: float  # seconds between slots
    jitter: float = 0.0  # each round starts a random delay in [0, jitter) after its slot
    rounds: int | None = None  # stop after this round of the series (None: until stopped)


def schedule(every: str, jitter: str | None, rounds: int | None) -> Schedule:
    """The schedule of ``--every``, ``--jitter``, ``--rounds``; ScheduleError otherwise."""
    seconds = parse_duration(every, "--every")
    if seconds < MIN_EVERY:
        raise ScheduleError(f"--every must be at least {MIN_EVERY:g} s, not {every!r}")
    spread = parse_duration(jitter, "--jitter") if jitter is not None else 0.0
    if spread >= seconds:
        raise ScheduleError(f"--jitter ({jitter}) must be shorter than --every ({every})")
    if rounds is not None and rounds < 1:
        raise ScheduleError(f"--rounds must be 1 or more, not {rounds}")
    return Schedule(seconds, spread, rounds)


def log_path(output: Path) -> Path:
    """The round log of the series measured into ``output``."""
    return output.with_name(output.name + LOG_SUFFIX)


def stamp(t: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class Start(msgspec.Struct, tag="start", frozen=True):
    round: int  # 1, 2, … over the whole series
    slot: int  # k: the round belongs to the slot anchor + k·every
    every: float
    anchor: str  # ISO 8601 UTC: slot 0
    planned: str  # slot time plus this round's jitter
    started: str
    offset: int  # the output's size before the round: the round's lines follow it


class End(msgspec.Struct, tag="end", frozen=True):
    round: int
    ended: str
    exit: int  # the child's exit code (didban run's: 0, 1, 130, …)
    written: int  # measurements the round appended
    stopped: bool  # ended by a stop signal


Record = Start | End
_DECODER: Final = msgspec.json.Decoder(Record)
_ENCODER: Final = msgspec.json.Encoder()


@dataclass(frozen=True)
class Series:
    """Where a series stands, from its round log."""

    anchor: float  # epoch seconds of slot 0
    every: float
    rounds: int  # rounds started so far
    last_slot: int  # -1: none yet
    unfinished: int | None  # a round started and never ended (the process died)

    def slot_time(self, k: int) -> float:
        return self.anchor + k * self.every


def next_slot(anchor: float, every: float, last_slot: int, now: float) -> int:
    """The first slot after ``last_slot`` whose time is not past at ``now``: the grid
    ``anchor + k·every`` never moves; slots that went by are skipped."""
    due = math.ceil((now - anchor) / every - 1e-9)
    return max(last_slot + 1, due)


def series_of(records: list[Record], every: float, now: float, output: Path) -> Series:
    """The series a round log describes, or a new one anchored at ``now`` (slot 0)."""
    starts = [r for r in records if isinstance(r, Start)]
    if not starts:
        return Series(now, every, 0, -1, None)
    first, last = starts[0], starts[-1]
    if abs(last.every - every) > 1e-6:
        raise ScheduleError(
            f"{output} is measured every {_seconds(last.every)} (its round log "
            f"{log_path(output).name}); continue it with --every {_seconds(last.every)}, "
            "or choose another --output"
        )
    ended = {r.round for r in records if isinstance(r, End)}
    unfinished = last.round if last.round not in ended else None
    return Series(epoch(first.anchor), every, last.round, last.slot, unfinished)


def _seconds(s: float) -> str:
    return f"{s:g}s"


class RoundLog:
    """The round log, open and locked for this process's lifetime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise ScheduleError(f"cannot open the round log {path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ScheduleError(
                f"another 'didban run --every' is measuring into this series (its round log "
                f"{path} is locked)"
            ) from None
        self.records = self._read()

    def _read(self) -> list[Record]:
        with open(self.path, "rb") as fh:
            lines = fh.read().splitlines()
        out: list[Record] = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(_DECODER.decode(line))
            except msgspec.DecodeError:
                if n == len(lines):  # a line torn by a crash: the round it began is unfinished
                    break
                os.close(self._fd)
                raise ScheduleError(
                    f"{self.path}:{n}: not a round log of 'didban run --every'; "
                    "move it away or choose another --output"
                ) from None
        return out

    def append(self, record: Record) -> None:
        os.write(self._fd, _ENCODER.encode(record) + b"\n")
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)  # releases the lock


class _Stopper:
    """Stop signals during a series: remembered, passed once to a running round, and an
    interruption of an upload."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.interruptible = False

    def __call__(self, signum: int, _frame: object) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        child = self.child
        if child is not None and child.poll() is None:
            if first:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)
        elif self.interruptible:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self) for s in _STOPS}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextlib.contextmanager
    def interruptible_section(self) -> Iterator[None]:
        self.interruptible = True
        try:
            if self.signum is not None:
                raise KeyboardInterrupt
            yield
        finally:
            self.interruptible = False

    def sleep_until(self, t: float) -> bool:
        """Wait until epoch ``t``; False when a stop signal came first."""
        while self.signum is None:
            left = t - time.time()
            if left <= 0:
                return True
            time.sleep(min(TICK, left))
        return False


class RoundError(RuntimeError):
    """No round can run (the child cannot start, the lab is gone)."""


@dataclass
class Round:
    """How to run one round: the child's command line and environment, and a check that
    says (one sentence) why no round can run any more (the lab is gone)."""

    command: Callable[[], tuple[list[str], dict[str, str]]]
    problem: Callable[[], str | None] = lambda: None


def _count_lines(path: Path, offset: int) -> int:
    """The lines after ``offset``: what a round appended."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            n = 0
            while chunk := fh.read(1 << 20):
                n += chunk.count(b"\n")
            return n
    except FileNotFoundError:
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


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
        return rounds.run(flush, pending_uploads)
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
        self.console = console
        self.log = log
        self.series = series
        self.rng = rng
        self.stopper = _Stopper()
        self.done = series.rounds
        self.last_slot = series.last_slot

    def run(self, flush: Callable[[], bool] | None, pending_uploads: Callable[[], bool]) -> int:
        say, series = self.console.print, self.series
        every = _seconds(self.plan.every)
        if series.rounds:
            note = (
                f"; round {series.unfinished} never ended (its finished measurements are kept)"
                if series.unfinished
                else ""
            )
            say(
                f"continuing the series of {self.output}: {series.rounds} round(s) so far, "
                f"every {every} since {stamp(series.anchor)}{note}"
            )
        else:
            say(f"measuring every {every} into {self.output} (round log {self.log.path})")
        worst, uploaded = 0, True
        with self.stopper.installed():
            try:
                if flush is not None and pending_uploads():
                    with self.stopper.interruptible_section():
                        uploaded = flush()
                while self.plan.rounds is None or self.done < self.plan.rounds:
                    code = self._next()
                    if code is None:  # stopped while waiting
                        break
                    worst = max(worst, 0 if code in (0, EXIT_INTERRUPTED) else 1)
                    if self.stopper.signum is not None:
                        break
                    if flush is not None:
                        with self.stopper.interruptible_section():
                            uploaded = flush()
            except KeyboardInterrupt:  # during an upload
                pass
            except RoundError as exc:
                say(f"[red]error:[/] {exc}")
                return 1
        this_run = self.done - series.rounds
        if self.stopper.signum is not None:
            kept = "; what was not uploaded stays queued for the next run" if flush else ""
            say(
                f"stopped after {this_run} round(s) ({self.done} in the series); every "
                f"finished measurement is in {self.output}{kept}"
            )
            return EXIT_INTERRUPTED
        say(f"{this_run} round(s) done ({self.done} in the series) into {self.output}")
        return worst or (0 if uploaded else 3)

    def _next(self) -> int | None:
        """Wait for the next slot and run a round there; its exit code, or None when a stop
        signal ended the wait."""
        now = time.time()
        series = self.series
        if self.done == 0:  # a new series: its first round is slot 0, now
            series = self.series = Series(now, series.every, 0, -1, None)
        slot = next_slot(series.anchor, self.plan.every, self.last_slot, now)
        if self.done > series.rounds and slot > self.last_slot + 1:
            self.console.print(
                f"round {self.done} overran its slot: the next round waits for slot {slot}"
            )
        planned = series.slot_time(slot)
        if self.plan.jitter:
            planned += self.rng.uniform(0, self.plan.jitter)
        if not self.stopper.sleep_until(planned):
            return None
        if problem := self.round.problem():
            raise RoundError(problem)
        self.done += 1
        self.last_slot = slot
        number = self.done
        offset = _size(self.output)
        self.log.append(
            Start(
                number,
                slot,
                series.every,
                stamp(series.anchor),
                stamp(planned),
                stamp(time.time()),
                offset,
            )
        )
        self.console.print(f"round {number} (slot {slot}, planned {stamp(planned)})")
        try:
            code = self._child()
        except RoundError:
            self.log.append(End(number, stamp(time.time()), 127, 0, False))
            raise
        written = _count_lines(self.output, offset)
        stopped = self.stopper.signum is not None
        self.log.append(End(number, stamp(time.time()), code, written, stopped))
        self.console.print(
            f"round {number} ended: {written} measurement(s) written, exit {code}"
            + (" (stopped)" if stopped else "")
        )
        return code

    def _child(self) -> int:
        cmd, env = self.round.command()
        stopper = self.stopper
        try:
            # its own process group: a Ctrl-C at the terminal reaches it once, through us
            child = subprocess.Popen(cmd, env=env, process_group=0)
        except OSError as exc:
            raise RoundError(f"the round could not start: {exc.strerror or exc}") from None
        stopper.child = child
        if stopper.signum is not None:  # a signal between the wait and the start
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(stopper.signum)
        try:
            code = child.wait()
        finally:
            stopper.child = None
        return 128 - code if code < 0 else code
