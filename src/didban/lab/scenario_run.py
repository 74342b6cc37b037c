"""Running a lab scenario: switch profiles at their offsets, write the ground-truth timeline.

``run`` brings a lab up with the first switch's profile (or, when a lab is already up,
switches that one to it and leaves it up afterwards), then applies each later switch at its
offset from the start (``runtime.switch``: the censor has reloaded when it returns), and
ends at the scenario's duration. Each switch is appended to ``ground-truth.jsonl`` as soon
as it is applied (a whole line, flushed and fsynced: an interrupted run leaves a valid
timeline), with the moments it was requested and applied and the per-target expectations
of its profile; an ``end`` record closes the file — ``completed: false`` after Ctrl-C,
SIGTERM or a failure. ``scenario.log`` beside it says what happened when.

Measuring during the scenario is a hook, not built in: ``ProbeHook`` is a command run in
the root namespace (``didban run --lab`` enters the lab itself; wrap other tools in
``didban lab exec --``), either once for the whole scenario (a prober that measures in
rounds by itself) or once per round every ``every`` seconds, each round after the previous
one ended. ``{dir}`` and ``{round}`` in its words are replaced by the output directory and
the round number; its output goes to ``probe.log``. Whatever it started is stopped (its
process group: SIGTERM, then SIGKILL) when the scenario ends, and a lab the scenario brought
up is always brought down, also on an interrupt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

from didban.lab import runtime
from didban.lab.scenario import Scenario, Step
from didban.model.scenario import End, Switch, encode

TIMELINE: Final = "ground-truth.jsonl"
LOG: Final = "scenario.log"
PROBE_LOG: Final = "probe.log"
STOP_GRACE: Final = 5.0
TICK: Final = 0.2


@dataclass(frozen=True)
class ProbeHook:
    argv: tuple[str, ...]  # words, with {dir} and {round} placeholders
    every: float | None = None  # None: one run for the whole scenario

    def command(self, out_dir: Path, round_no: int) -> list[str]:
        return [
            w.replace("{dir}", str(out_dir)).replace("{round}", str(round_no)) for w in self.argv
        ]


@dataclass
class Outcome:
    completed: bool
    switches: int
    rounds: int
    brought_up: bool


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class _Probe:
    """The hook's processes, one at a time, each in its own process group."""

    def __init__(self, hook: ProbeHook, out_dir: Path, env: dict[str, str], log: IO[bytes]):
        self.hook = hook
        self.out_dir = out_dir
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.rounds = 0
        self.next_at = 0.0  # seconds after the start

    def start(self, elapsed: float, say: Callable[[str], None]) -> None:
        self.rounds += 1
        argv = self.hook.command(self.out_dir, self.rounds)
        self.log.write(f"--- round {self.rounds} at +{elapsed:.1f} s: {' '.join(argv)}\n".encode())
        self.log.flush()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:
            raise runtime.LabError(f"the probe command failed to start: {exc}") from None
        say(f"round {self.rounds} started (pid {self.proc.pid})")

    def poll(self, say: Callable[[str], None]) -> bool:
        """True while a process runs; says how a finished one ended."""
        if self.proc is None:
            return False
        code = self.proc.poll()
        if code is None:
            return True
        say(f"round {self.rounds} exited with {code}")
        self.proc = None
        return False

    def stop(self, say: Callable[[str], None]) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        say(f"round {self.rounds} stopped")


class _Timeline:
    def __init__(self, out_dir: Path) -> None:
        self.fh = (out_dir / TIMELINE).open("xb")
        self.log = (out_dir / LOG).open("a", encoding="utf-8")

    def record(self, line: bytes) -> None:
        self.fh.write(line + b"\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()
        self.log.close()


def run(
    scenario: Scenario,
    out_dir: Path,
    *,
    probe: ProbeHook | None = None,
    control: bool = True,
    echo: Callable[[str], None] = print,
) -> Outcome:
    """Run ``scenario`` writing into ``out_dir`` (created; must not hold a run already).
    KeyboardInterrupt (Ctrl-C; the CLI maps SIGTERM and SIGHUP to it) ends it early: the
    timeline is closed and the lab brought down before it propagates."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    timeline = _Timeline(out_dir)
    start = time.monotonic()
    first = scenario.steps[0]

    def say(message: str) -> None:
        line = f"{_stamp(_now())} +{time.monotonic() - start:7.1f} s  {message}"
        timeline.log.write(line + "\n")
        timeline.log.flush()
        echo(line)

    live = runtime.current()
    brought_up = live is None or not runtime.lab_exists(live)
    state_dir: Path | None = None if brought_up else live
    probe_runner: _Probe | None = None
    probe_log: IO[bytes] | None = None
    switches = 0
    reason = "interrupted"
    completed = False
    try:
        requested = _now()
        if brought_up:
            say(f"scenario '{scenario.name}': bringing a lab up with '{first.name}'")
            desc = runtime.up(first.profile, control=control)
            state_dir = Path(desc.state_dir)
        else:
            say(f"scenario '{scenario.name}': using the running lab {live}")
            runtime.switch(first.profile, live)
        assert state_dir is not None
        applied = _now()
        start = time.monotonic()  # offsets count from the moment the first profile is on
        timeline.record(encode(_switch(0, first, requested, applied)))
        switches = 1
        say(f"switch 0: '{first.name}' on (lab {state_dir.name})")
        if probe is not None:
            env = {**os.environ, "DIDBAN_LAB": str(state_dir / "lab.json")}
            probe_log = (out_dir / PROBE_LOG).open("ab")
            probe_runner = _Probe(probe, out_dir, env, probe_log)
        every = probe.every if probe is not None else None
        pending = list(scenario.steps[1:])
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= scenario.duration:
                break
            if pending and elapsed >= pending[0].at:
                step = pending.pop(0)
                requested = _now()
                runtime.switch(step.profile, state_dir)
                applied = _now()
                timeline.record(encode(_switch(switches, step, requested, applied)))
                took = (applied - requested).total_seconds()
                say(f"switch {switches}: '{step.name}' on (planned +{step.at:g} s, {took:.2f} s)")
                switches += 1
                continue
            if probe_runner is not None:
                running = probe_runner.poll(say)
                due = probe_runner.rounds == 0 or (
                    every is not None and elapsed >= probe_runner.next_at
                )
                if not running and due:
                    probe_runner.start(elapsed, say)
                    if every is not None:
                        probe_runner.next_at += every
                        while probe_runner.next_at <= elapsed:  # a round overran: skip slots
                            probe_runner.next_at += every
            wake = [scenario.duration] + ([pending[0].at] if pending else [])
            time.sleep(max(0.0, min(TICK, min(wake) - elapsed)))
        completed, reason = True, "duration reached"
    except runtime.LabError as exc:
        reason = f"failed: {exc}"
        raise
    finally:
        with runtime.stop_signals_held():
            if probe_runner is not None:
                probe_runner.poll(say)
                probe_runner.stop(say)
            if probe_log is not None:
                probe_log.close()
            elapsed = time.monotonic() - start
            timeline.record(encode(End(round(elapsed, 3), _stamp(_now()), completed, reason)))
            say(f"end: {reason}")
            if brought_up and state_dir is not None:
                with contextlib.suppress(runtime.LabError):
                    runtime.down(state_dir)
                say(f"lab {state_dir.name} brought down")
            timeline.close()
    return Outcome(completed, switches, probe_runner.rounds if probe_runner else 0, brought_up)


def _switch(index: int, step: Step, requested: datetime, applied: datetime) -> Switch:
    return Switch(
        index, step.name, step.at, _stamp(requested), _stamp(applied), list(step.expected)
    )
