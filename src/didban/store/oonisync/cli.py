"""``didban ooni sync``: the command, its checks, progress bar, summary and ``--ingest``."""

from __future__ import annotations

import shlex
import subprocess
import sys
import urllib.parse
from pathlib import Path

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from didban.store.oonisync.manifest import DestBusy
from didban.store.oonisync.s3 import S3Error
from didban.store.oonisync.selection import (
    BUCKET,
    LEGACY_BUCKET,
    SelectionError,
    parse_selection,
)
from didban.store.oonisync.sync import Hooks, Item, Options, Report, ingest_dirs, sync

DEFAULT_DEST = "ooni-archive"
ARGV_BUDGET = 64 * 1024  # bytes of directory names per `didban ingest` call
PRINTED_DIRS = 8

err = Console(stderr=True)
ooni_app = typer.Typer(help="OONI's public archive.", no_args_is_help=True)


def _fail(sentence: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {sentence}", err=True)
    return typer.Exit(code)


class _Bar(Hooks):
    """The listing's count of prefixes, then bytes and files downloaded."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.list_task: TaskID = progress.add_task("listing", total=None, detail="")
        self.get_task: TaskID | None = None
        self.files_done = self.files_total = self.bytes_done = self.bytes_total = 0

    def listing(self, done: int, total: int) -> None:
        self.progress.update(
            self.list_task, completed=done, total=total, detail=f"{done}/{total} prefixes"
        )

    def planned(self, files: int, nbytes: int) -> None:
        self.files_total, self.bytes_total = files, nbytes
        self.get_task = self.progress.add_task("download", total=nbytes or None, detail="")
        self._show()

    def advance(self, nbytes: int) -> None:
        self.bytes_done += nbytes
        if self.get_task is not None:
            self.progress.advance(self.get_task, nbytes)
            self._show()

    def finished(self, item: Item, outcome: str) -> None:
        if outcome != "already":
            self.files_done += 1
            self._show()

    def _show(self) -> None:
        if self.get_task is not None:
            self.progress.update(
                self.get_task,
                detail=f"{decimal(self.bytes_done)}/{decimal(self.bytes_total)}, "
                f"{self.files_done}/{self.files_total} files",
            )


def _summary(rep: Report, what: str) -> list[str]:
    lines = [
        f"{what}: {rep.listed} files, {decimal(rep.listed_bytes)} listed",
        f"  {rep.downloaded} downloaded ({decimal(rep.downloaded_bytes)}, {rep.resumed} "
        f"resumed), {rep.already} already verified, {rep.rechecked} found on disk and "
        f"verified, {rep.refetched} fetched again after failing verification, "
        f"{rep.retries} network retries",
        f"  verified: {rep.by_md5} by MD5, {rep.by_multipart_md5} by multipart MD5, "
        f"{rep.by_size_only} by size only",
    ]
    if rep.cans:
        lines.append(
            f"  cans: {rep.cans} read, {rep.extracted_measurements} measurements extracted, "
            f"{rep.yaml_skipped} YAML reports skipped (not supported)"
        )
    return lines


def _ingest_calls(dirs: list[Path], data_dir: Path | None) -> list[list[str]]:
    tail = ["--data-dir", str(data_dir)] if data_dir else []
    calls: list[list[str]] = []
    chunk: list[str] = []
    used = 0
    for d in dirs:
        if chunk and used + len(str(d)) + 1 > ARGV_BUDGET:
            calls.append(chunk)
            chunk, used = [], 0
        chunk.append(str(d))
        used += len(str(d)) + 1
    if chunk:
        calls.append(chunk)
    return [["ingest", *c, *tail] for c in calls]


@ooni_app.command("sync")
def sync_cmd(
    cc: str = typer.Option(..., "--cc", help="Country code of the probes, e.g. IR."),
    since: str = typer.Option(
        ..., "--since", help="First day (2024-02-01) or hour (2024-02-01T05), UTC, inclusive."
    ),
    until: str = typer.Option(..., "--until", help="Last day or hour, UTC, inclusive."),
    tests: list[str] = typer.Option(
        [],
        "--test",
        help="An OONI test (web_connectivity or webconnectivity); repeatable; default all.",
    ),
    dest: Path = typer.Option(
        Path(DEFAULT_DEST), "--dest", help="Where the files go (mirrors the bucket's keys)."
    ),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="An S3-compatible endpoint (path-style) instead of AWS."
    ),
    bucket: str = typer.Option(
        BUCKET, "--bucket", help="The bucket of raw/, jsonl/ and 2020's cans."
    ),
    legacy_bucket: str = typer.Option(
        LEGACY_BUCKET, "--legacy-bucket", help="The bucket of cans before 2020-06-02."
    ),
    use_cans: bool = typer.Option(
        False,
        "--cans",
        help="Days up to 2020-10-21 from the original tar.lz4 cans instead of jsonl/.",
    ),
    keep_cans: bool = typer.Option(
        False, "--keep-cans", help="Keep downloaded cans after extraction."
    ),
    jobs: int = typer.Option(4, "--jobs", help="Parallel listings and downloads (1-16)."),
    retries: int = typer.Option(5, "--retries", help="Retries of a failed request (0-20)."),
    verify_all: bool = typer.Option(
        False, "--verify", help="Hash every local file again, even those the manifest vouches for."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what the selection holds and its size; download nothing."
    ),
    ingest: bool = typer.Option(
        False, "--ingest", help="Then load the files into the store (didban ingest)."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="The store for --ingest."),
) -> None:
    """Download one country's measurements from OONI's public S3 bucket, resumably."""
    try:
        sel = parse_selection(cc, since, until, tests)
    except SelectionError as exc:
        raise _fail(str(exc)) from None
    if endpoint_url is not None:
        url = urllib.parse.urlsplit(endpoint_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise _fail(f"--endpoint-url must be an http(s) URL, not {endpoint_url!r}")
    if not 1 <= jobs <= 16:
        raise _fail(f"--jobs must be between 1 and 16, not {jobs}")
    if not 0 <= retries <= 20:
        raise _fail(f"--retries must be between 0 and 20, not {retries}")
    if dry_run and ingest:
        raise _fail("--dry-run and --ingest exclude each other")
    if data_dir is not None and not ingest:
        raise _fail("--data-dir is only used with --ingest")
    if keep_cans and not use_cans:
        raise _fail("--keep-cans is only used with --cans")
    if dest.exists() and not dest.is_dir():
        raise _fail(f"--dest {dest} is a file, not a directory")

    opts = Options(
        sel, dest, endpoint_url, bucket, legacy_bucket, use_cans, jobs, retries,
        verify_all=verify_all, keep_cans=keep_cans, dry_run=dry_run,
    )  # fmt: skip
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as progress:
        try:
            rep = sync(opts, _Bar(progress))
        except S3Error as exc:
            progress.stop()
            raise _fail(str(exc), 1) from None
        except DestBusy as exc:
            progress.stop()
            raise _fail(str(exc), 1) from None
        except OSError as exc:
            progress.stop()
            raise _fail(f"cannot write into {dest}: {exc.strerror or exc}", 1) from None

    if rep.listed == 0:
        typer.echo(f"{sel.describe()}: no files in the bucket; nothing to do")
        return
    if dry_run:
        typer.echo(
            f"{sel.describe()}: {rep.listed} files, {decimal(rep.listed_bytes)} listed; "
            "nothing downloaded (--dry-run)"
        )
        return
    for line in _summary(rep, sel.describe()):
        typer.echo(line)
    for line in rep.failed:
        typer.echo(f"failed: {line}", err=True)
    dirs = ingest_dirs(rep.files, sel)
    code = 1 if rep.failed else 0
    if ingest and dirs:
        for args in _ingest_calls(dirs, data_dir):
            r = subprocess.run([sys.executable, "-m", "didban.cli", *args], check=False)
            code = max(code, r.returncode)
    elif dirs:
        if len(dirs) <= PRINTED_DIRS:
            cmd = shlex.join(["didban", "ingest", *map(str, dirs)])
        else:
            cmd = f"{shlex.join(['didban', 'ingest', str(dest)])}  (everything under {dest})"
        typer.echo(f"to load them into the store: {cmd}, or run this sync again with --ingest")
    if rep.failed:
        typer.echo(
            f"error: {len(rep.failed)} files failed (listed above); "
            "running the same command again retries them",
            err=True,
        )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``didban ooni …`` to ``app``."""
    app.add_typer(ooni_app, name="ooni")
