"""``didban ingest``: bulk-load measurement files into the store, resumably.

Accepted inputs are what ``didban analyze`` reads, read by the same code
(``didban.files``): OONI public archive files (``.jsonl.gz``), zstd JSONL (``.jsonl.zst``,
didban's own archive files included), plain ``.jsonl`` / ``.ndjson`` (one JSON document
per line) and ``.json`` (a single JSON document that spans the file, as OONI's
single-measurement files are, or JSONL), and directories of them (walked recursively, in
name order).

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
from typing import Any

import orjson

from didban.files.kinds import iter_files, supported
from didban.files.reader import iter_records
from didban.files.streams import UNREADABLE
from didban.model.admission import TOO_DEEP, measurement_refusal
from didban.store.store import Store

BATCH = 2000


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
        if p.is_dir():  # one without measurement files is an empty input, not a problem
            out.extend(iter_files([p]))
        elif p.is_file():
            if supported(p):
                out.append(p)
            else:
                problems.append(
                    f"{p}: not a measurement file (.jsonl.gz, .jsonl.zst, .jsonl, .json)"
                )
        else:
            problems.append(f"{p}: no such file or directory")
    return out, problems


def check(m: Any) -> str | None:
    """Why a decoded record cannot be stored, or None: the rules every entry applies."""
    return measurement_refusal(m)


def records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, record, error) for every record of ``path``, read as ``didban analyze``
    reads it (both keep the same records of a truncated archive, and both notice the
    truncation)."""
    for rec in iter_records(path):
        try:
            yield rec.line, orjson.loads(rec.data), None
        except orjson.JSONDecodeError as exc:
            deep = "depth" in str(exc) or "recursion" in str(exc)  # orjson's limit: 1024
            yield rec.line, None, TOO_DEEP if deep else f"not valid JSON ({exc})"


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
        except UNREADABLE as exc:
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
