"""The parent side of a bulk load: blocks derived elsewhere (``store.derive``) into the store.

``BulkLoader.add(block)`` takes one ``Derived`` block (records in input order) and:

1. **judges runs**: every kept record's verdict goes through ``analysis.nin.Runs``, the
   run-level pass of ``didban analyze``, over the same sequence (duplicates included, as
   ``analyze`` sees them), so the stored verdicts are the ones ``analyze`` prints;
2. **archives** in groups of about ``GROUP`` records: content-hash de-duplication against
   the index and within the run, the blocks' zstd frames appended to their archive files
   (a frame holding a duplicate is rebuilt without it), one ``fsync`` per file, then one
   index commit — the store's durability rule: on disk before the index says so;
3. **writes the tables** once a block is archived and every verdict in it judged: the
   blocks' Arrow rows, duplicates filtered out, concatenated per (table, day) and written
   as one Parquet file each (``TableWriter.write_tables``: the crash protocol of every
   flush), about every ``TABLE_ROWS`` measurements.

A record whose verdict the run-level pass changed, or whose uid was already taken by
another measurement, has its rows built again here from its archived line (rare: the
uid case is a 64-bit hash clash or a reused OONI uid; such a record judged inside its
block gets the verdict of the record alone, as the collector would give it).
``finish()`` judges the last run
and writes everything; ``on_tabled`` is told how many records of each file reached the
tables (and how many were new), so the caller can record a file in the ledger only once
all of it is stored.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import zstandard

from didban.files.durable import fsync_dir
from didban.model.verdict import Verdict
from didban.store import archive, rows
from didban.store.derive import VERDICT, Derived, asn_db
from didban.store.index import NewRow
from didban.store.runs import Item, Stitch
from didban.store.schema import TABLES
from didban.store.store import Store
from didban.store.uid import make_uid, uid_time

GROUP: Final = 8_192  # records per archive commit (one fsync per file, one index commit)
TABLE_ROWS: Final = 16_384  # measurements per table flush (one Parquet file per table and day)


@dataclass
class Counters:
    added: int = 0
    duplicates: int = 0


@dataclass(eq=False)
class _Block:
    """A derived block on its way into the store."""

    seq: int  # the input file it came from
    d: Derived
    fresh: np.ndarray | None = None  # after archiving: which records are new
    uids: list[str] = field(default_factory=list)  # final uids (a taken one is moved)
    unjudged: int = 0  # records still buffered by the run-level pass
    changed: dict[int, Verdict] = field(default_factory=dict)  # relabelled by the run pass
    rederive: set[int] = field(default_factory=set)  # rows to build again from the archive
    decoded: dict[int, Verdict] = field(default_factory=dict)  # open records' own verdicts
    places: dict[int, tuple[str, int, int, int]] = field(default_factory=dict)  # archived
    # where an open or moved record lies in the archive (file, offset, length, line)


class BulkLoader:
    def __init__(
        self, store: Store, on_tabled: Callable[[int, int, int], None] | None = None
    ) -> None:
        self.store = store
        self.on_tabled = on_tabled
        self.counts = Counters()
        self.stitch: Stitch[tuple[_Block, int]] = Stitch(open_start=False)
        self.to_archive: list[_Block] = []
        self.archived: list[_Block] = []  # in order, waiting for their verdicts
        self.ready: list[_Block] = []
        self._pending_records = 0
        self._ready_records = 0

    # ------------------------------------------------------------------ input
    def add(self, seq: int, d: Derived) -> None:
        """Take the next block (see the module docstring)."""
        block = _Block(seq, d, uids=list(d.uids))
        self._judged(self.stitch.add_all(self._open(block, d.head)))
        if d.split:
            self._judged(self.stitch.split())
        self._judged(self.stitch.add_all(self._open(block, d.tail)))
        self.to_archive.append(block)
        self._pending_records += len(d)
        if self._pending_records >= GROUP:
            self._archive()
        self._advance()

    def _open(self, block: _Block, records: list[int]) -> list[Item[tuple[_Block, int]]]:
        """The block's open records as items for the stitch, their verdicts unpacked."""
        out: list[Item[tuple[_Block, int]]] = []
        for i in records:
            packed, no_control, rate = block.d.open[i]
            v = block.decoded[i] = VERDICT.decode(packed)
            block.unjudged += 1
            out.append(((block, i), v, no_control, rate))
        return out

    def finish(self) -> None:
        self._judged(self.stitch.flush())
        self._archive()
        self._advance()
        self._write_tables()

    def _judged(self, items: Iterable[tuple[tuple[_Block, int], Verdict]]) -> None:
        for (block, i), v in items:
            block.unjudged -= 1
            if v is not block.decoded[i]:
                block.changed[i] = v

    # ------------------------------------------------------------------ archive
    def _archive(self) -> None:
        blocks, self.to_archive, self._pending_records = self.to_archive, [], 0
        if not blocks:
            return
        index = self.store.index
        hashes = list(dict.fromkeys(h for b in blocks for h in b.d.hashes))
        known = index.uids_for_hashes(hashes)
        fresh_uids: dict[str, str] = {}  # hash -> uid of the first copy in this group
        for b in blocks:
            mask = np.zeros(len(b.d), dtype=bool)
            for i, h in enumerate(b.d.hashes):
                if h in known or h in fresh_uids:
                    self.counts.duplicates += 1
                    continue
                mask[i] = True
                fresh_uids[h] = b.uids[i]
            b.fresh = mask
        self._move_taken_uids(blocks, fresh_uids)
        new_rows, sizes = self._append_frames(blocks)
        if new_rows:
            index.add(new_rows, sizes)
        self.counts.added += len(fresh_uids)
        for b in blocks:
            b.d.frames = []  # on disk now; an open record is read back from there
        self.archived.extend(blocks)

    def _move_taken_uids(self, blocks: list[_Block], fresh_uids: dict[str, str]) -> None:
        """A new measurement whose uid another one holds gets one a microsecond later
        (as ``Store.add_batch`` does); its line and rows are made again."""
        taken = self.store.index.existing_uids(list(fresh_uids.values()))
        used: set[str] = set()
        for b in blocks:
            assert b.fresh is not None
            for i in map(int, np.flatnonzero(b.fresh)):
                uid = b.uids[i]
                new = uid
                while new in taken or new in used:
                    when = (uid_time(new) or datetime.now(UTC)) + timedelta(microseconds=1)
                    parts = new.split("_")
                    new = make_uid(when, parts[1], parts[2], b.d.hashes[i])
                used.add(new)
                if new != uid:
                    b.uids[i] = new
                    fresh_uids[b.d.hashes[i]] = new
                    b.rederive.add(i)

    def _append_frames(self, blocks: list[_Block]) -> tuple[list[NewRow], dict[str, int]]:
        raw = self.store.raw
        targets: dict[tuple[str, str, str], Path] = {}
        # per file: frames to append, each with the records (block, index, line in frame)
        frames: dict[Path, list[tuple[bytes, list[tuple[_Block, int, int]]]]] = defaultdict(list)
        for b in blocks:
            assert b.fresh is not None
            members: list[list[int]] = [[] for _ in b.d.frames]
            for i in map(int, np.flatnonzero(b.fresh)):
                members[b.d.buckets[i]].append(i)
            for k, idx in enumerate(members):
                if not idx:
                    continue
                key = b.d.bucket_keys[k]
                if key not in targets:
                    when = datetime.strptime(key[0], "%Y%m%d%H").replace(tzinfo=UTC)
                    targets[key] = archive.file_for(raw, when, key[1], key[2])
                whole = len(idx) == sum(1 for x in b.d.buckets if x == k)
                if whole and not any(i in b.rederive for i in idx):
                    frame = b.d.frames[k]
                    places = [(b, i, b.d.slots[i]) for i in idx]
                else:  # without its duplicates, with moved uids
                    frame, places = self._rebuilt_frame(b, k, idx)
                frames[targets[key]].append((frame, places))
        new_rows: list[NewRow] = []
        sizes: dict[str, int] = {}
        for path, items in frames.items():
            end = self._append(path, [f for f, _ in items])
            rel = str(path.relative_to(raw))
            sizes[rel] = end
            offset = end - sum(len(f) for f, _ in items)
            for frame, places in items:
                for b, i, line in places:
                    new_rows.append(
                        NewRow(b.uids[i], b.d.hashes[i], rel, offset, len(frame), line, b.d.days[i])
                    )
                    if i in b.d.open or i in b.rederive:
                        b.places[i] = (rel, offset, len(frame), line)
                offset += len(frame)
        return new_rows, sizes

    def _rebuilt_frame(
        self, b: _Block, k: int, idx: list[int]
    ) -> tuple[bytes, list[tuple[_Block, int, int]]]:
        lines = _frame_lines(b.d.frames[k])
        out: list[bytes] = []
        for i in idx:
            line = lines[b.d.slots[i]]
            if i in b.rederive:
                line = orjson.dumps({**orjson.loads(line), "measurement_uid": b.uids[i]})
            out.append(line)
        frame = zstandard.ZstdCompressor(level=3).compress(b"\n".join(out) + b"\n")
        return frame, [(b, i, n) for n, i in enumerate(idx)]

    @staticmethod
    def _append(path: Path, frames: list[bytes]) -> int:
        """Append ``frames`` to ``path`` and fsync it (and its directory when new);
        returns the file's size after them."""
        created = not path.exists()
        if created:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for frame in frames:
                view = memoryview(frame)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
            end = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if created:
            fsync_dir(path.parent)
        return end

    # ------------------------------------------------------------------ tables
    def _advance(self) -> None:
        """Move archived blocks whose verdicts are all judged to the tables' queue."""
        while self.archived and self.archived[0].unjudged == 0:
            b = self.archived.pop(0)
            self.ready.append(b)
            self._ready_records += len(b.d)
        if self._ready_records >= TABLE_ROWS:
            self._write_tables()

    def _write_tables(self) -> None:
        blocks, self.ready, self._ready_records = self.ready, [], 0
        if not blocks:
            return
        parts: dict[str, dict[str, list[pa.RecordBatch]]] = {t: defaultdict(list) for t in TABLES}
        uids: list[str] = []
        for b in blocks:
            assert b.fresh is not None
            redo = {i for i in (b.rederive | set(b.changed)) if b.fresh[i]}
            keep = b.fresh.copy()
            keep[list(redo)] = False
            uids.extend(b.uids[i] for i in map(int, np.flatnonzero(b.fresh)))
            for day, batches in b.d.tables.items():
                in_day = np.array([d == day for d in b.d.days])
                with_verdict = np.array(b.d.has_verdict)
                masks = {
                    "measurements": keep[in_day],
                    "verdicts": keep[in_day & with_verdict],
                    "observations": keep[np.asarray(b.d.obs_records.get(day, []), dtype=np.int64)],
                }
                for table, batch in batches.items():
                    mask = masks[table]
                    if batch.num_rows and mask.any():
                        parts[table][day].append(batch if mask.all() else batch.filter(mask))
            for i in sorted(redo):
                for table, (day, items) in self._rederived(b, i).items():
                    if items:
                        parts[table][day].append(
                            pa.RecordBatch.from_pylist(items, schema=TABLES[table])
                        )
        tables: dict[str, dict[str, pa.Table]] = {t: {} for t in TABLES}
        for table, by_day in parts.items():
            for day, pieces in by_day.items():
                tables[table][day] = pa.Table.from_batches(pieces, schema=TABLES[table])
        self.store.writer.write_tables(tables, uids)
        if self.on_tabled:
            per_file: dict[int, list[int]] = defaultdict(lambda: [0, 0])
            for b in blocks:
                per_file[b.seq][0] += len(b.d)
                per_file[b.seq][1] += int(b.fresh.sum()) if b.fresh is not None else 0
            for seq, (n, added) in per_file.items():
                self.on_tabled(seq, n, added)

    def _rederived(self, b: _Block, i: int) -> dict[str, tuple[str, list[dict[str, Any]]]]:
        """The rows of record ``i`` of ``b`` built from its archived line, with its final
        uid and verdict."""
        rel, offset, length, line = b.places[i]
        stored = orjson.loads(archive.read_frame(self.store.raw / rel, offset, length)[line])
        uid = b.uids[i]
        v = b.changed.get(i, b.decoded.get(i))
        if v is not None and v.measurement_uid != uid:
            v = msgspec.structs.replace(v, measurement_uid=uid)
        if v is None and b.d.has_verdict[i] and i not in b.decoded:
            v = self.store.classify(stored)  # a moved uid outside the open runs
        day = b.d.days[i]
        mrow = rows.measurement_row(stored, uid, v)
        asn = asn_db(self.store.derive_options)
        return {
            "measurements": (day, [mrow]),
            "observations": (day, rows.observation_rows(stored, mrow, asn)),
            "verdicts": (day, [rows.verdict_row(v, uid)] if v is not None else []),
        }


def _frame_lines(frame: bytes) -> list[bytes]:
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(frame)
    return raw.split(b"\n")[:-1]
