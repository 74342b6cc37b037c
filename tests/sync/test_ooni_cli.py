"""What ``didban ooni sync`` refuses, what it says, and ``--ingest``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ooni_bucket import BUCKET, Archive, MotoServer, run_sync
from rich.filesize import decimal

from didban.store.oonisync.manifest import Manifest


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--cc", "IRN"], "--cc must be a two-letter country code such as IR, not 'IRN'"),
        (["--cc", "I1"], "--cc must be a two-letter country code such as IR, not 'I1'"),
        (
            ["--since", "2024-02-03", "--until", "2024-02-01"],
            "--until (2024-02-01) is before --since (2024-02-03)",
        ),
        (
            ["--since", "2024-02-01T07", "--until", "2024-02-01T06"],
            "--until (2024-02-01T06) is before --since (2024-02-01T07)",
        ),
        (["--since", "2024-02-30"], "--since must be a day (2019-11-16) or an hour"),
        (["--until", "yesterday"], "--until must be a day (2019-11-16) or an hour"),
        (
            ["--test", "webconectivity"],
            "unknown OONI test name 'webconectivity' (did you mean web_connectivity?)",
        ),
        (["--test", "nosuchtest"], "unknown OONI test name 'nosuchtest'"),
        (["--data-dir", "x"], "--data-dir is only used with --ingest"),
        (["--jobs", "0"], "--jobs must be between 1 and 16, not 0"),
        (["--endpoint-url", "ftp://x"], "--endpoint-url must be an http(s) URL, not 'ftp://x'"),
    ],
)
def test_bad_flags_are_one_sentence_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], sentence: str
) -> None:
    base = {"--cc": "IR", "--since": "2024-02-01", "--until": "2024-02-02"}
    flags = dict(base)
    rest: list[str] = []
    for i in range(0, len(args), 2):
        if args[i] in flags:
            flags[args[i]] = args[i + 1]
        else:
            rest += args[i : i + 2]
    dest = tmp_path / "mirror"
    argv = [x for kv in flags.items() for x in kv] + rest + ["--dest", str(dest)]
    r = subprocess.run(
        [sys.executable, "-m", "didban.cli", "ooni", "sync", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {sentence}")
    assert len(r.stderr.strip().splitlines()) == 1
    assert not dest.exists()


def test_a_missing_bucket_is_one_sentence_and_nothing_written(
    moto: MotoServer, tmp_path: Path
) -> None:
    dest = tmp_path / "mirror"
    r = run_sync(
        "--cc", "IR", "--since", "2024-02-01", "--until", "2024-02-01", "--bucket",
        "no-such-bucket", "--dest", str(dest), endpoint=moto.endpoint,
    )  # fmt: skip
    assert r.returncode == 1
    assert "error: s3://no-such-bucket: no such bucket at this endpoint" in r.stderr
    assert not dest.exists()


def test_an_unreachable_endpoint_gives_up_after_the_retries(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "mirror"
    r = run_sync(
        "--cc", "IR", "--since", "2024-02-01T00", "--until", "2024-02-01T00", "--retries", "1",
        "--dest", str(dest), endpoint=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    assert r.returncode == 1
    assert "gave up after 1 retries" in r.stderr
    assert not dest.exists()


def test_nothing_in_the_range_says_so(moto: MotoServer, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    r = run_sync(
        "--cc", "IR", "--since", "2023-01-01", "--until", "2023-01-01", "--dest", str(dest),
        endpoint=moto.endpoint,
    )  # fmt: skip
    assert r.returncode == 0
    assert "no files in the bucket; nothing to do" in r.stdout
    assert not dest.exists()


def test_two_syncs_never_write_one_directory(moto: MotoServer, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    with Manifest(dest):
        r = run_sync(
            "--cc", "IR", "--since", "2024-02-01T00", "--until", "2024-02-01T00", "--dest",
            str(dest), endpoint=moto.endpoint,
        )  # fmt: skip
    assert r.returncode == 1
    assert f"error: {dest} is being synced by another process" in r.stderr


def test_ingest_loads_the_synced_files_into_the_store(moto: MotoServer, tmp_path: Path) -> None:
    dest, data = tmp_path / "mirror", tmp_path / "store"
    args = (
        "--cc", "IR", "--since", "2024-02-01", "--until", "2024-02-01", "--test", "telegram",
        "--dest", str(dest), "--ingest", "--data-dir", str(data),
    )  # fmt: skip
    r = run_sync(*args, endpoint=moto.endpoint)
    assert r.returncode == 0, r.stderr
    assert "3 files read, 0 already ingested; 9 records: 9 added" in r.stdout
    info = subprocess.run(
        [sys.executable, "-m", "didban.cli", "store", "info", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "archived measurements: 9" in info.stdout
    again = run_sync(*args, endpoint=moto.endpoint)  # nothing new: nothing added twice
    assert again.returncode == 0, again.stderr
    assert "0 files read, 3 already ingested; 0 records: 0 added" in again.stdout


def test_dry_run_tells_the_size_and_writes_nothing(
    moto: MotoServer, archive: Archive, tmp_path: Path
) -> None:
    dest = tmp_path / "mirror"
    r = run_sync(
        "--cc", "IR", "--since", "2024-02-02", "--until", "2024-02-02", "--test", "webconnectivity",
        "--dry-run", "--dest", str(dest), endpoint=moto.endpoint,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    keys = archive.keys(r"^raw/20240202/\d\d/IR/webconnectivity/.*\.jsonl\.gz$")
    size = sum(len(archive.objects[(BUCKET, k)]) for k in keys)
    assert f"{len(keys)} files, {decimal(size)} listed; nothing downloaded (--dry-run)" in r.stdout
    assert not dest.exists()
