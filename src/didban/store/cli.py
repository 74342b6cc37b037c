"""Commands of ``didban.store``: ``ingest``, ``store rebuild|compact|info``, ``data update``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import msgspec
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from didban.model.labinfo import AsnRow, LabDescriptor

if TYPE_CHECKING:
    from didban.store.store import Store

DEFAULT_DATA_DIR = "didban-data"
ASN_PACKAGE = "@ip-location-db/asn"

err = Console(stderr=True)


def default_data_dir() -> Path:
    return Path(os.environ.get("DIDBAN_DATA_DIR", DEFAULT_DATA_DIR))


DATA_DIR_OPT = typer.Option(
    None,
    "--data-dir",
    help="The store's data directory (default: $DIDBAN_DATA_DIR or ./didban-data).",
)
LAB_OPT = typer.Option(
    None,
    "--lab",
    help="A lab descriptor (lab.json, its lab's state directory, or /run/didban/current-lab); "
    "its IP→ASN rows override the shipped snapshot.",
)


def lab_asn_map(descriptor: Path | None) -> list[AsnRow]:
    """The ``asn_map`` rows of a lab descriptor, or [] without one; exits on a bad file."""
    if descriptor is None:
        return []
    if descriptor.is_dir():  # a lab's state directory holds its lab.json
        descriptor = descriptor / "lab.json"
    try:
        lab = msgspec.json.decode(descriptor.read_bytes(), type=LabDescriptor)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        typer.echo(f"error: cannot read the lab descriptor {descriptor}: {exc}", err=True)
        raise typer.Exit(2) from None
    return list(lab.asn_map)


def open_store(data_dir: Path | None, lab: Path | None = None, *, existing: bool = False) -> Store:
    """The store of ``data_dir`` as its writer; exits with one sentence if it is busy or
    cannot be opened.

    ``existing`` (``store rebuild|compact|info``): the directory must already hold a
    store, so a mistyped path is neither created nor written into. Otherwise (``ingest``,
    ``serve``: the commands that create stores) a new or empty directory becomes a store,
    and a directory holding other files but no store is refused."""
    import sqlite3

    from didban.store.store import NotAStore, Store, StoreBusy, is_store

    where = data_dir or default_data_dir()

    def fail(sentence: str, code: int = 2) -> NoReturn:
        typer.echo(f"error: {sentence}", err=True)
        raise typer.Exit(code)

    if where.exists() and not where.is_dir():
        fail(f"the data directory {where} is a file, not a directory")
    if existing and not where.is_dir():
        fail(f"there is no store at {where} (see --data-dir)")
    if not existing and where.is_dir() and not is_store(where):
        try:
            others = [p.name for p in where.iterdir() if p.name != "writer.lock"]
        except OSError as exc:
            fail(f"cannot open the store in {where}: {exc.strerror or exc}")
        if others:
            fail(
                f"{where} holds other files and no didban store; give a new or empty "
                "directory, or an existing store (see --data-dir)"
            )
    try:
        return Store(where, lab_asn_map=lab_asn_map(lab), create=not existing)
    except NotAStore as exc:
        fail(str(exc))
    except StoreBusy as exc:
        fail(str(exc), 1)
    except sqlite3.DatabaseError as exc:
        fail(
            f"the store's index {where / 'index.sqlite'} is damaged ({exc}); remove it and "
            "run 'didban store rebuild', which rebuilds it from the archive",
            1,
        )
    except OSError as exc:
        fail(f"cannot open the store in {where}: {exc.strerror or exc}")


def ingest_cmd(
    paths: list[Path] = typer.Argument(..., metavar="PATH", help="Files or directories to load."),
    data_dir: Path | None = DATA_DIR_OPT,
    lab: Path | None = LAB_OPT,
    jobs: int = typer.Option(
        0,
        "--jobs",
        "-j",
        help="Worker processes deriving rows in parallel, at most one per usable CPU; "
        "0 (default): one per usable CPU; 1: none.",
    ),
) -> None:
    """Load OONI archive files (.jsonl.gz), didban JSONL (.jsonl/.jsonl.zst) or .json files.

    Bad records are reported on stderr as FILE:LINE: REASON and skipped. Exit codes: 0
    something was stored (or was already), or the input holds no measurement (empty
    files, directories without measurement files: a note says so); 1 there were records
    and none could be stored; 2 bad usage (a path that does not exist or is not a
    measurement file; nothing stored).
    """
    from didban.analysis.cli import NOTHING_FOUND, count, note_skipped, say

    if jobs < 0:
        typer.echo(f"error: --jobs must be 0 (one per CPU) or more, not {jobs}", err=True)
        raise typer.Exit(2)
    from didban.store.ingest import discover, ingest

    files, problems = discover(paths)
    if not files:
        for line in problems:
            typer.echo(f"error: {line}", err=True)
        note_skipped(paths)
        if problems:
            raise typer.Exit(2)
        say(NOTHING_FOUND)  # nothing to store: no store is created or opened
        return
    total = sum(f.stat().st_size for f in files)
    store = open_store(data_dir, lab)
    with (
        store,
        Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[file]}"),
            console=err,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("ingest", total=total or None, file="")
        rep = ingest(
            store,
            paths,
            on_bytes=lambda n: progress.advance(task, n),
            on_file=lambda p, skipped: progress.update(
                task, file=f"{'skipped ' if skipped else ''}{p.name}"
            ),
            jobs=jobs,
        )
    for line in rep.bad:
        typer.echo(line, err=True)
    note_skipped(paths)
    if rep.records == 0 and not rep.bad and rep.skipped_files == 0:
        say(NOTHING_FOUND)
    typer.echo(
        f"{count(rep.files, 'file')} read, {rep.skipped_files} already ingested; "
        f"{count(rep.records, 'record')}: {rep.added} added, "
        f"{count(rep.duplicates, 'duplicate')}, {len(rep.bad)} bad"
    )
    if rep.bad and rep.added == 0 and rep.duplicates == 0 and rep.skipped_files == 0:
        typer.echo("error: nothing could be ingested (see the reasons above)", err=True)
        raise typer.Exit(1)


store_app = typer.Typer(help="The measurement store (archive and tables).", no_args_is_help=True)


@store_app.command("rebuild")
def rebuild_cmd(data_dir: Path | None = DATA_DIR_OPT, lab: Path | None = LAB_OPT) -> None:
    """Rebuild the index and every table from the raw archive (e.g. after a rules change)."""
    from didban.store import rollups

    store = open_store(data_dir, lab, existing=True)
    with (
        store,
        Progress(
            TextColumn("[bold]rebuild"), BarColumn(), MofNCompleteColumn(), console=err
        ) as progress,
    ):
        task = progress.add_task("rebuild", total=None)
        n = store.rebuild(lambda k: progress.advance(task, k))
        days = rollups.refresh(store)
    typer.echo(f"rebuilt the tables from the archive: {n} measurements; rollups of {days} days")


@store_app.command("compact")
def compact_cmd(
    data_dir: Path | None = DATA_DIR_OPT,
    min_files: int = typer.Option(2, "--min-files", help="Merge days holding this many files."),
) -> None:
    """Merge each day's small Parquet files into one, then refresh those days' rollups."""
    from didban.store import rollups

    if min_files < 2:
        typer.echo(f"error: --min-files must be 2 or more, not {min_files}", err=True)
        raise typer.Exit(2)
    with open_store(data_dir, existing=True) as store:
        n = store.compact(min_files)
        days = rollups.refresh_stale(store)  # the days whose files changed
    typer.echo(f"compacted {n} table partitions; refreshed the rollups of {days} days")


@store_app.command("info")
def info_cmd(data_dir: Path | None = DATA_DIR_OPT) -> None:
    """How many measurements the store holds, per table."""
    with open_store(data_dir, existing=True) as store:
        typer.echo(f"data directory: {store.dir}")
        typer.echo(f"archived measurements: {store.count()}")
        for t in ("measurements", "observations", "verdicts"):
            n = store.reader.rows(f"SELECT count(*) AS n FROM {{{t}}}")[0]["n"]
            typer.echo(f"{t}: {n} rows")
        typer.echo(f"IP→ASN snapshot: {store.asn.version}")


data_app = typer.Typer(help="Shipped reference data.", no_args_is_help=True)


@data_app.command("update")
def data_update_cmd(
    source: Path | None = typer.Option(
        None,
        "--from",
        help="Build from a local @ip-location-db/asn package (.tgz or unpacked directory) "
        "instead of downloading it with npm.",
    ),
    version: str = typer.Option("latest", "--version", help="npm version to fetch."),
) -> None:
    """Refresh the IP→ASN snapshot from @ip-location-db/asn (needs npm and the internet)."""
    from didban.store import asndb

    if source is not None and not source.exists():
        typer.echo(f"error: --from {source} does not exist", err=True)
        raise typer.Exit(2)
    with tempfile.TemporaryDirectory(prefix="didban-asn-") as tmp_s:
        tmp = Path(tmp_s)
        if source is None:
            if shutil.which("npm") is None:
                typer.echo(
                    "error: 'npm' is not installed; install it or pass --from PACKAGE.tgz", err=True
                )
                raise typer.Exit(1)
            spec = f"{ASN_PACKAGE}@{version}"
            r = subprocess.run(
                ["npm", "pack", "--loglevel=error", spec],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=600,
            )
            tgz = sorted(tmp.glob("*.tgz"))
            if r.returncode != 0 or not tgz:
                lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
                errors = [x for x in lines if "ERR" in x.upper()] or lines or ["no output"]
                reason = errors[0].strip()
                typer.echo(
                    f"error: could not download {spec} (offline? npm said: {reason}); "
                    "the current snapshot is unchanged",
                    err=True,
                )
                raise typer.Exit(1)
            source = tgz[0]
        if source.is_file():
            try:
                with tarfile.open(source) as tf:
                    tf.extractall(tmp / "x", filter="data")
            except tarfile.TarError:
                typer.echo(f"error: {source} is not a package tarball (.tgz)", err=True)
                raise typer.Exit(2) from None
            except OSError as exc:
                typer.echo(f"error: cannot read {source}: {exc.strerror or exc}", err=True)
                raise typer.Exit(2) from None
            pkg = tmp / "x" / "package"
        else:
            pkg = source
        meta = pkg / "package.json"
        ver = "unknown"
        if meta.exists():
            try:
                doc = msgspec.json.decode(meta.read_bytes())
            except (msgspec.DecodeError, OSError) as exc:
                typer.echo(f"error: {meta} is not a readable package.json ({exc})", err=True)
                raise typer.Exit(2) from None
            if isinstance(doc, dict):
                ver = str(doc.get("version", "unknown"))
        try:
            counts = asndb.build(
                pkg, asndb.snapshot_dir(), ver, datetime.now(UTC).strftime("%Y-%m-%d")
            )
        except (FileNotFoundError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(
        f"IP→ASN snapshot {ASN_PACKAGE}@{ver}: {counts['ipv4_ranges']} IPv4 ranges, "
        f"{counts['ipv6_ranges']} IPv6 ranges, {counts['asns']} ASNs"
    )


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("ingest")(ingest_cmd)
    app.add_typer(store_app, name="store")
    app.add_typer(data_app, name="data")
