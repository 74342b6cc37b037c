"""The store: one data directory holding the raw archive, its index and the Parquet tables.

``Store`` is the single writer of a data directory (an exclusive ``flock`` on
``writer.lock`` keeps a second ``didban serve`` / ``ingest`` / ``store rebuild`` out with
a clear message). ``add_batch`` is the only way in: it de-duplicates by content hash,
appends new measurements to the archive and fsyncs, records them in the index (one
SQLite commit), and only then returns their uids — the moment a caller may acknowledge
them. Table rows (measurement, observations, verdict) are derived afterwards and
written by ``TableWriter``; anything not yet in the tables when a process dies is
re-derived from the archive on the next open. ``rebuild`` re-derives everything.

Data directory layout::

    <dir>/raw/…             the archive (see ``archive``)
    <dir>/index.sqlite      uid → archive location, ingest ledger, pending file ops
    <dir>/tables/<table>/day=<YYYY-MM-DD>/*.parquet
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import msgspec
import orjson

from didban.analysis import classify as analysis_classify
from didban.analysis import nin
from didban.data.ipasn import AsnDB, default_db
from didban.model.labinfo import AsnRow
from didban.model.verdict import Verdict
from didban.store import archive, rows
from didban.store.derive import Options, verdict_of
from didban.store.index import Index, Location, NewRow
from didban.store.reader import TableReader
from didban.store.tables import RWLock, TableWriter
from didban.store.uid import UID_RE, content_hash, make_uid, parse_time, uid_time

log = logging.getLogger(__name__)

Classifier = Callable[[dict[str, Any]], Verdict | None]
Progress = Callable[[int], None]


class StoreBusy(RuntimeError):
    """Another process is the writer of this data directory."""


class NotAStore(RuntimeError):
    """The directory holds no store and the caller does not create one."""


def is_store(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a store: its index, or its archive (an index removed
    after damage is rebuilt from the archive)."""
    return (data_dir / "index.sqlite").is_file() or (data_dir / "raw").is_dir()


@dataclass(frozen=True)
class Added:
    measurement_uid: str
    duplicate: bool


