"""Lab accuracy: probe + analysis checked against every shipped profile's ground truth.

For each shipped profile (``didban.lab.profiles.available()``: clean, iran-2019-shutdown,
iran-2022, iran-protocol-filter, iran-strict-dpi, national-root-mitm; or the one given with
``--profile``): bring a lab up with the control helper, run ``didban run --lab`` on the
default test list (JSONL into a temporary directory), then on the profile's other http(s)
ground-truth targets (``--url``), on its app, STUN and HTTP/3 targets (``--test im --test
quic``) and on its circumvention targets (``--test circumvention``, which starts the lab's
Tor network and the other circumvention servers; ``--no-circumvention`` leaves them out),
check its ``dot://`` targets with ``didban dnscheck``, classify with ``didban analyze`` (so
batch rules apply), compare every verdict with the profile's ground truth, and bring the
lab down — also when a step fails. Prints, per profile, the mismatches; then,
over all profiles, the confusion matrix (rows: expected label — ``ok`` or the method;
columns: the verdict's label), accuracy, precision/recall per label and the number of false
``blocked`` on targets that should be ok.

Exit status: 0 when every profile was measured (mismatches are results, not errors), 1
when a lab, the probe or the analysis could not run, 2 on a bad flag or unknown profile.

    sudo .venv/bin/python bench/lab_accuracy.py [--profile P] [--concurrency N] [--keep DIR]
        [--no-circumvention]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from didban.lab import accuracy, profiles

SHIPPED = tuple(profiles.available())


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _mismatch_table(run: accuracy.ProfileRun) -> Table:
    t = Table(title=f"{run.profile.name}: mismatches", title_justify="left")
    for col in ("url", "expected", "verdict", "layer", "rule", "reason"):
        t.add_column(col, overflow="fold")
    for r in run.score.mismatches:
        exp = r.expected_label + (f" ({r.expected_layer})" if r.expected_layer else "")
        t.add_row(r.url, exp, r.got_label, r.layer or "-", r.rule_id or "-", r.reason[:90])
    return t


def _matrix_table(score: accuracy.Score) -> Table:
    m = score.matrix()
    cols = score.got_labels()
    t = Table(title="confusion matrix, all profiles (rows: expected; columns: verdict)")
    t.add_column("expected \\ verdict", no_wrap=True)
    for c in cols:
        t.add_column(c, justify="right", overflow="fold")
    for e in score.expected_labels():
        cells = []
        for c in cols:
            n = m[(e, c)]
            colour = "green" if e == c else "red"
            cells.append("." if n == 0 else f"[{colour}]{n}[/{colour}]")
        t.add_row(e, *cells)
    return t


def _per_label_table(score: accuracy.Score) -> Table:
    t = Table(title="precision / recall per label (a match needs state, method and layer)")
    for col in ("label", "expected", "verdicts", "correct", "precision", "recall"):
        t.add_column(col, justify="right" if col != "label" else "left")
    for s in score.per_label():
        t.add_row(
            s.label,
            str(s.expected),
            str(s.predicted),
            str(s.correct),
            _pct(s.precision),
            _pct(s.recall),
        )
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", action="append", help="profile to run (repeatable; default all)")
    ap.add_argument(
        "--concurrency",
        type=int,
        help="probe concurrency (default 8; 32 for iran-2019-shutdown, which only waits)",
    )
    ap.add_argument("--keep", type=Path, help="keep measurements and verdicts in this directory")
    ap.add_argument(
        "--no-circumvention",
        action="store_true",
        help="leave out the circumvention targets (the lab's Tor network never starts)",
    )
    args = ap.parse_args(argv)
    names = args.profile or list(SHIPPED)
    for n in names:
        try:
            profiles.load(n)
        except profiles.ProfileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.concurrency is not None and args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("error: the lab needs root (network namespaces, iptables)", file=sys.stderr)
        return 1
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    # Piped output gets room for the matrix (one column per label); a terminal keeps its own.
    console = Console() if Console().is_terminal else Console(width=200)
    runs: list[accuracy.ProfileRun] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="didban-accuracy-") as tmp:
        work = args.keep or Path(tmp)
        for n in names:
            try:
                run = accuracy.run_profile(
                    n,
                    work,
                    concurrency=args.concurrency,
                    circumvention=not args.no_circumvention,
                )
            except accuracy.SetupError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            runs.append(run)
            s = run.score
            secs = ", ".join(f"{k} {v:.1f} s" for k, v in run.seconds.items())
            console.print(
                f"\n[bold]{n}[/bold]: {s.correct}/{s.total} targets right "
                f"({_pct(s.accuracy)}), {len(s.false_blocked)} false 'blocked' "
                f"[dim]({secs}; probe exit {run.probe_exit})[/dim]"
            )
            if s.mismatches:
                console.print(_mismatch_table(run))
            if run.not_measured:
                console.print(f"  ground truth no experiment takes: {', '.join(run.not_measured)}")
            if run.skipped:
                console.print(f"  left out (--no-circumvention): {len(run.skipped)} targets")
    total = accuracy.Score([r for run in runs for r in run.rows])
    console.print()
    console.print(_matrix_table(total))
    console.print(_per_label_table(total))
    per = "; ".join(f"{r.profile.name} {r.score.correct}/{r.score.total}" for r in runs)
    console.print(
        f"\naccuracy: {total.correct}/{total.total} = {_pct(total.accuracy)} ({per})\n"
        f"false 'blocked' on targets that should be ok: {len(total.false_blocked)}"
        + "".join(f"\n  {r.url} -> {r.got_label} ({r.rule_id})" for r in total.false_blocked)
        + f"\ntook {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
