"""Commands of ``didban.analysis``: ``didban analyze`` and ``didban report``.

Exit codes (both commands):
  0  at least one measurement was classified (malformed records, if any, were reported
     on stderr as ``file:line: reason`` and skipped);
  1  nothing could be classified (every record malformed, or no measurement found);
  2  bad usage: a path that does not exist, an unsupported --output suffix, an unreadable
     --verdicts file. Nothing is written in that case.
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import msgspec
import typer
from rich.console import Console

from didban.analysis import batch, output, report
from didban.analysis.fingerprints import default
from didban.files import kinds, pool
from didban.model.verdict import Verdict

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_USAGE = 2
EXIT_WORKER = 3


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


def _count(n: int, noun: str) -> str:
    """``1 verdict``, ``2 verdicts``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def _check_output(output_path: Path, inputs: list[Path], suffixes: tuple[str, ...]) -> None:
    """Refuse, in one sentence, an --output that cannot be written or would destroy an input."""
    if output_path.suffix.lower() not in suffixes:
        raise _fail(f"--output must end in {' or '.join(suffixes)}, not {output_path.name!r}")
    if output_path.is_dir():
        raise _fail(f"--output {output_path} is a directory; give a file name")
    if not output_path.parent.is_dir():
        raise _fail(f"the directory of --output, {output_path.parent}, does not exist")
    target = output_path.resolve()
    for p in inputs:
        if p.is_dir() and target.is_relative_to(p.resolve()):
            # it would replace a measurement file there, or be read as input next time
            raise _fail(
                f"--output {output_path} is inside the input directory {p}; write it elsewhere"
            )
        try:
            same = output_path.exists() and p.is_file() and p.samefile(output_path)
        except OSError:
            same = False
        if same:
            raise _fail(f"--output {output_path} is one of the inputs; it would be overwritten")


