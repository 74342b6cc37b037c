"""``didban demo``: the Iran lab measured end to end.

Brings a lab up with a profile (default ``iran-2022``), runs the probe on the default test
list inside the lab's client namespace, classifies every measurement, prints the verdict
table next to the profile's ground truth, writes a self-contained HTML report, and brings the
lab down again — also when a step fails or the user interrupts.

Each step runs the same ``didban`` command a user would type, as a subprocess, so the demo
exercises exactly the documented paths and never imports the lab.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import typer

from didban.net import guard


def _didban(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "didban.cli", *args]
    typer.secho(f"$ didban {' '.join(args)}", fg=typer.colors.CYAN, err=True)
    result = subprocess.run(cmd, check=False)
    if check and result.returncode != 0:
        raise typer.Exit(result.returncode)
    return result


def demo(
    profile: str = typer.Option("iran-2022", "--profile", help="Lab profile to measure."),
    out_dir: Path = typer.Option(
        Path("out"), "--out-dir", help="Where measurements, verdicts and the report go."
    ),
    concurrency: int = typer.Option(16, "--concurrency", help="Probe concurrency."),
) -> None:
    """Measure the Iran lab end to end: lab up, probe, analyse, report, lab down."""
    if os.geteuid() != 0:
        typer.echo("didban demo needs root: the censorship lab uses network namespaces.", err=True)
        raise typer.Exit(2)
    os.environ[guard.ENV_VAR] = "1"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    measurements = out_dir / f"demo-{profile}-{stamp}.jsonl"
    verdicts = out_dir / f"demo-{profile}-{stamp}.verdicts.jsonl"
    report = out_dir / "report.html"
    started = time.monotonic()
    _didban("lab", "up", "--profile", profile)
    try:
        _didban(
            "run",
            "--lab",
            "--accept-risk",
            "--concurrency",
            str(concurrency),
            "--output",
            str(measurements),
        )
        _didban("analyze", str(measurements), "--output", str(verdicts))
        _didban(
            "report",
            "--input",
            str(measurements),
            "--verdicts",
            str(verdicts),
            "--output",
            str(report),
        )
    finally:
        _didban("lab", "down", check=False)
    elapsed = time.monotonic() - started
    disagreements = print_truth_table(verdicts, profile)
    typer.echo(
        f"\nmeasurements: {measurements}\nverdicts:     {verdicts}\n"
        f"report:       {report}\ntook {elapsed:.1f} s"
    )
    if disagreements:
        typer.secho(
            f"{disagreements} verdict(s) disagree with the {profile} ground truth.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)


def print_truth_table(verdicts_file: Path, profile_name: str) -> int:
    """Print each verdict beside the profile's ground truth; return how many disagree."""
    import msgspec
    from rich.console import Console
    from rich.table import Table

    from didban.lab import accuracy, profiles

    profile = profiles.load(profile_name)
    with verdicts_file.open("rb") as f:
        verdicts = [msgspec.json.decode(line) for line in f if line.strip()]
    rows = accuracy.compare(verdicts, profile)
    table = Table(title=f"didban verdicts — lab profile {profile.name}")
    for col in ("service", "url", "state", "layer", "method", "confirmed", "truth", ""):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.service or "-",
            r.url,
            r.state,
            r.layer or "-",
            r.method or "-",
            "yes" if r.confirmed else "no",
            r.expected_label,
            "[green]✓[/green]" if r.match else "[red]✗[/red]",
        )
    console = Console()
    console.print(table)
    bad = sum(not r.match for r in rows)
    blocked = [r for r in rows if r.expected_outcome == "blocked"]
    console.print(
        f"{len(rows) - bad}/{len(rows)} verdicts match the ground truth; "
        f"{sum(r.match for r in blocked)}/{len(blocked)} blocked targets with the right method; "
        f"{sum(r.state == 'blocked' for r in rows if r.expected_outcome == 'ok')} "
        "false 'blocked' on targets that should be ok."
    )
    return bad


def register(app: typer.Typer) -> None:
    """Add ``didban demo`` to ``app``."""
    app.command("demo")(demo)
