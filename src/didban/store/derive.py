"""Everything the store derives from a block of raw records, in one pass, without I/O.

``derive_block(records, options)`` takes what ``didban.files`` read — ``[(line, bytes)]``
— and returns a ``Derived``: for each record either the sentence that refuses it
(``model.admission``, the rules every entry applies) or its content hash, its
``measurement_uid``, its day, its verdict (``analysis.batch.classify_one``, what
``didban analyze`` runs), and, column by column, the rows of the three tables
(``store.rows``) as Arrow record batches per day, with the archive lines compressed into
one zstd frame per archive file. It runs in ``didban ingest``'s worker processes and in
Spark's executors (``didban.scale``): both call this function, so both store the same
thing. What needs the store's state — which hashes are already stored, where the frames
go, the run-level pass over consecutive verdicts — is the caller's.

Rows carry the verdict of the record alone; ``verdict_columns`` gives the columns a
run-level verdict (``analysis.nin``) changes, so a caller can patch the few it relabels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import orjson
import pyarrow as pa
import zstandard

from didban.analysis.batch import classify_one
from didban.analysis.classify import Malformed
from didban.analysis.fingerprints import default as default_fingerprints
from didban.data.ipasn import AsnDB, default_db
from didban.model.admission import TOO_DEEP, measurement_refusal
from didban.model.labinfo import AsnRow
from didban.model.verdict import Verdict
from didban.store import rows
from didban.store.runs import Stitch
from didban.store.schema import TABLES
from didban.store.uid import UID_RE, content_hash, make_uid, parse_time, uid_time

ARCHIVE_LEVEL: Final = 3  # zstd level of archive frames (as ``archive.append``)
_PACK: Final = msgspec.msgpack.Encoder()
VERDICT: Final = msgspec.msgpack.Decoder(Verdict)

Classifier = Callable[[dict[str, Any]], Verdict | None]


@dataclass(frozen=True)
class Options:
    """How to derive: with the analysis classifier or none, and the lab's IP→ASN rows.
    Picklable (it travels to worker processes and Spark executors)."""

    classify: bool = True
    lab_asn_map: tuple[AsnRow, ...] = ()


@dataclass
class Derived:
    """A block's records, in input order. ``refused``: (line, sentence). The other lists
    have one entry per kept record; ``frames[k]`` holds the stored lines of the records
    whose ``bucket`` is ``k``, in order (``slot`` is a record's line in its frame).

    Runs: the verdicts of runs that begin and end inside the block are judged here
    (``analysis.nin.Runs``, through ``store.runs.Stitch``) and are final in the rows. The
    records of a run that may continue from the previous block (``head``) or into the next
    one (``tail``) carry their own verdict in the rows, and ``open`` holds what the
    caller's ``Stitch`` needs to judge them with their neighbours: (packed verdict,
    no_control, rate) by record. ``split``: the block has a run boundary of its own, so the
    head's run ends inside it."""

    refused: list[tuple[int, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    buckets: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    has_verdict: list[bool] = field(default_factory=list)
    head: list[int] = field(default_factory=list)  # open records (see ``store.runs``)
    split: bool = False
    tail: list[int] = field(default_factory=list)
    open: dict[int, tuple[bytes, bool, float | None]] = field(default_factory=dict)
    bucket_keys: list[tuple[str, str, str]] = field(default_factory=list)  # hour, cc, test
    frames: list[bytes] = field(default_factory=list)
    # day -> table -> rows; observation rows name their record in ``obs_records``
    tables: dict[str, dict[str, pa.RecordBatch]] = field(default_factory=dict)
    obs_records: dict[str, list[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.uids)


def uid_for(m: dict[str, Any], digest: str) -> str:
    """The uid an ingested measurement keeps: its own when it is in OONI's scheme, else one
    derived from its start time and content (so re-ingesting is deterministic)."""
    given = m.get("measurement_uid")
    if isinstance(given, str) and UID_RE.match(given):
        return given
    when = parse_time(m.get("measurement_start_time")) or datetime.now(UTC)
    return make_uid(
        when, rows.country(m.get("probe_cc")), rows.text(m.get("test_name"), "unknown"), digest
    )


def bucket_of(m: dict[str, Any], uid: str) -> tuple[str, str, str]:
    """(upload hour, country, test) of the archive file a measurement goes to."""
    when = uid_time(uid) or datetime.now(UTC)
    return (
        f"{when:%Y%m%d%H}",
        rows.country(m.get("probe_cc")),
        rows.text(m.get("test_name"), "unknown"),
    )


_ASN_DBS: dict[bytes, AsnDB] = {}  # one per lab mapping, per process


def asn_db(options: Options) -> AsnDB:
    """The IP→ASN lookup ``options`` asks for (loaded once per process)."""
    key = msgspec.json.encode(options.lab_asn_map)
    db = _ASN_DBS.get(key)
    if db is None:
        base = default_db()
        db = _ASN_DBS[key] = (
            base.with_overrides(options.lab_asn_map) if options.lab_asn_map else base
        )
    return db


def pack(verdict: Verdict) -> bytes:
    return _PACK.encode(verdict)


def verdict_of(
    data: bytes, stored: dict[str, Any], uid: str, classifier: Classifier | None, enabled: bool
) -> tuple[Verdict | None, bool, float | None]:
    """The record's own verdict (None when classification is off or fails), whether it is
    unreachable without a control, and its fetch rate (``classify_one``)."""
    if not enabled:
        return None, False, None
    if classifier is not None:  # a caller's classifier (tests), on the stored measurement
        try:
            v = classifier(stored)
        except Exception:  # analysis must never lose a measurement
            return None, False, None
        no_control, rate = False, None
    else:
        try:
            v, no_control, rate = classify_one(data, default_fingerprints(), True)
        except Malformed:
            return None, False, None
    if v is not None and v.measurement_uid != uid:
        v = msgspec.structs.replace(v, measurement_uid=uid)
    return v, no_control, rate


def stored_line(data: bytes, m: dict[str, Any], uid: str) -> bytes:
    """The archive line: the record as read plus its uid — its own bytes when they are
    one line already carrying this uid, the uid appended to them when it has none, else
    the record encoded again."""
    line = data.strip()
    if b"\n" not in line and b"\r" not in line and line.endswith(b"}"):
        given = m.get("measurement_uid", _ABSENT)
        if given == uid:
            return line
        if given is _ABSENT:
            return line[:-1] + b',"measurement_uid":' + orjson.dumps(uid) + b"}"
    return orjson.dumps({**m, "measurement_uid": uid})


_ABSENT: Final = object()


def derive_block(
    records: Sequence[tuple[int, bytes]],
    options: Options = Options(),
    classifier: Classifier | None = None,
) -> Derived:
    """See the module docstring. ``classifier`` replaces the analysis (in this process
    only: ``didban ingest`` runs a caller's classifier without worker processes)."""
    out = Derived()
    asn = asn_db(options)
    by_bucket: dict[tuple[str, str, str], tuple[int, list[bytes]]] = {}
    own: list[tuple[Verdict | None, dict[str, Any], dict[str, Any] | None]] = []
    judged: list[tuple[int, Verdict, bool, float | None]] = []
    meas: dict[str, list[dict[str, Any]]] = {}
    obs: dict[str, list[dict[str, Any]]] = {}
    verd: dict[str, list[dict[str, Any]]] = {}
    for line, data in records:
        try:
            m = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            deep = "depth" in str(exc) or "recursion" in str(exc)  # orjson's limit: 1024
            out.refused.append((line, TOO_DEEP if deep else f"not valid JSON ({exc})"))
            continue
        problem = measurement_refusal(m)
        if problem:
            out.refused.append((line, problem))
            continue
        digest = content_hash(m)
        uid = uid_for(m, digest)
        key = bucket_of(m, uid)
        slot = by_bucket.get(key)
        if slot is None:
            slot = by_bucket[key] = (len(out.bucket_keys), [])
            out.bucket_keys.append(key)
        bucket, frame = slot
        out.buckets.append(bucket)
        out.slots.append(len(frame))
        frame.append(stored_line(data, m, uid))
        stored = {**m, "measurement_uid": uid}
        v, no_control, rate = verdict_of(data, stored, uid, classifier, options.classify)
        index = len(out.uids)
        day = rows.measurement_day(stored, uid)
        out.lines.append(line)
        out.hashes.append(digest)
        out.uids.append(uid)
        out.days.append(day)
        out.has_verdict.append(v is not None)
        # the rows now, with the record's own verdict (the measurement is not kept)
        mrow = rows.measurement_row(stored, uid, v)
        meas.setdefault(day, []).append(mrow)
        o = rows.observation_rows(stored, mrow, asn)
        if o:
            obs.setdefault(day, []).extend(o)
            out.obs_records.setdefault(day, []).extend([index] * len(o))
        vrow = None
        if v is not None:
            judged.append((index, v, no_control, rate))
            vrow = rows.verdict_row(v, uid)
            verd.setdefault(day, []).append(vrow)
        own.append((v, mrow, vrow))
    stitch: Stitch[int] = Stitch(open_start=True)
    for i, v in stitch.add_all(judged):
        if v is not own[i][0]:  # relabelled by its run: its rows in place
            _, mrow, vrow = own[i]
            mrow.update(rows.verdict_columns(v))
            assert vrow is not None
            vrow.update(rows.verdict_row(v, out.uids[i]))
    edges = stitch.edges()
    out.split = edges.split
    for part, items in ((out.head, edges.head), (out.tail, edges.tail)):
        for i, v, no_control, rate in items:
            part.append(i)
            out.open[i] = (pack(v), no_control, rate)
    compressor = zstandard.ZstdCompressor(level=ARCHIVE_LEVEL)
    for k in out.bucket_keys:
        lines = by_bucket[k][1]
        lines.append(b"")  # the last line's newline, in the one join (no copy of the frame)
        out.frames.append(compressor.compress(b"\n".join(lines)))
    for day, mrows in meas.items():
        out.tables[day] = {
            "measurements": pa.RecordBatch.from_pylist(mrows, schema=TABLES["measurements"]),
            "observations": pa.RecordBatch.from_pylist(
                obs.get(day, []), schema=TABLES["observations"]
            ),
            "verdicts": pa.RecordBatch.from_pylist(verd.get(day, []), schema=TABLES["verdicts"]),
        }
    return out
