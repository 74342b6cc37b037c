"""``didban ingest``: bulk-load measurement files into the store, resumably.

Accepted inputs: OONI public archive files (``.jsonl.gz``), zstd JSONL (``.jsonl.zst``,
didban's own archive files included), plain ``.jsonl`` / ``.json`` (one JSON document per
line, or a single JSON document that spans the file, as OONI's single-measurement
files do), and directories of them (walked recursively, in name order).

Each record is checked by ``model.admission.measurement_refusal``, the rules the
collector applies too (only what storing and querying need, so old or odd OONI data is
kept); a bad record is reported as ``file:line: reason`` and skipped, never fatal. A file
finished without error is recorded in the ledger by (absolute path, size, mtime), so a
second run skips it; a run killed half way re-reads
the file and the content-hash de-duplication drops what was already stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import zstandard

from didban.analysis.batch import open_stream
from didban.model.admission import measurement_refusal
from didban.store.store import Store

BATCH = 2000
SUFFIXES = (".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".jsonl", ".json")


@dataclass
class Report:
    files: int = 0
    skipped_files: int = 0
    records: int = 0
    added: int = 0
    duplicates: int = 0
    bad: list[str] = field(default_factory=list)
    bytes_read: int = 0


def discover(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Input files under ``paths`` (in order) and one problem sentence per unusable path."""
    out: list[Path] = []
    problems: list[str] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(SUFFIXES))
            if not found:
                problems.append(f"{p}: no measurement files (.jsonl.gz, .jsonl.zst, .jsonl, .json)")
            out.extend(found)
        elif p.is_file():
            if p.name.endswith(SUFFIXES):
                out.append(p)
            else:
                problems.append(
                    f"{p}: not a measurement file (.jsonl.gz, .jsonl.zst, .jsonl, .json)"
                )
        else:
            problems.append(f"{p}: no such file or directory")
    return out, problems


def _open(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed exactly as ``didban analyze`` reads them (so both
    keep the same records of a truncated archive, and both notice the truncation)."""
    name = path.name
    comp = ".gz" if name.endswith(".gz") else ".zst" if name.endswith(".zst") else ""
    return open_stream(path, comp)


def check(m: Any) -> str | None:
    """Why a decoded record cannot be stored, or None: the rules every entry applies."""
    return measurement_refusal(m)


def records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, record, error) for every record of ``path``."""
    with _open(path) as fh:
        data_iter = iter(fh)
        first = next(data_iter, None)
        if first is None:
            return
        rest = b""
        if first.lstrip().startswith(b"{") and not _is_complete(first):
            # A single JSON document spanning the file (pretty-printed .json).
            rest = first + b"".join(data_iter)
            try:
                yield 1, orjson.loads(rest), None
            except orjson.JSONDecodeError as exc:
                yield 1, None, f"not valid JSON ({exc})"
            return
        for n, line in enumerate([first], start=1):
            yield _decode(n, line)
        for n, line in enumerate(data_iter, start=2):
            if line.strip():
                yield _decode(n, line)


def _is_complete(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _decode(n: int, line: bytes) -> tuple[int, Any, str | None]:
    try:
        return n, orjson.loads(line), None
    except orjson.JSONDecodeError as exc:
        return n, None, f"not valid JSON ({exc})"


def _commit(store: Store, batch: list[dict[str, Any]], rep: Report) -> int:
    """Store ``batch`` (then empty it); returns how many were new."""
    if not batch:
        return 0
    added = 0
    for a in store.add_batch(batch):
        if a.duplicate:
            rep.duplicates += 1
        else:
            added += 1
    store.flush()
    batch.clear()
    return added


def ingest(
    store: Store,
    paths: list[Path],
    on_bytes: Callable[[int], None] | None = None,
    on_file: Callable[[Path, bool], None] | None = None,
) -> Report:
    """Load every file under ``paths``; see the module docstring for the rules."""
    files, problems = discover(paths)
    rep = Report(bad=list(problems))
    for path in files:
        st = path.stat()
        key = str(path.resolve())
        if store.index.ledger_done(key, st.st_size, st.st_mtime_ns):
            rep.skipped_files += 1
            if on_file:
                on_file(path, True)
            if on_bytes:
                on_bytes(st.st_size)
            continue
        n_records = added = bad = 0
        batch: list[dict[str, Any]] = []
        try:
            for line_no, rec, err in records(path):
                n_records += 1
                err = err or check(rec)
                if err:
                    bad += 1
                    rep.bad.append(f"{path}:{line_no}: {err}")
                    continue
                batch.append(rec)
                if len(batch) >= BATCH:
                    added += _commit(store, batch, rep)
            added += _commit(store, batch, rep)
        except (OSError, EOFError, zstandard.ZstdError) as exc:
            rep.bad.append(f"{path}: unreadable ({exc})")
            added += _commit(store, batch, rep)
            rep.files += 1
            rep.records += n_records
            rep.added += added
            continue
        store.index.ledger_record(
            key, st.st_size, st.st_mtime_ns, n_records, added, bad, datetime.now(UTC).isoformat()
        )
        rep.files += 1
        rep.records += n_records
        rep.added += added
        rep.bytes_read += st.st_size
        if on_file:
            on_file(path, False)
        if on_bytes:
            on_bytes(st.st_size)
    return rep
