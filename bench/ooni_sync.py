"""Benchmark: ``didban ooni sync`` against moto's S3 server on 127.0.0.1.

Fills a local bucket in OONI's ``raw/`` layout (``--hours`` hours of one country, two
tests, ``--size`` KiB per file, and one multipart file of ``--big`` MiB in 8 MiB parts as
boto3 and aws-cli upload them), then times, in one run:

1. the first sync (listing, download, MD5 and multipart-MD5 verification, manifest);
2. a second sync (everything vouched for by the manifest: listings only);
3. a sync with ``--verify`` (every file hashed again), beside a bare ``hashlib.md5``
   pass over the same files (the floor of any verification).

moto's single-threaded development server is the bottleneck of (1): read its figure as
a lower bound of the client, not as a network figure. Nothing leaves 127.0.0.1.

Usage: python bench/ooni_sync.py [--hours 48] [--size 256] [--big 20]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import orjson

BUCKET = "ooni-data-eu-fra"
MIB = 1024 * 1024


def start_moto(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = workdir / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(rb"Running on http://127\.0\.0\.1:(\d+)", log.read_bytes())
        if m:
            return proc, f"http://127.0.0.1:{int(m[1])}"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("moto did not start")


def fill(endpoint: str, hours: int, size_kib: int, big_mib: int) -> int:
    s3: Any = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=BUCKET)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            }
        ],
    }
    s3.put_bucket_policy(Bucket=BUCKET, Policy=orjson.dumps(policy).decode())
    total = 0
    for h in range(hours):
        day, hour = f"202402{1 + h // 24:02d}", f"{h % 24:02d}"
        for test in ("webconnectivity", "telegram"):
            key = f"raw/{day}/{hour}/IR/{test}/{day}{hour}_IR_{test}.n1.0.jsonl.gz"
            body = os.urandom(size_kib * 1024)
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            total += len(body)
    key = "raw/20240201/00/IR/webconnectivity/2024020100_IR_webconnectivity.n1.1.jsonl.gz"
    data = os.urandom(big_mib * MIB)
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    parts = []
    for i in range(0, len(data), 8 * MIB):
        n = len(parts) + 1
        r = s3.upload_part(
            Bucket=BUCKET,
            Key=key,
            PartNumber=n,
            UploadId=up["UploadId"],
            Body=data[i : i + 8 * MIB],
        )
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    return total + len(data)


def timed_sync(endpoint: str, dest: Path, days: int, *extra: str) -> float:
    cmd = [sys.executable, "-m", "didban.cli", "ooni", "sync", "--endpoint-url", endpoint]
    cmd += ["--cc", "IR", "--since", "2024-02-01", "--until", f"2024-02-{days:02d}"]
    t = time.perf_counter()
    r = subprocess.run([*cmd, "--dest", str(dest), *extra], capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"sync failed: {r.stderr}")
    for line in r.stdout.strip().splitlines()[1:3]:
        print("   ", line.strip())
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--size", type=int, default=256, help="KiB per file")
    ap.add_argument("--big", type=int, default=20, help="MiB of the multipart file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="didban-sync-bench-") as tmp_s:
        tmp = Path(tmp_s)
        proc, endpoint = start_moto(tmp)
        try:
            nbytes = fill(endpoint, args.hours, args.size, args.big)
            files = args.hours * 2 + 1
            days = (args.hours + 23) // 24
            mb = nbytes / 1e6
            print(f"{files} files, {mb:.1f} MB in moto on 127.0.0.1")
            dest = tmp / "mirror"
            first = timed_sync(endpoint, dest, days)
            print(f"first sync:  {first:6.2f} s  {mb / first:6.1f} MB/s")
            second = timed_sync(endpoint, dest, days)
            print(f"second sync: {second:6.2f} s  (manifest: no object fetched, no hashing)")
            again = timed_sync(endpoint, dest, days, "--verify")
            t = time.perf_counter()
            for f in dest.rglob("*.jsonl.gz"):
                hashlib.md5(f.read_bytes()).hexdigest()
            floor = time.perf_counter() - t
            print(f"--verify:    {again:6.2f} s  (bare MD5 of the same files: {floor:.2f} s)")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
