"""One country's reports out of OONI's legacy cans, as ``.jsonl.gz`` that ingest reads.

A can (``canned/<YYYY-MM-DD>/<test_name>.<n>.tar.lz4``) is an LZ4 frame (python-lz4,
``lz4.frame``) around a tar of report files, one per probe run, named
``<YYYYMMDD>T<HHMMSS>Z-<CC>-AS<n>-<test_name>-<report id>-<version>-probe.json`` and
holding one JSON measurement per line (ooni/data ``dataclient.py``; ``ooni-backend.md`` §4).
The tar is read as a stream (``tarfile`` mode ``r|``), so memory stays small whatever the
can's size; only members whose name carries the wanted country are copied. Reports in
the legacy YAML format (``*.yaml``, before 2016) are counted and skipped: didban reads
JSON measurements only. A ``*.json.lz4`` report (single reports beside the cans in 2020)
is one LZ4 frame around such a JSON report.

The output is written to a temporary name, fsynced and renamed, so an interrupted
extraction leaves no half file.
"""

from __future__ import annotations

import gzip
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import lz4.frame

from didban.store.oonisync.selection import member_cc

COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Extract:
    reports: int  # report files of the country
    measurements: int  # lines written
    yaml_skipped: int  # reports of the country in the unsupported YAML format


class BadCan(Exception):
    """The can cannot be read (damaged or not an lz4 tar)."""


def _copy_lines(src: IO[bytes], out: gzip.GzipFile) -> int:
    n = 0
    tail = b""
    while chunk := src.read(COPY_CHUNK):
        out.write(chunk)
        n += chunk.count(b"\n")
        tail = chunk[-1:]
    if tail and tail != b"\n":
        out.write(b"\n")
        n += 1
    return n


def _finish(tmp: Path, out: Path, written: int) -> None:
    if written == 0:
        tmp.unlink(missing_ok=True)
        return
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(out)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def extract_can(can: Path, cc: str, out: Path) -> Extract:
    """Copy the measurements of reports from ``cc`` in ``can`` into ``out`` (gzip JSONL);
    nothing is written when the can holds none."""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    reports = measurements = yaml = 0
    try:
        with (
            lz4.frame.open(can, "rb") as raw,
            tarfile.open(fileobj=raw, mode="r|") as tar,
            gzip.open(tmp, "wb", compresslevel=6) as gz,
        ):
            for member in tar:
                if not member.isfile() or member_cc(member.name) != cc:
                    continue
                if member.name.endswith((".yaml", ".yml")):
                    yaml += 1
                    continue
                if not member.name.endswith(".json"):
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                reports += 1
                measurements += _copy_lines(src, gz)
    except (tarfile.TarError, RuntimeError, OSError, EOFError) as exc:
        tmp.unlink(missing_ok=True)
        raise BadCan(f"{can.name}: not a readable tar.lz4 can ({exc})") from None
    _finish(tmp, out, measurements)
    return Extract(reports, measurements, yaml)


def extract_report(report: Path, out: Path) -> Extract:
    """A ``*.json.lz4`` report as gzip JSONL."""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        with lz4.frame.open(report, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as gz:
            measurements = _copy_lines(src, gz)
    except (RuntimeError, OSError, EOFError) as exc:
        tmp.unlink(missing_ok=True)
        raise BadCan(f"{report.name}: not a readable lz4 report ({exc})") from None
    _finish(tmp, out, measurements)
    return Extract(1, measurements, 0)
