"""``didban scale ingest``: measurement files to the store's three Parquet tables, on Spark.

1. The driver lists the input files as ``didban ingest`` does (``files.kinds``), in order;
   one Spark task per file runs ``scale.wide.derive_partition`` (``mapInArrow``): the
   records, derived by ``store.derive`` exactly as the embedded ingest derives them.
2. The run-level pass across files: the driver collects the few records whose runs cross
   a file's edges (``part`` h/t, ordered by file and line) and joins them with
   ``store.runs.Stitch`` (closed start), as the embedded ingest's parent joins blocks;
   the records it relabels get their verdict columns and verdict row replaced.
3. De-duplication by content hash, the first copy in input order kept (as the embedded
   store keeps the first); a uid held by a different measurement moves one microsecond
   later, as ``Store.add_batch`` moves it.
4. ``measurements``, ``observations`` and ``verdicts`` are written to
   ``<out>/tables/<table>/day=<YYYY-MM-DD>/`` (zstd Parquet, the store's columns): the
   explorer, the API's queries, ``didban events`` and ``scale.queries`` read them.

Records refused by admission and unreadable files are returned as ``FILE:LINE: reason``.
The raw archive and the index stay the embedded store's (one writer); this job reads the
input files (OONI's archive mirror, or a store's ``raw/``) and writes only tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from didban.files.kinds import iter_files
from didban.files.tasks import CHUNK_BYTES
from didban.model.verdict import Verdict
from didban.scale.wide import INPUT, SCHEMA, derive_partition
from didban.store import rows
from didban.store.derive import VERDICT, Options
from didban.store.runs import Stitch
from didban.store.schema import TABLES
from didban.store.uid import make_uid, uid_time

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TABLE_NAMES = tuple(TABLES)


@dataclass
class Result:
    files: int = 0
    records: int = 0
    added: int = 0
    duplicates: int = 0
    bad: list[str] = field(default_factory=list)


def spark_schema() -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(SCHEMA, prefer_timestamp_ntz=True)


def wide(
    spark: SparkSession, paths: list[Path], options: Options, block_bytes: int = CHUNK_BYTES
) -> tuple[DataFrame, list[Path]]:
    """The wide rows of every file under ``paths`` (one task per file), and the files."""
    files = list(iter_files(paths))
    inputs = pa.table(
        {"seq": list(range(len(files))), "path": [str(p.resolve()) for p in files]},
        schema=INPUT,
    )
    df = spark.createDataFrame(inputs).repartition(max(1, len(files)), "seq")

    def run(batches: Any) -> Any:
        return derive_partition(batches, options, block_bytes)

    return df.mapInArrow(run, spark_schema()), files


def relabels(open_rows: list[Any]) -> dict[tuple[int, int], Verdict]:
    """Judge the runs that cross files: ``open_rows`` (seq, line, part, split, verdict,
    no_control, rate), ordered by seq and line. Returns the changed verdicts."""
    stitch: Stitch[tuple[int, int]] = Stitch(open_start=False)
    own: dict[tuple[int, int], Verdict] = {}
    changed: dict[tuple[int, int], Verdict] = {}

    def take(pairs: Any) -> None:
        for key, v in pairs:
            if v is not own[key]:
                changed[key] = v

    by_file: dict[int, list[Any]] = {}
    for r in open_rows:
        by_file.setdefault(r[0], []).append(r)
    for seq in sorted(by_file):
        items = by_file[seq]
        for part in ("h", "t"):
            if part == "t" and items[0][3]:
                take(stitch.split())
            for r in items:
                if r[2] != part:
                    continue
                key = (r[0], r[1])
                v = own[key] = VERDICT.decode(r[4])
                take(stitch.add(key, v, bool(r[5]), r[6]))
    take(stitch.flush())
    return changed


def _patch_table(
    spark: SparkSession, changed: dict[tuple[int, int], Verdict], uids: dict[tuple[int, int], str]
) -> DataFrame | None:
    """(seq, line, verdict columns, verdict row) of the relabelled records."""
    if not changed:
        return None
    cols = rows.verdict_columns(None)
    recs = []
    for (seq, line), v in changed.items():
        vrow = rows.verdict_row(v, uids[(seq, line)])
        recs.append({"seq": seq, "line": line, **rows.verdict_columns(v), "pv": vrow})
    schema = pa.schema(
        [("seq", pa.int64()), ("line", pa.int64())]
        + [TABLES["measurements"].field(c) for c in cols]
        + [("pv", pa.struct(list(TABLES["verdicts"])))]
    )
    return spark.createDataFrame(pa.Table.from_pylist(recs, schema=schema))


def _moved_uids(clashes: list[Any], taken: set[str]) -> dict[tuple[int, int], str]:
    """New uids for the later of different measurements holding one uid (``Store``'s rule:
    one microsecond later until free), in input order. ``clashes``: (seq, line, uid,
    hash) of every record of a clashing uid."""
    used = set(taken)
    out: dict[tuple[int, int], str] = {}
    seen: set[str] = set()
    for seq, line, uid, digest in sorted(clashes):
        if uid not in seen:
            seen.add(uid)
            continue
        new = uid
        while new in used:
            when = uid_time(new)
            assert when is not None
            parts = new.split("_")
            new = make_uid(when + timedelta(microseconds=1), parts[1], parts[2], digest)
        used.add(new)
        out[(seq, line)] = new
    return out


def ingest(
    spark: SparkSession,
    paths: list[Path],
    out: Path,
    options: Options = Options(),
    block_bytes: int = CHUNK_BYTES,
) -> Result:
    """Derive, judge, de-duplicate and write the tables under ``out / "tables"``."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df, files = wide(spark, paths, options, block_bytes)
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    res = Result(files=len(files))
    refused = (
        df.where("refused IS NOT NULL").select("seq", "line", "refused").orderBy("seq", "line")
    )
    for seq, line, why in refused.collect():
        res.bad.append(why if line == 0 else f"{files[seq]}:{line}: {why}")  # 0: a file
        res.records += line != 0
    kept = df.where("refused IS NULL")
    open_rows = (
        kept.where("part IS NOT NULL")
        .select("seq", "line", "part", "split", "verdict", "no_control", "rate", "uid")
        .orderBy("seq", "line")
        .collect()
    )
    changed = relabels([tuple(r)[:7] for r in open_rows])
    uids = {(r[0], r[1]): r[7] for r in open_rows}
    # the first copy of each content hash, in input order
    first = Window.partitionBy("hash").orderBy("seq", "line")
    ranked = kept.withColumn("_copy", F.row_number().over(first))
    fresh = ranked.where("_copy = 1").drop("_copy")
    counts = ranked.agg(F.count("*"), F.sum(F.when(F.col("_copy") > 1, 1).otherwise(0))).first()
    assert counts is not None
    res.records += int(counts[0])
    res.duplicates = int(counts[1] or 0)
    # different measurements with one uid
    per_uid = Window.partitionBy("uid")
    clash = fresh.withColumn("_n", F.count("*").over(per_uid)).where("_n > 1")
    clashes = [tuple(r) for r in clash.select("seq", "line", "uid", "hash").collect()]
    moved: dict[tuple[int, int], str] = {}
    if clashes:
        candidates = {r[2] for r in clashes}
        moved = _moved_uids(clashes, candidates)
        hit = fresh.where(F.col("uid").isin(list(moved.values()))).count()
        if hit:
            raise RuntimeError(
                "a measurement uid moved one microsecond later is taken too; "
                "ingest these files with didban ingest"
            )
    res.added = fresh.count()
    table = fresh
    patch = _patch_table(spark, changed, uids)
    if patch is not None:
        table = table.join(patch, ["seq", "line"], "left")
        from_verdict = rows.verdict_columns(None)
        fields = [
            (F.col(c) if c in from_verdict else F.col(f"m.{c}")).alias(c)
            for c in TABLES["measurements"].names
        ]
        relabelled = F.col("pv").isNotNull()
        table = table.withColumn("m", F.when(relabelled, F.struct(*fields)).otherwise(F.col("m")))
        table = table.withColumn("v", F.when(relabelled, F.col("pv")).otherwise(F.col("v")))
    if moved:
        table = _with_moved(spark, table, moved)
    _write(table, out)
    df.unpersist()
    return res