def _cannot_write(output_path: Path, exc: OSError) -> typer.Exit:
    return _fail(f"cannot write --output {output_path}: {exc.strerror or exc}")


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
    0 at least one measurement classified; 1 none could be; 2 bad usage (nothing written);
    3 a worker process died (nothing written).
    """
    if jobs < 0:
        raise _fail(f"--jobs must be 0 (one per CPU) or more, not {jobs}")
    for p in paths:
        if not p.exists():
            raise _fail(f"{p} does not exist")
    writer: output.Writer | None = None
    if output_path is not None:
        _check_output(output_path, paths, output.OUTPUT_SUFFIXES)
        try:
            writer = output.open_writer(output_path)
        except OSError as exc:
            raise _cannot_write(output_path, exc) from None
    counts = pool.Counts()
    summary = output.Summary()
    # SIGTERM (timeout, a service manager) unwinds like Ctrl-C: no half-written output, and
    # the worker processes are stopped
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main else None
    try:
        jobs = pool.jobs_for(paths, jobs)
        for _, verdict in batch.classify_paths(paths, _err, counts, jobs=jobs):
            summary.add(verdict)
            if writer is not None:
                writer.write(verdict)
    except BrokenProcessPool:
        if writer is not None:
            writer.abort()
        raise _fail(
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
    skipped = kinds.skipped_files(paths)
    if skipped:
        what = (
            "is not a measurement file and was"
            if len(skipped) == 1
            else "are not measurement files and were"
        )
        _err(
            f"note: {_count(len(skipped), 'file')} in the given directories {what} skipped "
            f"(e.g. {skipped[0]})"
        )
    if counts.records == 0:
        if writer is not None:
            writer.abort()
        raise _fail(
            f"no measurement could be classified ({_count(counts.refused, 'malformed record')}, "
            f"{_count(counts.unreadable_files, 'unreadable file')})",
            EXIT_NOTHING,
        )
    if writer is not None:
        try:
            writer.close()
        except OSError as exc:
            writer.abort()
            raise _cannot_write(output_path or Path(), exc) from None
    if not quiet:
        console = Console()
        console.print(summary.table(f"{_count(counts.records, 'measurement')} classified"))
        if counts.refused or counts.unreadable_files:
            console.print(
                f"skipped: {_count(counts.refused, 'malformed record')}, "
                f"{_count(counts.unreadable_files, 'unreadable file')} (see stderr)"
            )
        if output_path is not None:
            console.print(f"verdicts written to {output_path}")


def _verdict_key(
    report_id: object, input_: object, start: object, test: object
) -> tuple[str, str, str, str]:
    return (str(report_id or ""), str(input_ or ""), str(start or ""), str(test or ""))


def _load_verdicts(path: Path) -> dict[tuple[str, str, str, str], list[Verdict]]:
    dec = msgspec.json.Decoder(Verdict)
    out: dict[tuple[str, str, str, str], list[Verdict]] = {}
    try:
        with path.open("rb") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    v = dec.decode(line)
                except msgspec.DecodeError as exc:
                    raise _fail(f"{path}:{n}: not a didban verdict: {exc}") from None
                key = _verdict_key(v.report_id, v.input, v.measurement_start_time, v.test_name)
                out.setdefault(key, []).append(v)
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror or exc}") from None
    return out


def report_cmd(
    input_path: Path = typer.Option(
        ..., "--input", "-i", help="Measurements (JSONL/JSON, .gz/.zst, or a directory)."
    ),
    verdicts_path: Path | None = typer.Option(
        None,
        "--verdicts",
        help="Verdicts from 'didban analyze' (JSONL); classified afresh when absent.",
    ),
    output_path: Path = typer.Option(..., "--output", "-o", help="The HTML file to write."),
) -> None:
    """Write a self-contained HTML report with the evidence behind every verdict.

    Exit codes: 0 report written; 1 no measurement could be read; 2 bad usage.
    """
    if not input_path.exists():
        raise _fail(f"{input_path} does not exist")
    _check_output(output_path, [input_path], (".html", ".htm"))
    if verdicts_path is not None and verdicts_path.suffix.lower() != ".jsonl":
        raise _fail(
            f"--verdicts must be the .jsonl file 'didban analyze --output' writes, "
            f"not {verdicts_path.name!r}"
        )
    known = _load_verdicts(verdicts_path) if verdicts_path is not None else None
    afresh = 0
    items: list[report.Item] = []
    counts = pool.Counts()
    # the verdicts analyze would give (the run-level rules included: a shutdown is judged
    # over the whole run), unless --verdicts has the one analyze wrote for a measurement
    for rec, fresh in batch.classify_paths([input_path], _err, counts, default()):
        try:
            doc = msgspec.json.decode(rec.data)  # classified: a JSON object
        except UnicodeDecodeError:  # a body that is not UTF-8, which the rules skipped
            doc = msgspec.json.decode(rec.data.decode("utf-8", "replace"))
        verdict = fresh
        if known is not None:
            key = _verdict_key(
                doc.get("report_id"),
                doc.get("input"),
                doc.get("measurement_start_time"),
                doc.get("test_name"),
            )
            found = known.get(key)
            if found:
                verdict = found.pop(0)
            else:
                afresh += 1
        items.append(report.item(verdict, doc))
    malformed = counts.refused
    if not items:
        raise _fail(
            f"no measurement could be read from {input_path} "
            f"({_count(malformed, 'malformed record')})",
            EXIT_NOTHING,
        )
    if afresh:
        _err(
            f"{_count(afresh, 'measurement')} had no verdict in {verdicts_path}; classified afresh"
        )
    html = report.render(items)
    tmp = output_path.with_name(f".{output_path.name}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(output_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _cannot_write(output_path, exc) from None
    Console().print(f"report with {_count(len(items), 'verdict')} written to {output_path}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("analyze")(analyze)
    app.command("report")(report_cmd)
