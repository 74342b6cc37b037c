"""What a destination directory already holds, verified: an append-only manifest.

``<dest>/.didban-sync/manifest.ndjson`` has one JSON line per verified file: the object
(bucket, key, size, ETag), the local file (path relative to ``dest``, size, mtime in ns)
and how it was verified. A later sync trusts a line only while the local file still has
that size and mtime and the bucket still lists the same ETag and size; anything else is
hashed again (``--verify`` hashes everything). A line is written after its file was
verified and renamed into place, and fsynced; a line torn by a crash is ignored, and the
file it described is simply verified again.

A sync holds ``<dest>/.didban-sync/lock`` (``flock``) for its whole run, so two syncs
never write into one directory at once.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Final

import orjson

STATE_DIR: Final = ".didban-sync"


class DestBusy(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    bucket: str
    key: str
    size: int
    etag: str
    path: str  # relative to dest (a can's extract; absent when it held no report of the CC)
    file_size: int
    mtime_ns: int
    verified: str  # "md5", "multipart md5", "size"
    part_size: int = 0  # the part size that reproduced a multipart ETag
    measurements: int = -1  # cans: lines extracted; -1 for plain downloads
    file_md5: str = ""  # cans: MD5 of the extract, for --verify

    def still_matches(self, dest: Path, size: int, etag: str) -> bool:
        """The bucket lists the same object and the local file is untouched since."""
        if (self.size, self.etag) != (size, etag):
            return False
        if self.measurements == 0:
            return True  # a can without reports of this country: nothing was written
        try:
            st = (dest / self.path).stat()
        except OSError:
            return False
        return (st.st_size, st.st_mtime_ns) == (self.file_size, self.mtime_ns)


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class Manifest:
    """The manifest and lock of one destination; use as a context manager."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.dir = dest / STATE_DIR
        self.entries: dict[tuple[str, str, str], Entry] = {}
        self._lock: IO[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Manifest:
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = (self.dir / "lock").open("a+b")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise DestBusy(
                f"{self.dest} is being synced by another process; wait for it to finish"
            ) from None
        self._lock = lock
        path = self.dir / "manifest.ndjson"
        if path.exists():
            for line in path.read_bytes().splitlines():
                try:
                    e = Entry(**orjson.loads(line))
                except (orjson.JSONDecodeError, TypeError):
                    continue  # a line torn by a crash
                self.entries[(e.bucket, e.key, e.path)] = e
        self._log = path.open("ab")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._log:
            self._log.close()
        if self._lock:
            self._lock.close()

    def find(self, bucket: str, key: str, path: str) -> Entry | None:
        return self.entries.get((bucket, key, path))

    def for_object(self, bucket: str, key: str) -> list[Entry]:
        return [e for (b, k, _), e in self.entries.items() if (b, k) == (bucket, key)]

    def record(self, entry: Entry) -> None:
        assert self._log is not None
        self._log.write(orjson.dumps(asdict(entry)) + b"\n")
        self._log.flush()
        os.fsync(self._log.fileno())
        self.entries[(entry.bucket, entry.key, entry.path)] = entry
