"""A local stand-in for OONI's public bucket: moto's S3 server on 127.0.0.1, filled with
files in OONI's layouts, and an HTTP proxy in front of it that can cut or stall a
download half way (the interruptions the sync must survive)."""

from __future__ import annotations

import gzip
import http.client
import http.server
import io
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import lz4.frame
import orjson

BUCKET = "ooni-data-eu-fra"
LEGACY = "ooni-data"
PART = 64 * 1024  # part size of the multipart uploads (moto is told to accept it)
NOT_FORWARDED = ("connection", "transfer-encoding", "content-length", "server", "date")


def measurement(cc: str, test_name: str, start: str, n: int, pad: int = 0) -> dict[str, Any]:
    """An OONI-shaped measurement (df-000-base envelope); ``pad`` random hex characters
    make it large and incompressible."""
    compact = test_name.replace("_", "")
    m: dict[str, Any] = {
        "annotations": {"platform": "linux"},
        "data_format_version": "0.2.0",
        "input": f"https://site{n}.example.org/" if test_name == "web_connectivity" else None,
        "measurement_start_time": start,
        "probe_asn": "AS58224",
        "probe_cc": cc,
        "probe_ip": "127.0.0.1",
        "report_id": f"20240201T000000Z_{compact}_{cc}_58224_n1_{n:016d}",
        "software_name": "ooniprobe-cli",
        "software_version": "3.20.0",
        "test_keys": {"n": n},
        "test_name": test_name,
        "test_runtime": 1.5,
        "test_start_time": start,
        "test_version": "0.4.3",
    }
    if pad:
        m["x_pad"] = os.urandom(pad // 2).hex()
    return m


def jsonl_gz(rows: list[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows), mtime=0)


def tar_lz4(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return bytes(lz4.frame.compress(buf.getvalue()))


def lines(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


@dataclass
class Archive:
    """What the fake bucket holds, and what an IR sync should bring home."""

    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    multipart: set[str] = field(default_factory=set)
    can_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # IR rows per can

    def put(self, key: str, data: bytes, bucket: str = BUCKET) -> None:
        self.objects[(bucket, key)] = data

    def keys(self, pattern: str, bucket: str = BUCKET) -> list[str]:
        rx = re.compile(pattern)
        return sorted(k for b, k in self.objects if b == bucket and rx.search(k))


def build_archive() -> Archive:
    """Three days of raw/ (several hours, IR and DE, webconnectivity and telegram, a
    postcan, a multipart file), jsonl/ and cans for 2019-11-16, a 2020 can."""
    a = Archive()
    n = 0
    for day in ("20240201", "20240202", "20240203"):
        for hour in ("00", "07", "23"):
            for cc in ("IR", "DE"):
                for test in ("web_connectivity", "telegram"):
                    t = test.replace("_", "")
                    d = f"{day[:4]}-{day[4:6]}-{day[6:]}"
                    rows = [measurement(cc, test, f"{d} {hour}:0{i}:00", n + i) for i in range(3)]
                    n += 3
                    base = f"raw/{day}/{hour}/{cc}/{t}/{day}{hour}_{cc}_{t}.n1"
                    a.put(f"{base}.0.jsonl.gz", jsonl_gz(rows))
                    a.put(f"{base}.0.tar.gz", b"postcan, never fetched")
    # A large web_connectivity file uploaded in parts (as OONI's uploader does above 8 MB).
    start = "2024-02-02 07:30:00"
    rows = [measurement("IR", "web_connectivity", start, 900 + i, 40_000) for i in range(6)]
    big = "raw/20240202/07/IR/webconnectivity/2024020207_IR_webconnectivity.n1.1.jsonl.gz"
    a.put(big, jsonl_gz(rows))
    a.multipart.add(big)
    # Before 2020-10-21: jsonl/ per test, country and day ...
    for cc in ("IR", "DE"):
        for test in ("web_connectivity", "telegram"):
            t = test.replace("_", "")
            rows = [measurement(cc, test, "2019-11-16 10:00:00", 500 + i) for i in range(4)]
            a.put(f"jsonl/{t}/{cc}/20191116/00/20191116_{cc}_{t}.l.0.jsonl.gz", jsonl_gz(rows))
    # ... and the original cans (legacy bucket), every country in one can per test.
    for test in ("web_connectivity", "telegram"):
        ir = [measurement("IR", test, "2019-11-16 10:00:00", 600 + i) for i in range(5)]
        de = [measurement("DE", test, "2019-11-16 11:00:00", 700 + i) for i in range(2)]
        rid = "20191116T100000Z_AS58224_x"
        members = {
            f"2019-11-16/20191116T100000Z-IR-AS58224-{test}-{rid}1-0.2.0-probe.json": lines(ir[:3]),
            f"2019-11-16/20191116T110000Z-DE-AS3320-{test}-{rid}2-0.2.0-probe.json": lines(de),
            f"2019-11-16/20191116T120000Z-IR-AS44244-{test}-{rid}3-0.2.0-probe.json": lines(ir[3:]),
            f"2019-11-16/20191116T130000Z-IR-AS44244-{test}-{rid}4-0.2.0-probe.yaml": b"---\n",
        }
        key = f"canned/2019-11-16/{test}.0.tar.lz4"
        a.put(key, tar_lz4(members), LEGACY)
        a.can_rows[key] = ir
    a.put("canned/2019-11-16/index.json.gz", gzip.compress(b"{}"), LEGACY)
    # 2020's cans live in the main bucket, with single lz4 reports beside them.
    ir = [measurement("IR", "web_connectivity", "2020-07-01 09:00:00", 800 + i) for i in range(2)]
    report = (
        "canned/2020-07-01/20200701T090000Z-IR-AS58224-web_connectivity-"
        "20200701T090000Z_AS58224_y-0.2.0-probe.json.lz4"
    )
    a.put(report, bytes(lz4.frame.compress(lines(ir))))
    a.can_rows[report] = ir
    de = [measurement("DE", "web_connectivity", "2020-07-01 09:10:00", 850)]
    a.put(
        report.replace("-IR-", "-DE-").replace("_y-", "_z-"), bytes(lz4.frame.compress(lines(de)))
    )
    # A damaged can upstream (its ETag is right: the bytes are not a can).
    a.put("canned/2019-11-17/web_connectivity.0.tar.lz4", b"not an lz4 frame", LEGACY)
    ok = [measurement("IR", "telegram", "2019-11-17 08:00:00", 870)]
    members = {"x/20191117T080000Z-IR-AS58224-telegram-r-0.2.0-probe.json": lines(ok)}
    a.put("canned/2019-11-17/telegram.0.tar.lz4", tar_lz4(members), LEGACY)
    return a


def public_read(bucket: str) -> dict[str, Any]:
    """Anonymous list and read, as AWS Open Data buckets such as OONI's allow."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def upload(endpoint: str, archive: Archive) -> None:
    s3 = s3_client(endpoint)
    for bucket in (BUCKET, LEGACY):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=orjson.dumps(public_read(bucket)).decode())
    for (bucket, key), data in archive.objects.items():
        if key not in archive.multipart:
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            continue
        up = s3.create_multipart_upload(Bucket=bucket, Key=key)
        parts = []
        for i in range(0, len(data), PART):
            r = s3.upload_part(
                Bucket=bucket, Key=key, PartNumber=len(parts) + 1,
                UploadId=up["UploadId"], Body=data[i : i + PART],
            )  # fmt: skip
            parts.append({"PartNumber": len(parts) + 1, "ETag": r["ETag"]})
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
        )


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1 (a free port), stopped by its process id."""

    def __init__(self, workdir: Path) -> None:
        self.log = workdir / "moto.log"
        env = dict(os.environ, S3_UPLOAD_PART_MIN_SIZE=str(PART))
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            m = re.search(rb"Running on http://127\.0\.0\.1:(\d+)", self.log.read_bytes())
            if m:
                self.port = int(m[1])
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Proxy:
    """An HTTP proxy to moto on 127.0.0.1 that logs every request and, once per armed
    key, sends only the first N bytes of an object's body and then drops the connection
    (``cut``) or holds it until released (``stall``), or answers 503 SlowDown (``503``)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.log: list[tuple[str, str, str | None]] = []  # (method, key, Range)
        self.armed: dict[str, tuple[str, int]] = {}
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self, "GET")

            def do_HEAD(self) -> None:
                proxy.forward(self, "HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def arm(self, key: str, how: str, nbytes: int) -> None:
        self.armed[key] = (how, nbytes)

    def gets(self, key: str) -> list[str | None]:
        """The Range header of every GET of ``key`` (None: the whole object)."""
        return [r for m, k, r in self.log if m == "GET" and k == key]

    def forward(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        path = urllib.parse.urlsplit(h.path).path
        key = urllib.parse.unquote(path.split("/", 2)[2]) if path.count("/") >= 2 else ""
        with self.lock:
            self.log.append((method, key, h.headers.get("Range")))
            cut = self.armed.pop(key, None) if method == "GET" else None
        if cut is not None and cut[0] == "503":
            slow = b"<Error><Code>SlowDown</Code><Message>Slow down.</Message></Error>"
            h.send_response(503)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(slow)))
            h.end_headers()
            h.wfile.write(slow)
            return
        up = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        skip = ("host", "connection", "accept-encoding")
        headers = {k: v for k, v in h.headers.items() if k.lower() not in skip}
        up.request(method, h.path, headers=headers)
        resp = up.getresponse()
        body = resp.read()
        up.close()
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in NOT_FORWARDED:
                h.send_header(k, v)
        length = resp.getheader("content-length") if method == "HEAD" else str(len(body))
        h.send_header("Content-Length", length or "0")
        h.end_headers()
        if method == "HEAD":
            return
        if cut is None:
            h.wfile.write(body)
            return
        how, n = cut
        h.wfile.write(body[:n])
        h.wfile.flush()
        if how == "stall":
            self.stalled.set()
            self.release.wait(60)
        h.close_connection = True
        h.connection.close()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def run_sync(*args: str, endpoint: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``didban ooni sync --endpoint-url ENDPOINT ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "didban.cli", "ooni", "sync", "--endpoint-url", endpoint, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, COLUMNS="200"),
    )
