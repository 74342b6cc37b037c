"""``didban report``: the HTML report of a file of measurements, with the verdicts
``didban analyze`` gives (run-level rules included) or those of ``--verdicts``.

Exit codes as ``didban analyze`` (``didban.analysis.cli``): 0 report written (with no
verdict when the input holds no measurement: a note says so); 1 there were records and
none could be read; 2 bad usage (nothing written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.console import Console

from didban.analysis.batch import classify_paths
from didban.analysis.classify import TOO_DEEP
from didban.analysis.cli import (
    EXIT_NOTHING,
    NOTHING_FOUND,
    cannot_write,
    check_output,
    count,
    fail,
    note_skipped,
    nothing_found,
    say,
)
from didban.analysis.fingerprints import default
from didban.api import cli as api_cli
from didban.files.outputs import write_text_whole
from didban.files.pool import Counts
from didban.model.verdict import Verdict
from didban.store.cli import DATA_DIR_OPT, LAB_OPT
from didban.web import report
from didban.web.i18n import LANGS


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
                    raise fail(f"{path}:{n}: not a didban verdict: {exc}") from None
                key = _verdict_key(v.report_id, v.input, v.measurement_start_time, v.test_name)
                out.setdefault(key, []).append(v)
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from None
    return out


def _decode(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except UnicodeDecodeError:  # a body that is not UTF-8, which the rules skipped
        return msgspec.json.decode(data.decode("utf-8", "replace"))


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
    lang: str = typer.Option("en", "--lang", help="en or fa (Farsi, right to left)."),
    explorer: str | None = typer.Option(
        None,
        "--explorer",
        help="Base URL of a didban explorer serving these measurements "
        "(e.g. http://127.0.0.1:8080): each verdict then links to its page.",
    ),
) -> None:
    """Write a self-contained HTML report with the evidence behind every verdict.

    Malformed records are reported on stderr as FILE:LINE: REASON and skipped. Exit codes:
    0 report written (an input with no measurement at all gives a report of none, and a
    note says so); 1 there were records and none could be read; 2 bad usage (nothing
    written).
    """
    if not input_path.exists():
        raise fail(f"{input_path} does not exist")
    if lang not in LANGS:
        raise fail(f"--lang must be one of {', '.join(LANGS)}, not {lang!r}")
    if explorer is not None and not explorer.startswith(("http://", "https://")):
        raise fail(f"--explorer must be an http:// or https:// URL, not {explorer!r}")
    check_output(output_path, [input_path], (".html", ".htm"))
    if verdicts_path is not None and verdicts_path.suffix.lower() != ".jsonl":
        raise fail(
            f"--verdicts must be the .jsonl file 'didban analyze --output' writes, "
            f"not {verdicts_path.name!r}"
        )
    known = _load_verdicts(verdicts_path) if verdicts_path is not None else None
    afresh = 0
    items: list[report.Item] = []
    counts = Counts()
    # the verdicts analyze would give (the run-level rules included: a shutdown is judged
    # over the whole run), unless --verdicts has the one analyze wrote for a measurement
    for rec, fresh in classify_paths([input_path], say, counts, default()):
        try:
            doc = _decode(rec.data)  # classified: a JSON object
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
        except RecursionError:  # at the decoder's limit, which classifying just missed
            counts.records -= 1
            counts.refused += 1
            say(f"{rec.path}:{rec.line}: {TOO_DEEP}")
    malformed = counts.refused
    note_skipped([input_path])
    if nothing_found(counts):
        say(NOTHING_FOUND)
    elif not items:
        raise fail(
            f"no measurement could be read from {input_path} "
            f"({count(malformed, 'malformed record')})",
            EXIT_NOTHING,
        )
    if afresh:
        say(f"{count(afresh, 'measurement')} had no verdict in {verdicts_path}; classified afresh")
    html = report.render(items, lang=lang, explorer=explorer)
    try:
        write_text_whole(output_path, html)
    except OSError as exc:
        raise cannot_write(output_path, exc) from None
    Console().print(f"report with {count(len(items), 'verdict')} written to {output_path}")


def serve_cmd(
    listen: str = api_cli.LISTEN_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
    lab: Path | None = LAB_OPT,
    max_body: int = api_cli.MAX_BODY_OPT,
) -> None:
    """Run the API (OONI collector, measurements, aggregation, exports; /docs) and the
    explorer's pages (/, /country/IR, /fa/…)."""
    from didban.web.app import create_app

    api_cli.serve(listen, data_dir, lab, max_body, create_app, ", the explorer at /")


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("report")(report_cmd)
    app.command("serve")(serve_cmd)
