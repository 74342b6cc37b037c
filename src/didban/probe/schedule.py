"""The schedule of ``didban run --every``: durations, the slot grid, and the round log.

Slot ``k`` of a series starts at ``anchor + k·every``; the grid never moves (a round that
starts late, or a restart a day later, lands on it). The round log, ``<output>.rounds``,
is the series' memory — JSON lines, each appended with one write and fsynced:

* ``start``: ``round`` (1, 2, … over the whole series), ``slot``, ``every``, ``anchor``
  (slot 0), ``planned`` (the slot's time plus the round's jitter), ``started``;
* ``end``: ``round``, ``ended``, ``exit`` (the round's exit code; null when the round never
  ended and a restart kept what it had measured), ``written`` (its measurements),
  ``offset`` (where its lines begin in the output), ``stopped`` (by a stop signal).

Pure data and file handling; ``didban.probe.rounds`` runs the rounds.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

LOG_SUFFIX: Final = ".rounds"
MIN_EVERY: Final = 1.0
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


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
    overlap: int = 1  # rounds running at once at most (1: a busy slot is skipped)


def schedule(every: str, jitter: str | None, rounds: int | None, overlap: int = 1) -> Schedule:
    """The schedule of ``--every``, ``--jitter``, ``--rounds``, ``--overlap``."""
    seconds = parse_duration(every, "--every")
    if seconds < MIN_EVERY:
        raise ScheduleError(f"--every must be at least {MIN_EVERY:g} s, not {every!r}")
    spread = parse_duration(jitter, "--jitter") if jitter is not None else 0.0
    if spread >= seconds:
        raise ScheduleError(f"--jitter ({jitter}) must be shorter than --every ({every})")
    if rounds is not None and rounds < 1:
        raise ScheduleError(f"--rounds must be 1 or more, not {rounds}")
    if not 1 <= overlap <= 64:
        raise ScheduleError(f"--overlap must be between 1 and 64, not {overlap}")
    return Schedule(seconds, spread, rounds, overlap)


def seconds(s: float) -> str:
    return f"{s:g}s"


def log_path(output: Path) -> Path:
    """The round log of the series measured into ``output``."""
    return output.with_name(output.name + LOG_SUFFIX)


def part_path(output: Path, number: int) -> Path:
    """Where round ``number`` writes until it ends (then it is appended to ``output``)."""
    return output.with_name(f"{output.name}.round-{number}")


def stamp(t: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class Start(msgspec.Struct, tag="start", frozen=True):
    round: int
    slot: int
    every: float
    anchor: str
    planned: str
    started: str


class End(msgspec.Struct, tag="end", frozen=True):
    round: int
    ended: str
    exit: int | None  # None: the round never ended; a restart kept what it had measured
    written: int
    offset: int
    stopped: bool


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
    unfinished: tuple[int, ...]  # rounds started and never ended (the process died)

    def slot_time(self, k: int) -> float:
        return self.anchor + k * self.every


def next_slot(anchor: float, every: float, last_slot: int, now: float) -> int:
    """The first slot after ``last_slot`` whose time is not past at ``now``: slots that
    went by are skipped; the grid never moves."""
    due = math.ceil((now - anchor) / every - 1e-9)
    return max(last_slot + 1, due)


def series_of(records: list[Record], every: float, now: float, output: Path) -> Series:
    """The series a round log describes, or a new one anchored at ``now`` (slot 0)."""
    starts = [r for r in records if isinstance(r, Start)]
    if not starts:
        return Series(now, every, 0, -1, ())
    first, last = starts[0], starts[-1]
    if abs(last.every - every) > 1e-6:
        raise ScheduleError(
            f"{output} is measured every {seconds(last.every)} (its round log "
            f"{log_path(output).name}); continue it with --every {seconds(last.every)}, "
            "or choose another --output"
        )
    ended = {r.round for r in records if isinstance(r, End)}
    unfinished = tuple(r.round for r in starts if r.round not in ended)
    return Series(epoch(first.anchor), every, last.round, last.slot, unfinished)


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
        try:
            self.records = self._read()
        except ScheduleError:
            os.close(self._fd)
            raise

    def _read(self) -> list[Record]:
        with open(self.path, "rb") as fh:
            data = fh.read()
        whole = data.rfind(b"\n") + 1
        out: list[Record] = []
        for n, line in enumerate(data[:whole].splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(_DECODER.decode(line))
            except msgspec.DecodeError:
                raise ScheduleError(
                    f"{self.path}:{n}: not a round log of 'didban run --every'; "
                    "move it away or choose another --output"
                ) from None
        if whole < len(data):  # a line torn by a crash: cut it, so the next one starts clean
            os.ftruncate(self._fd, whole)
        return out

    def append(self, record: Record) -> None:
        os.write(self._fd, _ENCODER.encode(record) + b"\n")
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)  # releases the lock
