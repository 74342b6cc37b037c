"""``didban ooni sync`` against a local S3 server holding files in OONI's layouts."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
from ooni_bucket import BUCKET, LEGACY, Archive, MotoServer, Proxy, run_sync

from didban.store.oonisync.s3 import AnonymousS3, S3Object

IR_WEB = r"^raw/2024020[12]/\d\d/IR/webconnectivity/.*\.jsonl\.gz$"


def local_files(dest: Path) -> list[str]:
    """Every data file under ``dest`` (not the sync's own state), relative, sorted."""
    return sorted(
        str(p.relative_to(dest))
        for p in dest.rglob("*")
        if p.is_file() and ".didban-sync" not in p.parts and not p.name.startswith(".")
    )


def test_sync_brings_exactly_the_countrys_files_byte_for_byte(
    moto: MotoServer, archive: Archive, dest: Path
) -> None:
    r = run_sync(
        "--cc", "IR", "--since", "2024-02-01", "--until", "2024-02-02",
        "--test", "web_connectivity", "--dest", str(dest), endpoint=moto.endpoint,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    want = archive.keys(IR_WEB)
    assert len(want) == 7  # 2 days x 3 hours, and the multipart file
    assert local_files(dest) == want  # no DE, no telegram, no postcan .tar.gz, no 02-03
    for key in want:
        assert (dest / key).read_bytes() == archive.objects[(BUCKET, key)]
    assert "7 files" in r.stdout
    assert "7 downloaded" in r.stdout
    assert "6 by MD5, 1 by multipart MD5, 0 by size only" in r.stdout
    dirs = sorted({str((dest / k).parent) for k in want})
    assert len(dirs) == 6
    assert f"to load them into the store: didban ingest {' '.join(dirs)}," in r.stdout


def test_both_spellings_of_a_test_and_hours_select_the_same_files(
    moto: MotoServer, dest: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    a = run_sync(
        "--cc", "ir", "--since", "2024-02-02T07", "--until", "2024-02-02T23:00Z",
        "--test", "webconnectivity", "--dest", str(dest), endpoint=moto.endpoint,
    )  # fmt: skip
    b = run_sync(
        "--cc", "IR", "--since", "2024-02-02T07:00", "--until", "2024-02-02T23",
        "--test", "web_connectivity", "--dest", str(other), endpoint=moto.endpoint,
    )  # fmt: skip
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert (
        local_files(dest)
        == local_files(other)
        == [
            "raw/20240202/07/IR/webconnectivity/2024020207_IR_webconnectivity.n1.0.jsonl.gz",
            "raw/20240202/07/IR/webconnectivity/2024020207_IR_webconnectivity.n1.1.jsonl.gz",
            "raw/20240202/23/IR/webconnectivity/2024020223_IR_webconnectivity.n1.0.jsonl.gz",
        ]
    )


def test_all_tests_when_none_is_named(moto: MotoServer, archive: Archive, dest: Path) -> None:
    r = run_sync(
        "--cc", "IR", "--since", "2024-02-03", "--until", "2024-02-03", "--dest", str(dest),
        endpoint=moto.endpoint,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert local_files(dest) == archive.keys(r"^raw/20240203/\d\d/IR/.*\.jsonl\.gz$")
    assert {Path(f).parent.name for f in local_files(dest)} == {"webconnectivity", "telegram"}


def test_second_run_downloads_nothing(moto: MotoServer, proxy: Proxy, dest: Path) -> None:
    args = ("--cc", "IR", "--since", "2024-02-01", "--until", "2024-02-01", "--dest", str(dest))
    first = run_sync(*args, endpoint=proxy.endpoint)
    assert first.returncode == 0, first.stderr
    proxy.log.clear()
    second = run_sync(*args, endpoint=proxy.endpoint)
    assert second.returncode == 0, second.stderr
    assert "0 downloaded" in second.stdout and "6 already verified" in second.stdout
    assert proxy.log and all(key == "" for _, key, _ in proxy.log)  # listings, no object


def test_killed_mid_download_resumes_and_refetches_nothing_complete(
    moto: MotoServer, proxy: Proxy, archive: Archive, dest: Path
) -> None:
    big = next(iter(archive.multipart))
    proxy.arm(big, "stall", 100_000)
    args = [
        "--cc", "IR", "--since", "2024-02-02", "--until", "2024-02-02", "--test", "webconnectivity",
        "--dest", str(dest), "--jobs", "1",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "didban.cli", "ooni", "sync", "--endpoint-url", proxy.endpoint]
    proc = subprocess.Popen(
        [*cmd, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proxy.stalled.wait(60), "the download of the large file never started"
        part = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            parts = list(dest.rglob("*.part"))
            if parts and parts[0].stat().st_size == 100_000:
                part = parts[0]
                break
            time.sleep(0.05)
        assert part is not None, "the partial file never reached the bytes sent"
        proc.kill()  # SIGKILL by process id: no cleanup runs
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.release.set()
    day = archive.keys(r"^raw/20240202/\d\d/IR/webconnectivity/.*\.jsonl\.gz$")
    done_before = [k for k in day if k < big]
    assert done_before and all((dest / k).exists() for k in done_before)
    assert not (dest / big).exists()  # never a half file under the final name

    proxy.log.clear()
    r = run_sync(*args, endpoint=proxy.endpoint)
    assert r.returncode == 0, r.stderr
    assert proxy.gets(big) == ["bytes=100000-"]  # resumed where the kill left it
    for k in done_before:
        assert proxy.gets(k) == []  # complete files are not fetched again
    assert (dest / big).read_bytes() == archive.objects[(BUCKET, big)]
    assert "1 resumed" in r.stdout and "1 by multipart MD5" in r.stdout
    assert not list(dest.rglob("*.part"))


def test_connection_dropped_mid_body_is_retried_from_where_it_stopped(
    moto: MotoServer, proxy: Proxy, archive: Archive, dest: Path
) -> None:
    big = next(iter(archive.multipart))
    proxy.arm(big, "cut", 70_000)
    r = run_sync(
        "--cc", "IR", "--since", "2024-02-02T07", "--until", "2024-02-02T07", "--test",
        "webconnectivity", "--dest", str(dest), endpoint=proxy.endpoint,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    ranges = proxy.gets(big)
    assert ranges[0] is None and len(ranges) == 2
    assert ranges[1] is not None and int(ranges[1][len("bytes=") : -1]) > 0
    assert (dest / big).read_bytes() == archive.objects[(BUCKET, big)]
    assert "1 network retries" in r.stdout


def test_slow_down_is_retried(moto: MotoServer, proxy: Proxy, archive: Archive, dest: Path) -> None:
    key = "raw/20240201/23/IR/telegram/2024020123_IR_telegram.n1.0.jsonl.gz"
    proxy.arm(key, "503", 0)
    r = run_sync(
        "--cc", "IR", "--since", "2024-02-01T23", "--until", "2024-02-01T23", "--test",
        "telegram", "--test", "web_connectivity", "--dest", str(dest), endpoint=proxy.endpoint,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert proxy.gets(key) == [None, None]
    assert (dest / key).read_bytes() == archive.objects[(BUCKET, key)]
    assert local_files(dest) == archive.keys(r"^raw/20240201/23/IR/.*\.jsonl\.gz$")
    assert "2 files" in r.stdout and "1 network retries" in r.stdout


def test_a_stalled_download_times_out_and_resumes(
    moto: MotoServer, proxy: Proxy, archive: Archive, tmp_path: Path
) -> None:
    big = next(iter(archive.multipart))
    obj = next(o for o in listing(proxy.endpoint, big) if o.key == big)
    proxy.arm(big, "stall", 50_000)
    part = tmp_path / "big.part"
    got: list[int] = []

    async def fetch() -> int:
        async with AnonymousS3(proxy.endpoint, timeout=1.0, backoff=0.05) as s3:
            return await s3.download(BUCKET, obj, part, got.append)

    assert asyncio.run(fetch()) == 0
    assert part.read_bytes() == archive.objects[(BUCKET, big)]
    assert proxy.gets(big) == [None, "bytes=50000-"]
    assert sum(got) == obj.size


def listing(endpoint: str, key: str) -> list[S3Object]:
    async def run() -> list[S3Object]:
        async with AnonymousS3(endpoint) as s3:
            return (await s3.list(BUCKET, key)).objects

    return asyncio.run(run())


def test_corrupted_file_is_detected_and_fetched_again(
    moto: MotoServer, proxy: Proxy, archive: Archive, dest: Path
) -> None:
    hour = "2024-02-03T00"
    args = ("--cc", "IR", "--since", hour, "--until", hour, "--dest", str(dest))
    assert run_sync(*args, endpoint=proxy.endpoint).returncode == 0
    victim = "raw/20240203/00/IR/telegram/2024020300_IR_telegram.n1.0.jsonl.gz"
    path = dest / victim
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # same size, different bytes
    path.write_bytes(bytes(data))
    proxy.log.clear()
    r = run_sync(*args, endpoint=proxy.endpoint)
    assert r.returncode == 0, r.stderr
    assert proxy.gets(victim) == [None]
    assert path.read_bytes() == archive.objects[(BUCKET, victim)]
    assert "1 fetched again after failing verification" in r.stdout
    assert "1 downloaded" in r.stdout


def test_verify_finds_damage_that_kept_size_and_mtime(
    moto: MotoServer, proxy: Proxy, archive: Archive, dest: Path
) -> None:
    hour = "2024-02-03T23"
    args = ("--cc", "IR", "--since", hour, "--until", hour, "--dest", str(dest))
    assert run_sync(*args, endpoint=proxy.endpoint).returncode == 0
    victim = "raw/20240203/23/IR/webconnectivity/2024020323_IR_webconnectivity.n1.0.jsonl.gz"
    path = dest / victim
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-9] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    trusting = run_sync(*args, endpoint=proxy.endpoint)
    assert "2 already verified" in trusting.stdout  # the manifest vouches; no hashing
    proxy.log.clear()
    r = run_sync(*args, "--verify", endpoint=proxy.endpoint)
    assert r.returncode == 0, r.stderr
    assert proxy.gets(victim) == [None]
    assert path.read_bytes() == archive.objects[(BUCKET, victim)]


def test_files_already_on_disk_are_verified_not_downloaded(
    moto: MotoServer, proxy: Proxy, archive: Archive, dest: Path
) -> None:
    key = "raw/20240201/07/IR/telegram/2024020107_IR_telegram.n1.0.jsonl.gz"
    (dest / key).parent.mkdir(parents=True)
    (dest / key).write_bytes(archive.objects[(BUCKET, key)])  # e.g. copied from elsewhere
    r = run_sync(
        "--cc", "IR", "--since", "2024-02-01T07", "--until", "2024-02-01T07", "--test",
        "telegram", "--dest", str(dest), endpoint=proxy.endpoint,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert proxy.gets(key) == []
    assert "1 found on disk and verified" in r.stdout


def test_jsonl_layout_before_october_2020(moto: MotoServer, archive: Archive, dest: Path) -> None:
    r = run_sync(
        "--cc", "IR", "--since", "2019-11-16", "--until", "2019-11-16", "--dest", str(dest),
        endpoint=moto.endpoint,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert local_files(dest) == archive.keys(r"^jsonl/[a-z]+/IR/20191116/")
    assert len(local_files(dest)) == 2


def test_cans_yield_only_the_countrys_reports(
    moto: MotoServer, archive: Archive, dest: Path
) -> None:
    r = run_sync(
        "--cc", "IR", "--since", "2019-11-16", "--until", "2019-11-16", "--test",
        "web_connectivity", "--cans", "--dest", str(dest), endpoint=moto.endpoint,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = "canned/2019-11-16/IR/webconnectivity/web_connectivity.0.jsonl.gz"
    assert local_files(dest) == [out]
    rows = [orjson.loads(x) for x in gzip.decompress((dest / out).read_bytes()).splitlines()]
    assert rows == archive.can_rows["canned/2019-11-16/web_connectivity.0.tar.lz4"]
    assert "5 measurements extracted, 1 YAML reports skipped" in r.stdout
    assert list(dest.rglob("*.lz4")) == []  # the can is deleted once extracted


def test_a_kept_can_serves_another_country_without_downloading_again(
    moto: MotoServer, proxy: Proxy, dest: Path
) -> None:
    args = ("--since", "2019-11-16", "--until", "2019-11-16", "--test", "telegram", "--cans")
    ir = run_sync("--cc", "IR", *args, "--keep-cans", "--dest", str(dest), endpoint=proxy.endpoint)
    assert ir.returncode == 0, ir.stderr
    can = "canned/2019-11-16/telegram.0.tar.lz4"
    assert proxy.gets(can) == [None]
    de = run_sync("--cc", "DE", *args, "--dest", str(dest), endpoint=proxy.endpoint)
    assert de.returncode == 0, de.stderr
    assert proxy.gets(can) == [None]  # read again from the kept, verified copy
    assert local_files(dest) == [
        "canned/2019-11-16/DE/telegram/telegram.0.jsonl.gz",
        "canned/2019-11-16/IR/telegram/telegram.0.jsonl.gz",
    ]
    assert "2 measurements extracted" in de.stdout
    assert list((dest / ".didban-sync" / "cans" / LEGACY).rglob("*.lz4")) == []


def test_2020_single_report_cans(proxy: Proxy, archive: Archive, dest: Path) -> None:
    r = run_sync(
        "--cc", "IR", "--since", "2020-07-01", "--until", "2020-07-01", "--cans",
        "--dest", str(dest), endpoint=proxy.endpoint,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    fetched = {k for m, k, _ in proxy.log if m == "GET" and k}
    assert len(fetched) == 1 and "-IR-" in fetched.pop()  # DE's report is not downloaded
    (out,) = local_files(dest)
    assert out.startswith("canned/2020-07-01/IR/webconnectivity/20200701T090000Z-IR-AS58224")
    rows = [orjson.loads(x) for x in gzip.decompress((dest / out).read_bytes()).splitlines()]
    assert [m["probe_cc"] for m in rows] == ["IR", "IR"]


def test_a_damaged_can_is_reported_and_the_rest_kept(moto: MotoServer, dest: Path) -> None:
    r = run_sync(
        "--cc", "IR", "--since", "2019-11-17", "--until", "2019-11-17", "--cans",
        "--dest", str(dest), endpoint=moto.endpoint,
    )  # fmt: skip
    assert r.returncode == 1
    assert "failed: s3://ooni-data/canned/2019-11-17/web_connectivity.0.tar.lz4: " in r.stderr
    assert "web_connectivity.0.tar.lz4: not a readable tar.lz4 can" in r.stderr
    assert (
        "error: 1 files failed (listed above); running the same command again retries them"
        in r.stderr
    )
    assert local_files(dest) == ["canned/2019-11-17/IR/telegram/telegram.0.jsonl.gz"]
