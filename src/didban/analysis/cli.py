"""The command of ``didban.analysis``: ``didban analyze``; and what it shares with
``didban report`` (``didban.web.cli``): its exit codes and its way of failing.

Exit codes (both commands, and ``didban ingest``):
  0  at least one measurement was classified (malformed records, if any, were reported
     on stderr as ``file:line: reason`` and skipped), or the input holds no record at all
     (empty files, directories without measurement files): a note says so and the output
     is written empty;
  1  there were records (or files) and none could be classified (every record malformed,
     every file unreadable);
  2  bad usage: a path that does not exist, an unsupported --output suffix, an unreadable
     --verdicts file. Nothing is written in that case;
  3  (analyze) a worker process died. Nothing is written.
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import typer
from rich.console import Console

from didban.analysis import batch, output
from didban.files import kinds, pool
from didban.files.outputs import output_problem
from didban.files.tables import print_table

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_USAGE = 2
EXIT_WORKER = 3


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """``error: message`` on stderr, and the exit to raise."""
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


def count(n: int, noun: str) -> str:
    """``1 verdict``, ``2 verdicts``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def say(line: str) -> None:
    """One line on stderr (a malformed record, a note)."""
    sys.stderr.write(line + "\n")


def note_skipped(paths: list[Path]) -> None:
    """A note on stderr naming the files in the given directories that are not measurement
    files (passed over by name), if any."""
    skipped = kinds.skipped_files(paths)
    if skipped:
        what = (
            "is not a measurement file and was"
            if len(skipped) == 1
            else "are not measurement files and were"
        )
        say(
            f"note: {count(len(skipped), 'file')} in the given directories {what} skipped "
            f"(e.g. {skipped[0]})"
        )


NOTHING_FOUND = (
    "note: the input holds no measurement (empty files, or no measurement files in the "
    "given directories)"
)


def nothing_found(counts: pool.Counts) -> bool:
    """Whether the input held no record at all (not one malformed or unreadable either):
    not an error, said with ``NOTHING_FOUND``."""
    return counts.records == 0 and counts.refused == 0 and counts.unreadable_files == 0


def check_output(output_path: Path, inputs: list[Path], suffixes: tuple[str, ...]) -> None:
    """Refuse, in one sentence, an --output that cannot be written or would destroy an input."""
    problem = output_problem(output_path, inputs, suffixes)
    if problem is not None:
        raise fail(problem)


def cannot_write(output_path: Path, exc: OSError) -> typer.Exit:
    return fail(f"cannot write --output {output_path}: {exc.strerror or exc}")


def analyze(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="PATH",
        help="Measurement files (.jsonl/.json, optionally .gz/.zst) or directories.",
    ),
    output_path: Path | None = typer.Option(
        None, "--output", "-o", help="Write verdicts to FILE.jsonl or FILE.parquet."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the summary table."),
    jobs: int = typer.Option(
        0,
        "--jobs",
        "-j",
        help="Processes classifying in parallel, at most one per usable CPU (the affinity "
        "mask, capped by a cgroup CPU quota); 0 (default): one per usable CPU; 1: none.",
    ),
) -> None:
    """Classify OONI-format measurements: one verdict each, and a summary per service.

    Malformed records are reported on stderr as FILE:LINE: REASON and skipped. Exit codes:
    0 at least one measurement classified, or the input holds none (empty files: a note
    says so, and --output is written empty); 1 there were records and none could be
    classified; 2 bad usage (nothing written); 3 a worker process died (nothing written).
    """
    if jobs < 0:
        raise fail(f"--jobs must be 0 (one per CPU) or more, not {jobs}")
    for p in paths:
        if not p.exists():
            raise fail(f"{p} does not exist")
    writer: output.Writer | None = None
    if output_path is not None:
        check_output(output_path, paths, output.OUTPUT_SUFFIXES)
        try:
            writer = output.open_writer(output_path)
        except OSError as exc:
            raise cannot_write(output_path, exc) from None
    counts = pool.Counts()
    summary = output.Summary()
    # SIGTERM (timeout, a service manager) unwinds like Ctrl-C: no half-written output, and
    # the worker processes are stopped
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main else None
    try:
        jobs = pool.jobs_for(paths, jobs)
        for _, verdict in batch.classify_paths(paths, say, counts, jobs=jobs):
            summary.add(verdict)
            if writer is not None:
                writer.write(verdict)
    except BrokenProcessPool:
        if writer is not None:
            writer.abort()
        raise fail(
            "a worker process died (out of memory, or killed); nothing was written; "
            "--jobs 1 classifies in this process",
            EXIT_WORKER,
        ) from None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    note_skipped(paths)
    empty = nothing_found(counts)
    if empty:
        say(NOTHING_FOUND)
    elif counts.records == 0:
        if writer is not None:
            writer.abort()
        raise fail(
            f"no measurement could be classified ({count(counts.refused, 'malformed record')}, "
            f"{count(counts.unreadable_files, 'unreadable file')})",
            EXIT_NOTHING,
        )
    if writer is not None:
        try:
            writer.close()
        except OSError as exc:
            writer.abort()
            raise cannot_write(output_path or Path(), exc) from None
    if not quiet:
        console = Console()
        if not empty:
            print_table(
                console, summary.table(f"{count(counts.records, 'measurement')} classified")
            )
        if counts.refused or counts.unreadable_files:
            console.print(
                f"skipped: {count(counts.refused, 'malformed record')}, "
                f"{count(counts.unreadable_files, 'unreadable file')} (see stderr)"
            )
        if output_path is not None:
            console.print(f"verdicts written to {output_path}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("analyze")(analyze)
