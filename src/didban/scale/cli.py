"""``didban scale ingest|aggregate|series``: the Spark path (``python -m didban.scale`` is the
same commands, as a file ``spark-submit`` can run)."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import typer

scale_app = typer.Typer(
    help="The same analysis on Apache Spark (the spark extra: make deps-spark).",
    no_args_is_help=True,
)
MASTER = typer.Option(
    "local[2]",
    "--master",
    help="Spark master: local[N] (this machine, loopback only), spark://HOST:7077, yarn, "
    "k8s://https://HOST:PORT.",
)
DATA = typer.Option(
    ..., "--data", help="A directory holding tables/ (a store, or 'scale ingest --out')."
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


def _spark(master: str | None):  # type: ignore[no-untyped-def]
    from didban.scale.session import SparkMissing, session

    try:
        return session(master or None)
    except SparkMissing as exc:
        raise _fail(str(exc), 1) from None


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _fail(f"{name} must be a day like 2026-11-21, not {text!r}") from None


@scale_app.command("ingest")
def ingest_cmd(
    paths: list[Path] = typer.Argument(..., metavar="PATH", help="Files or directories."),
    out: Path = typer.Option(..., "--out", help="Where tables/ is written (replaced)."),
    master: str = MASTER,
) -> None:
    """Classify and write the store's three Parquet tables with Spark."""
    from didban.scale.ingest import ingest
    from didban.store.ingest import discover

    files, problems = discover(paths)
    if problems:
        raise _fail("; ".join(problems))
    spark = _spark(master)
    try:
        res = ingest(spark, files, out)
    finally:
        spark.stop()
    for line in res.bad:
        typer.echo(line, err=True)
    typer.echo(
        f"{res.files} files, {res.records} records: {res.added} stored, "
        f"{res.duplicates} duplicates, {len(res.bad)} bad; tables in {out / 'tables'}"
    )
    if res.added == 0:
        raise _fail("nothing could be stored (see the reasons above)", 1)


@scale_app.command("aggregate")
def aggregate_cmd(
    data: Path = DATA,
    axis_x: str | None = typer.Option(None, "--axis-x"),
    axis_y: str | None = typer.Option(None, "--axis-y"),
    grain: str = typer.Option("day", "--grain", help="hour, day, week, month or year."),
    cc: list[str] = typer.Option([], "--cc", help="Countries (repeatable)."),
    since: str | None = typer.Option(None, "--since", help="First day (inclusive)."),
    until: str | None = typer.Option(None, "--until", help="Last day (exclusive)."),
    master: str = MASTER,
) -> None:
    """The API's /aggregation (OONI's counts), one JSON line per cell."""
    from didban.scale.queries import aggregate

    if not (data / "tables" / "measurements").is_dir():
        raise _fail(f"{data} has no tables/measurements")
    first, last = _day(since, "--since"), _day(until, "--until")
    spark = _spark(master)
    try:
        got = aggregate(spark, data / "tables", axis_x, axis_y, grain, cc or None, first, last)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    finally:
        spark.stop()
    for row in got:
        typer.echo(orjson.dumps(row, default=str).decode())


@scale_app.command("series")
def series_cmd(
    data: Path = DATA,
    bucket: str = typer.Option("1h", "--bucket", help="1h, 1d, 10m …"),
    cc: list[str] = typer.Option([], "--cc"),
    since: str | None = typer.Option(None, "--since", help="First day (inclusive)."),
    until: str | None = typer.Option(None, "--until", help="Last day (exclusive)."),
    by_layer: bool = typer.Option(False, "--by-layer", help="Key by layer, not resolver."),
    master: str = MASTER,
) -> None:
    """didban events' series (counts per country, ASN, target and bucket), one JSON line per
    series and non-empty bucket."""
    from didban.events.grid import parse_bucket
    from didban.scale.queries import series

    if not (data / "tables" / "verdicts").is_dir():
        raise _fail(f"{data} has no tables/verdicts")
    try:
        step = parse_bucket(bucket)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    first, last = _day(since, "--since"), _day(until, "--until")
    spark = _spark(master)
    try:
        grid = series(
            spark,
            data / "tables",
            step,
            datetime(first.year, first.month, first.day) if first else None,
            datetime(last.year, last.month, last.day) if last else None,
            cc or None,
            by_layer,
        )
    finally:
        spark.stop()
    for row in grid.rows():
        row["t"] = row["t"].replace(tzinfo=UTC).isoformat()
        typer.echo(orjson.dumps(row).decode())


def register(app: typer.Typer) -> None:
    app.add_typer(scale_app, name="scale")