class Store:
    def __init__(
        self,
        data_dir: Path,
        classifier: Classifier | str | None = "analysis",
        asn: AsnDB | None = None,
        lab_asn_map: Sequence[AsnRow] = (),
        recover: bool = True,
        create: bool = True,
    ) -> None:
        """Open ``data_dir`` as its writer.

        ``create``: make a new store when ``data_dir`` holds none; without it such a
        directory is refused (``NotAStore``) and nothing is written into it.

        ``classifier``: ``"analysis"`` (default) uses ``didban.analysis.classify``; a
        callable is used as given (tests construct verdicts); None stores no verdicts.
        ``lab_asn_map`` rows override the IP→ASN snapshot.
        """
        self.dir = data_dir
        if not create and not is_store(data_dir):
            raise NotAStore(
                f"{data_dir} is not a didban store (it has no index.sqlite and no raw/ "
                "archive); 'didban ingest' and 'didban serve' create one"
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lockfile = self._take_lock(data_dir / "writer.lock")
        self.raw = data_dir / "raw"
        self.tables_root = data_dir / "tables"
        try:
            self._open(classifier, asn, lab_asn_map, recover)
        except BaseException:  # a damaged index, a failed recovery: let the next writer in
            self._lockfile.close()
            raise

    def _open(
        self,
        classifier: Classifier | str | None,
        asn: AsnDB | None,
        lab_asn_map: Sequence[AsnRow],
        recover: bool,
    ) -> None:
        """The rest of ``__init__``, once the writer lock is held."""
        data_dir = self.dir
        self.index = Index(data_dir / "index.sqlite")
        self.rwlock = RWLock()
        self._pending: list[tuple[dict[str, Any], str, str]] = []  # measurement, uid, day
        self._pending_lock = threading.Lock()
        self.writer = TableWriter(self.tables_root, self.index, self.rwlock)
        self.reader = TableReader(self.tables_root, self.rwlock, before=self.flush)
        self.classifier: Classifier | None = (
            analysis_classify if isinstance(classifier, str) else classifier
        )
        self._asn_base = asn
        self._asn: AsnDB | None = None
        self.lab_asn_map = tuple(lab_asn_map)
        if recover:
            self.recover()

    @staticmethod
    def _take_lock(path: Path) -> IO[str]:
        fh = path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise StoreBusy(
                f"the data directory {path.parent} is in use by another didban process "
                f"(pid {holder}); stop it first (a data directory has one writer)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return fh

    def close(self) -> None:
        self.flush()
        self.index.close()
        self._lockfile.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def add_batch(
        self,
        measurements: Sequence[dict[str, Any]],
        received: datetime | None = None,
        defer: bool = False,
    ) -> list[Added]:
        """Archive (fsynced) and index new measurements; duplicates get their existing uid.

        ``received`` is the upload time for the uid (the collector passes now); ingest
        passes None so a measurement without a uid gets one from its start time, which
        keeps re-ingesting deterministic. With ``defer`` the table rows (analysis
        included) are derived later, by ``derive_pending`` or the next ``flush``, so the
        caller can acknowledge first.
        """
        hashes = [content_hash(m) for m in measurements]
        known = self.index.uids_for_hashes(list(dict.fromkeys(hashes)))
        result: list[Added | None] = [None] * len(measurements)
        fresh: dict[str, tuple[str, dict[str, Any]]] = {}
        for i, (m, h) in enumerate(zip(measurements, hashes, strict=True)):
            if h in known:
                result[i] = Added(known[h], True)
                continue
            if h in fresh:
                result[i] = Added(fresh[h][0], True)
                continue
            fresh[h] = (self._uid_for(m, h, received), m)
        self._unique_uids(fresh)
        for i, h in enumerate(hashes):
            if result[i] is None:
                result[i] = Added(fresh[h][0], False)
        by_file: dict[Path, list[tuple[str, str, dict[str, Any], bytes]]] = defaultdict(list)
        targets: dict[tuple[str, str, str], Path] = {}
        for h, (uid, m) in fresh.items():
            stored = {**m, "measurement_uid": uid}
            line = orjson.dumps(stored)
            when = uid_time(uid) or datetime.now(UTC)
            cc = rows.country(m.get("probe_cc"))
            tn = rows.text(m.get("test_name"), "unknown")
            key = (f"{when:%Y%m%d%H}", cc, tn)
            if key not in targets:
                targets[key] = archive.file_for(self.raw, when, cc, tn)
            by_file[targets[key]].append((uid, h, stored, line))
        new_rows: list[NewRow] = []
        sizes: dict[str, int] = {}
        derived: list[tuple[dict[str, Any], str, str]] = []
        for path, items in by_file.items():
            offset, length = archive.append(path, [it[3] for it in items])
            rel = str(path.relative_to(self.raw))
            sizes[rel] = offset + length
            for line_no, (uid, h, stored, _) in enumerate(items):
                day = rows.measurement_day(stored, uid)
                new_rows.append(NewRow(uid, h, rel, offset, length, line_no, day))
                derived.append((stored, uid, day))
        if new_rows:
            self.index.add(new_rows, sizes)
        with self._pending_lock:
            self._pending.extend(derived)
        if not defer:
            self.derive_pending()
        return [r for r in result if r is not None]

    def derive_pending(self) -> int:
        """Derive the table rows of measurements archived with ``defer``."""
        with self._pending_lock:
            todo, self._pending = self._pending, []
        for stored, uid, day in todo:
            self._derive(stored, uid, day)
        return len(todo)

    def _unique_uids(self, fresh: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Give a new uid to a different measurement whose uid is already taken (a reused
        OONI uid in an ingested file, or a 64-bit hash-prefix clash): one microsecond later."""
        taken = self.index.existing_uids([uid for uid, _ in fresh.values()])
        seen: set[str] = set()
        for h, (uid, m) in fresh.items():
            new = uid
            while new in taken or new in seen:
                when = (uid_time(new) or datetime.now(UTC)) + timedelta(microseconds=1)
                new = make_uid(
                    when, rows.country(m.get("probe_cc")), rows.text(m.get("test_name"), "?"), h
                )
            seen.add(new)
            if new != uid:
                fresh[h] = (new, m)

    @staticmethod
    def _uid_for(m: dict[str, Any], digest: str, received: datetime | None) -> str:
        given = m.get("measurement_uid")
        if received is None and isinstance(given, str) and UID_RE.match(given):
            return given
        when = received or parse_time(m.get("measurement_start_time")) or datetime.now(UTC)
        return make_uid(
            when, rows.country(m.get("probe_cc")), rows.text(m.get("test_name"), "unknown"), digest
        )

    @property
    def asn(self) -> AsnDB:
        """The IP→ASN lookup of observation rows, loaded on first use (150 MB of lists that
        ``didban ingest``'s parent process never needs: its workers derive the rows)."""
        if self._asn is None:
            base = self._asn_base or default_db()
            self._asn = base.with_overrides(self.lab_asn_map) if self.lab_asn_map else base
        return self._asn

    @property
    def derive_options(self) -> Options:
        """How ``store.derive`` derives this store's rows (in worker processes too)."""
        return Options(classify=self.classifier is not None, lab_asn_map=self.lab_asn_map)

    @property
    def custom_classifier(self) -> Classifier | None:
        """The caller's classifier when it is not the analysis (tests construct verdicts)."""
        return None if self.classifier in (None, analysis_classify) else self.classifier

    def classify(self, m: dict[str, Any]) -> Verdict | None:
        """The verdict for ``m`` (None without a classifier or when it fails)."""
        if self.classifier is None:
            return None
        try:
            v = self.classifier(m)
        except Exception as exc:  # analysis must never lose a measurement
            log.warning("classification of %s failed: %s", m.get("measurement_uid"), exc)
            return None
        if v is not None and v.measurement_uid != m.get("measurement_uid"):
            v = msgspec.structs.replace(v, measurement_uid=m.get("measurement_uid"))
        return v

    def _derive(self, m: dict[str, Any], uid: str, day: str) -> None:
        """Classify ``m`` and buffer its table rows under ``day`` (its index day)."""
        self._rows(m, uid, day, self.classify(m))

    def _rows(self, m: dict[str, Any], uid: str, day: str, v: Verdict | None) -> None:
        """Buffer the table rows of ``m`` with verdict ``v``."""
        mrow = rows.measurement_row(m, uid, v)
        self.writer.add(
            uid,
            day,
            {
                "measurements": [mrow],
                "observations": rows.observation_rows(m, mrow, self.asn),
                "verdicts": [rows.verdict_row(v, uid)] if v is not None else [],
            },
        )

    def flush(self) -> int:
        """Make every archived measurement queryable (write buffered table rows)."""
        self.derive_pending()
        return self.writer.flush()

    def compact(self, min_files: int = 16) -> int:
        self.flush()
        return self.writer.compact(min_files)

    # ------------------------------------------------------------------ reading
    def get(self, uid: str) -> dict[str, Any] | None:
        """The archived measurement with this uid, or None."""
        loc = self.index.locate(uid)
        if loc is None:
            return None
        lines = archive.read_frame(self.raw / loc.file, loc.offset, loc.length)
        value = orjson.loads(lines[loc.line])
        return value if isinstance(value, dict) else None

    def count(self) -> int:
        return self.index.count()

    # ------------------------------------------------------------------ recovery
    def recover(self, progress: Progress | None = None) -> int:
        """Index archive frames the index lacks, cut half-written frames, fill the tables.

        Returns how many measurements were (re)written to the tables.
        """
        self.writer.recover()
        sizes = self.index.file_sizes()
        for path in archive.files(self.raw):
            rel = str(path.relative_to(self.raw))
            start = sizes.get(rel, 0)
            actual = path.stat().st_size
            if actual <= start:
                continue
            end = start
            batch: list[NewRow] = []
            for frame in archive.scan(path, start):
                for line_no, line in enumerate(frame.lines):
                    try:
                        m = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    uid = m.get("measurement_uid") if isinstance(m, dict) else None
                    if not isinstance(uid, str):
                        continue
                    batch.append(
                        NewRow(
                            uid,
                            content_hash(m),
                            rel,
                            frame.offset,
                            frame.length,
                            line_no,
                            rows.measurement_day(m, uid),
                        )
                    )
                end = frame.offset + frame.length
                if len(batch) >= 5000:
                    self.index.add(batch, {rel: end})
                    batch = []
            self.index.add(batch, {rel: end})
            if end < actual:
                log.warning("cutting a half-written frame off %s (%d bytes)", path, actual - end)
                archive.truncate(path, end)
        return self._fill_tables(progress)

    def _fill_tables(self, progress: Progress | None) -> int:
        """Derive the rows of every archived measurement missing from the tables, in
        archive order, with the run-level pass over that order (as ``didban ingest`` runs
        it over its input, which the archive keeps in order within each file)."""
        done = 0
        runs: nin.Runs[tuple[dict[str, Any], Location]] = nin.Runs()
        after: tuple[str, int, int] | None = None
        custom = self.custom_classifier
        while True:
            locs = self.index.untabled(5000, after)
            if not locs:
                break
            after = (locs[-1].file, locs[-1].offset, locs[-1].line)
            for line, m, loc in self._load(locs):
                v, no_control, rate = verdict_of(
                    line, m, loc.uid, custom, self.classifier is not None
                )
                if v is None:
                    self._rows(m, loc.uid, loc.day, None)
                    continue
                for (mj, lj), vj in runs.add((m, loc), v, no_control, rate):
                    self._rows(mj, lj.uid, lj.day, vj)
            self.flush()
            done += len(locs)
            if progress:
                progress(len(locs))
        for (mj, lj), vj in runs.flush():
            self._rows(mj, lj.uid, lj.day, vj)
        self.flush()
        return done

    def _load(self, locs: Iterable[Location]) -> Iterable[tuple[bytes, dict[str, Any], Location]]:
        cache_key: tuple[str, int] | None = None
        lines: list[bytes] = []
        for loc in locs:
            if cache_key != (loc.file, loc.offset):
                lines = archive.read_frame(self.raw / loc.file, loc.offset, loc.length)
                cache_key = (loc.file, loc.offset)
            yield lines[loc.line], orjson.loads(lines[loc.line]), loc

    def rebuild(self, progress: Progress | None = None) -> int:
        """Drop the index and every table, then rebuild both from the archive."""
        self.writer.drop_all()
        self.index.forget_all()
        return self.recover(progress)
