"""Is a local file the object the bucket listed? Size, then the ETag's MD5.

An S3 ETag is the hex MD5 of the object for a single-part upload (unless the object is
encrypted with a customer or KMS key, which OONI's public objects are not). For a
multipart upload it is ``<md5 of the concatenated binary MD5s of the parts>-<N parts>``,
so checking it needs the part size. That size is taken from the server when it says
(``HEAD ?partNumber=1``, AWS and most S3-compatible stores); otherwise every common
client default that gives N parts for this size is tried in one pass (8 MiB: aws-cli and
boto3; 5, 15, 16 MiB and a few larger). A multipart ETag that no known part size
reproduces cannot tell a damaged file from an unusual upload: such a file is accepted
on its size alone, and reported as "verified by size only".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

MIB: Final = 1024 * 1024
COMMON_PART_SIZES: Final = tuple(
    n * MIB for n in (8, 5, 16, 15, 10, 32, 50, 64, 100, 128, 256, 512)
)
_ETAG: Final = re.compile(r"^([0-9a-f]{32})(?:-(\d+))?$")
BLOCK: Final = MIB


@dataclass(frozen=True)
class Check:
    ok: bool
    how: str  # "md5", "multipart md5", "size"; or why it failed
    part_size: int | None = None


def etag_parts(etag: str) -> tuple[str, int] | None:
    """(hex digest, number of parts; 0 for a single-part upload), or None when the ETag is
    not an MD5 of either kind."""
    m = _ETAG.match(etag.strip('"').lower())
    if not m:
        return None
    return m[1], int(m[2]) if m[2] else 0


def candidate_part_sizes(size: int, parts: int, hint: int | None) -> list[int]:
    if hint:
        return [hint]
    return [p for p in COMMON_PART_SIZES if -(-size // p) == parts]


@dataclass
class _Multipart:
    """The running multipart MD5 of one candidate part size."""

    part_size: int
    digests: list[bytes] = field(default_factory=list)
    current: Any = field(default_factory=hashlib.md5)
    filled: int = 0

    def update(self, block: memoryview) -> None:
        while block:
            take = min(len(block), self.part_size - self.filled)
            self.current.update(block[:take])
            self.filled += take
            block = block[take:]
            if self.filled == self.part_size:
                self.digests.append(self.current.digest())
                self.current, self.filled = hashlib.md5(), 0

    def etag(self) -> str:
        digests = self.digests + ([self.current.digest()] if self.filled else [])
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def check(path: Path, size: int, etag: str, part_size_hint: int | None = None) -> Check:
    """Compare ``path`` with a listed object of ``size`` bytes and ``etag``."""
    try:
        actual = path.stat().st_size
    except OSError:
        return Check(False, "missing")
    if actual != size:
        return Check(False, f"size {actual} instead of {size}")
    parsed = etag_parts(etag)
    if parsed is None:
        return Check(True, "size")
    digest, parts = parsed
    whole = hashlib.md5() if parts == 0 else None
    runs = [_Multipart(p) for p in candidate_part_sizes(size, parts, part_size_hint)]
    if whole is None and not runs:
        return Check(True, "size")
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            if whole is not None:
                whole.update(view[:n])
            for run in runs:
                run.update(view[:n])
    if whole is not None:
        if whole.hexdigest() == digest:
            return Check(True, "md5")
        return Check(False, "MD5 differs from the ETag")
    want = f"{digest}-{parts}"
    for run in runs:
        if run.etag() == want:
            return Check(True, "multipart md5", run.part_size)
    if part_size_hint:
        return Check(False, "multipart MD5 differs from the ETag")
    return Check(True, "size")
