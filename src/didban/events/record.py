"""Event records: the public JSONL format of detected events, their stable ids, atomic files.

One event is one JSON object per line with exactly the fields of ``Event`` (docs/events.md
"Event format"). Times are ISO 8601 UTC strings (``2026-01-08T14:00:00Z``). The ``id`` is
derived from the content that names the event — source, kind, country, target, scope
key and the first changed bucket — so running the detector again over the same grid
(a backfill, late data that does not move the onset) gives the same id.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import msgspec

Kind = Literal["block", "unblock", "shutdown", "outage", "nin"]
KINDS: Final = ("block", "unblock", "shutdown", "outage", "nin")
WITNESS_CAP: Final = 20  # measurement uids kept per event


class Event(msgspec.Struct, kw_only=True):
    id: str
    kind: Kind
    cc: str
    asns: list[int]
    target: str | None
    layer: str | None
    method: str | None
    onset_after: str | None
    onset_before: str
    resolved_after: str | None
    resolved_before: str | None
    confidence: float
    n_measurements: int
    n_probes: int
    witnesses: list[str]
    source: str
    known_event: str | None = None


class EventFileError(ValueError):
    """An events file that cannot be read (the message is one sentence for the user)."""


def iso(t: datetime | None) -> str | None:
    """UTC ISO 8601 with a ``Z`` (naive datetimes are taken as UTC)."""
    if t is None:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s: str) -> datetime:
    """An ISO 8601 time (``Z`` or offset, or naive = UTC) as a naive UTC datetime."""
    t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def event_id(source: str, kind: str, cc: str, target: str | None, scope: str, onset: str) -> str:
    """``ev-`` and 16 hex digits of SHA-256 over the fields that name the event.

    ``scope`` is the clustering key that is not the target (an ASN for a per-network
    event, ``*`` for a country-wide one); ``onset`` is ``onset_before``."""
    text = "\x1f".join((source, kind, cc, target or "", scope, onset))
    return "ev-" + hashlib.sha256(text.encode()).hexdigest()[:16]


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Event)


def dumps(e: Event) -> bytes:
    return _ENCODER.encode(e)


def write_jsonl(path: Path, events: Iterable[Event]) -> int:
    """Write ``events`` to ``path`` atomically; returns the count."""
    return write_lines(path, (_ENCODER.encode(e) for e in events))


def write_lines(path: Path, lines: Iterable[bytes]) -> int:
    """Write one line per item to ``path`` atomically (temporary file, fsync, rename): a
    reader sees the old file or the whole new one, never half of it. Returns the count."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    n = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            for line in lines:
                fh.write(line + b"\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return n


def read_jsonl(path: Path) -> Iterator[Event]:
    """The events of a JSONL file; a line that is not an event raises ``EventFileError``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EventFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield _DECODER.decode(line)
        except msgspec.DecodeError as exc:
            raise EventFileError(f"{path}:{lineno}: not a didban event ({exc})") from None
