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
finished without error is recorded in the ledger by (absolute path, size, mtime) once all
its measurements are in the archive and the tables, so a second run skips it; a run
killed half way re-reads the file and the content-hash de-duplication drops what was
already stored.

The work is split as ``didban analyze`` splits it (``didban.files.pool``): worker
processes, one per usable CPU, each take a block of about 8 MB of records and derive
everything from it (``store.derive``: admission, content hash, verdict, the archive frame,
the table rows as Arrow batches); this process decompresses the files into blocks, judges
runs, de-duplicates, appends the frames and writes the Parquet files in large batches
(``store.bulk``). Memory stays bounded by the blocks in flight and one table batch,
whatever the size of the input; each process keeps the memory it frees between blocks
(``store.heap``) rather than faulting it in again for the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from didban.files import pool
from didban.files.kinds import iter_files, supported
from didban.files.tasks import CHUNK_BYTES
from didban.store import heap
from didban.store.bulk import BulkLoader
from didban.store.derive import Classifier, Derived, Options, derive_block
from didban.store.store import Store


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


def _derive(
    records: list[tuple[int, bytes]], options: Options, classifier: Classifier | None
) -> Derived:
    """``derive_block`` in a worker process, which keeps the memory it frees
    (``store.heap``)."""
    heap.keep_freed_memory()
    return derive_block(records, options, classifier)


@dataclass
class _File:
    path: Path
    key: str  # absolute path, the ledger's key
    size: int
    mtime_ns: int
    records: int = 0  # read (kept and refused)
    bad: int = 0
    tabled: int = 0  # kept records now in the tables
    added: int = 0
    kept: int = 0  # kept records (known once the file ends)
    ended: bool = False
    failed: bool = False


def ingest(
    store: Store,
    paths: list[Path],
    on_bytes: Callable[[int], None] | None = None,
    on_file: Callable[[Path, bool], None] | None = None,
    jobs: int = 0,
    block_bytes: int = CHUNK_BYTES,
) -> Report:
    """Load every file under ``paths``; see the module docstring for the rules. ``jobs``:
    worker processes (0: one per usable CPU; 1: none); a store with a caller's own
    classifier derives in this process. ``block_bytes``: bytes of records per block."""
    files, problems = discover(paths)
    rep = Report(bad=list(problems))
    todo: list[_File] = []
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
        todo.append(_File(path, key, st.st_size, st.st_mtime_ns))
    if not todo:
        return rep
    heap.keep_freed_memory()
    custom = store.custom_classifier
    work = partial(_derive, options=store.derive_options, classifier=custom)
    jobs = 1 if custom is not None else pool.jobs_for([f.path for f in todo], jobs)

    def done(f: _File) -> None:
        """Ledger and report once the whole file is stored."""
        if f.failed:
            return
        store.index.ledger_record(
            f.key, f.size, f.mtime_ns, f.records, f.added, f.bad, datetime.now(UTC).isoformat()
        )
        rep.bytes_read += f.size
        if on_file:
            on_file(f.path, False)

    def tabled(seq: int, n: int, added: int) -> None:
        f = todo[seq]
        f.tabled += n
        f.added += added
        rep.added += added
        if f.ended and f.tabled == f.kept:
            done(f)

    loader = BulkLoader(store, on_tabled=tabled)
    for item in pool.map_blocks([f.path for f in todo], work, jobs=jobs, block_bytes=block_bytes):
        f = todo[item.seq]
        if isinstance(item, pool.FileEnd):
            f.ended = True
            rep.files += 1
            if item.error is not None:
                f.failed = True
                rep.bad.append(item.error)
            if on_bytes:
                on_bytes(f.size)
            if f.tabled == f.kept:
                done(f)
            continue
        d = item.result
        f.records += len(d) + len(d.refused)
        f.kept += len(d)
        f.bad += len(d.refused)
        rep.records += len(d) + len(d.refused)
        rep.bad.extend(f"{f.path}:{item.base + line}: {why}" for line, why in d.refused)
        loader.add(item.seq, d)
    loader.finish()
    rep.duplicates = loader.counts.duplicates
    return rep