def _with_moved(
    spark: SparkSession, table: DataFrame, moved: dict[tuple[int, int], str]
) -> DataFrame:
    """``table`` with the moved uids in every row of their records."""
    from pyspark.sql import functions as F

    recs = [
        {"seq": s, "line": n, "new_uid": uid, "new_received": rows.naive(uid_time(uid))}
        for (s, n), uid in moved.items()
    ]
    schema = pa.schema(
        [
            ("seq", pa.int64()),
            ("line", pa.int64()),
            ("new_uid", pa.string()),
            ("new_received", pa.timestamp("us")),
        ]
    )
    mv = spark.createDataFrame(pa.Table.from_pylist(recs, schema=schema))
    t = table.join(mv, ["seq", "line"], "left")
    has = F.col("new_uid").isNotNull()
    new = F.col("new_uid")
    m = F.col("m").withField("measurement_uid", new).withField("received_at", F.col("new_received"))
    t = t.withColumn("m", F.when(has, m).otherwise(F.col("m")))
    v = F.col("v").withField("measurement_uid", new)
    t = t.withColumn("v", F.when(has & F.col("v").isNotNull(), v).otherwise(F.col("v")))
    o = F.transform("o", lambda x: x.withField("measurement_uid", new))
    return t.withColumn("o", F.when(has, o).otherwise(F.col("o")))


def _write(table: DataFrame, out: Path) -> None:
    from pyspark.sql import functions as F

    dest = out / "tables"
    meas = table.select("m.*", "day")
    obs = table.select(F.explode("o").alias("x"), "day").select("x.*", "day")
    verd = table.where("v IS NOT NULL").select("v.*", "day")
    for name, df in (("measurements", meas), ("observations", obs), ("verdicts", verd)):
        df.write.mode("overwrite").partitionBy("day").parquet(str(dest / name))
