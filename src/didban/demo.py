"""``didban demo``: the Iran lab measured end to end.

Brings a lab up with a profile (default ``iran-2022``), runs the probe on the default test
list inside the lab's client namespace, classifies every measurement, prints the verdict
table next to the profile's ground truth, writes a self-contained HTML report, and brings
the lab down again — on every path: success, a failed step, Ctrl-C or SIGTERM. Then (unless
``--no-over-time``) a short lab scenario measured in rounds, its events detected and drawn
on the timeline (``didban.demo_scenario``).

The lab is the demo's own: it is brought up in-process (``lab.runtime.up``, not made the
current lab, so a lab the user already has up is left alone) and removed by its state
directory. Probe, analysis and report run as the ``didban`` commands a user would type
(``run --lab``, ``analyze``, ``report``), as subprocesses pointed at the demo's lab with
``$DIDBAN_LAB``, so the demo exercises exactly the documented paths.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from didban.files.tables import print_table
from didban.net import guard

EXIT_INTERRUPTED = 130
# How long a step may take to finish by itself after Ctrl-C before it is killed.
STOP_GRACE_S = 15.0


class _Terminated(Exception):
    """SIGTERM arrived: unwind (and bring the lab down) like Ctrl-C."""


def _console() -> Console:
    # Piped output (e.g. `make demo | tee`): lines are not cut at 80 columns (the verdict
    # table is printed as plain rows there, files.tables)
    c = Console()
    return c if c.is_terminal else Console(width=160)


def _child_env(lab_json: str) -> dict[str, str]:
    env = {**os.environ, "DIDBAN_LAB": lab_json, guard.ENV_VAR: "1"}
    if not sys.stdout.isatty():
        env.setdefault("COLUMNS", "160")
    return env


def _step(args: list[str], env: dict[str, str]) -> int:
    """Run ``didban ARGS`` and return its exit code.

    The step runs in its own process group. On Ctrl-C/SIGTERM the group gets one SIGINT
    (``run --lab`` re-executes itself inside the lab in a process group of its own and
    passes the signal on to it), is given STOP_GRACE_S to stop by itself (the probe keeps
    every finished measurement), is killed otherwise, and the interruption is re-raised so
    the caller brings the lab down (which also ends a measuring process left inside it)."""
    typer.secho(f"$ didban {' '.join(args)}", fg=typer.colors.CYAN, err=True)
    proc = subprocess.Popen([sys.executable, "-m", "didban.cli", *args], env=env, process_group=0)
    try:
        return proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    def on_term(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while the lab is being removed, so a second Ctrl-C cannot
    leave namespaces behind."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def demo(
    profile: str = typer.Option("iran-2022", "--profile", help="Lab profile to measure."),
    out_dir: Path = typer.Option(
        Path("out"), "--out-dir", help="Where measurements, verdicts and the report go."
    ),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="Probe concurrency."),
    over_time: bool = typer.Option(
        True,
        "--over-time/--no-over-time",
        help="Then a short scenario (clean, iran-2022, clean) measured in rounds, its events "
        "detected, drawn on the timeline and scored against the switches (about 2.5 min).",
    ),
    serve: bool = typer.Option(
        False, "--serve", help="Then serve the explorer over the demo's data until Ctrl-C."
    ),
    listen: str = typer.Option("127.0.0.1:8080", "--listen", help="Where --serve listens."),
) -> None:
    """Measure the Iran lab end to end: lab up, probe, analyse, report, lab down."""
    from didban.lab import profiles, runtime

    if os.geteuid() != 0:
        typer.echo("didban demo needs root: the censorship lab uses network namespaces.", err=True)
        raise typer.Exit(2)
    try:
        truth = profiles.load(profile)
    except profiles.ProfileError as exc:
        typer.echo(f"didban demo: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        typer.echo(f"didban demo: cannot create {out_dir}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    os.environ[guard.ENV_VAR] = "1"
    out_dir = out_dir.resolve()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    measurements = out_dir / f"demo-{truth.name}-{stamp}.jsonl"
    verdicts = out_dir / f"demo-{truth.name}-{stamp}.verdicts.jsonl"
    report = out_dir / "report.html"
    data_dir = out_dir / "didban-data"  # the explorer's store of every demo run
    started = time.monotonic()
    failed: str | None = None
    with _sigterm_unwinds():
        typer.secho(f"$ didban lab up --profile {truth.name}", fg=typer.colors.CYAN, err=True)
        try:
            desc = runtime.up(profile, control=True, make_current=False)
        except runtime.LabError as exc:
            typer.echo(f"didban demo: {exc}", err=True)
            raise typer.Exit(1) from None
        except (KeyboardInterrupt, _Terminated):
            # runtime.up removed whatever it had built before re-raising.
            typer.echo("didban demo: interrupted while the lab came up; nothing left.", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        typer.echo(f"lab {desc.prefix} up with profile '{truth.name}' (state {desc.state_dir})")
        env = _child_env(str(Path(desc.state_dir) / "lab.json"))
        try:
            code = _step(
                [
                    "run", "--lab", "--accept-risk",
                    "--concurrency", str(concurrency), "--output", str(measurements),
                ],
                env,
            )  # fmt: skip
            # 1 = some URL could not be measured: the others are still worth analysing.
            if code not in (0, 1) or not measurements.is_file():
                failed = f"the probe failed (exit {code})"
            elif _step(["analyze", "--quiet", str(measurements), "--output", str(verdicts)], env):
                failed = "didban analyze failed"
            elif _step(
                [
                    "report", "--input", str(measurements),
                    "--verdicts", str(verdicts), "--output", str(report),
                    "--explorer", f"http://{listen}",
                ],
                env,
            ):  # fmt: skip
                failed = "didban report failed"
            elif _step(
                ["ingest", str(measurements), "--data-dir", str(data_dir),
                 "--lab", env["DIDBAN_LAB"]],
                env,
            ):  # fmt: skip
                failed = "didban ingest failed"
        except (KeyboardInterrupt, _Terminated):
            with _uninterruptible():
                runtime.down(desc.state_dir)
            typer.echo(f"\ninterrupted: lab {desc.prefix} brought down.", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BaseException:
            with _uninterruptible():
                runtime.down(desc.state_dir)
            raise
        typer.secho("$ didban lab down", fg=typer.colors.CYAN, err=True)
        with _uninterruptible():
            runtime.down(desc.state_dir)
        typer.echo(f"lab {desc.prefix} removed")
    elapsed = time.monotonic() - started
    serving = (
        "serving it now, Ctrl-C stops"
        if serve
        else f"serve it with: didban serve --data-dir {data_dir}"
    )
    if failed is not None:
        typer.echo(f"didban demo: {failed}; lab {desc.prefix} brought down.", err=True)
        raise typer.Exit(1)
    disagreements = print_truth_table(verdicts, truth.name)
    typer.echo(
        f"\nmeasurements: {measurements}\nverdicts:     {verdicts}\n"
        f"report:       {report}\n              file://{report}\n"
        f"took {elapsed:.1f} s (lab up, probe, analysis, report, lab down)"
    )
    scenario_failed = _over_time(out_dir, data_dir) if over_time else None
    if scenario_failed is not None:
        typer.echo(f"didban demo: {scenario_failed}.", err=True)
    timeline = (
        ""
        if scenario_failed is not None or not over_time
        else (f"\ntimeline:     http://{listen}/timeline/IR  (the scenario's block event)")
    )
    typer.echo(
        f"\nexplorer:     http://{listen}/country/IR  (the demo's data in {data_dir};\n"
        f"              {serving}){timeline}"
    )
    if serve:
        with contextlib.suppress(KeyboardInterrupt, _Terminated):
            _step(["serve", "--listen", listen, "--data-dir", str(data_dir)], os.environ.copy())
    if disagreements:
        typer.secho(
            f"{disagreements} verdict(s) disagree with the {truth.name} ground truth.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    if scenario_failed is not None:
        raise typer.Exit(1)


def _over_time(out_dir: Path, data_dir: Path) -> str | None:
    """The demo's second part (``didban.demo_scenario``); a failure sentence, or None."""
    from didban import demo_scenario

    env = {**os.environ, guard.ENV_VAR: "1"}
    env.pop("DIDBAN_LAB", None)
    if not sys.stdout.isatty():
        env.setdefault("COLUMNS", "160")
    typer.echo("\ncensorship over time: a lab scenario measured in rounds")
    with _sigterm_unwinds():
        try:
            return demo_scenario.run(out_dir, data_dir, lambda args: _step(args, env))
        except (KeyboardInterrupt, _Terminated):
            # 'lab scenario' brings its own lab down when it is interrupted
            typer.echo("\ninterrupted: the scenario's lab is brought down.", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


def _target(url: str) -> str:
    """The URL without its scheme and trailing slash: ``www.bbc.com/persian``."""
    parts = urlsplit(url)
    return (parts.netloc + parts.path).rstrip("/")


def print_truth_table(verdicts_file: Path, profile_name: str) -> int:
    """Print each verdict beside the profile's ground truth; return how many disagree."""
    from didban.lab import accuracy, profiles

    profile = profiles.load(profile_name)
    with verdicts_file.open("rb") as f:
        verdicts = [msgspec.json.decode(line) for line in f if line.strip()]
    rows = accuracy.compare(verdicts, profile)
    order = {u: i for i, u in enumerate(profiles.default_urls())}
    rows.sort(key=lambda r: (order.get(r.url, len(order)), r.url))
    gone = accuracy.missing((r.url for r in rows), profile, profiles.default_urls())
    rows += accuracy.missing_rows(gone, profile)
    table = Table(title=f"didban verdicts — lab profile {profile.name}")
    table.add_column("service", no_wrap=True)
    table.add_column("target", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("layer", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("confirmed", no_wrap=True)
    table.add_column("truth", no_wrap=True)
    table.add_column("", no_wrap=True)
    colour = {"ok": "green", "blocked": "red", "down": "yellow"}
    for r in rows:
        c = colour.get(r.state, "magenta")
        truth = r.expected_outcome
        if r.expected_method:
            truth += f" {r.expected_layer}/{r.expected_method}"
        table.add_row(
            r.service or "-",
            _target(r.url),
            f"[{c}]{r.state}[/{c}]",
            r.layer or "-",
            r.method or "-",
            ("yes" if r.confirmed else "no") if r.state == "blocked" else "",
            truth,
            "[green]✓[/green]" if r.match else "[red]✗[/red]",
        )
    console = _console()
    print_table(console, table)
    score = accuracy.Score(rows)
    blocked = [r for r in rows if r.expected_outcome == "blocked"]
    console.print(
        f"{score.correct}/{score.total} verdicts match the ground truth; "
        f"{sum(r.match for r in blocked)}/{len(blocked)} blocked targets with the right "
        f"method and layer; {len(score.false_blocked)} false 'blocked' on targets that "
        "should be ok."
    )
    return len(score.mismatches)


def register(app: typer.Typer) -> None:
    """Add ``didban demo`` to ``app``."""
    app.command("demo")(demo)
