"""The same analysis on Apache Spark, for archives larger than one machine (optional extra
``spark``: pyspark, and a Java runtime).

Spark runs what ``didban ingest`` runs — ``store.derive.derive_block`` (admission, content
hash, ``analysis`` verdicts, the store's row builders) inside ``mapInArrow``, and
``store.runs`` for the run-level pass across files — then de-duplicates and writes the
same three Parquet tables in the store's layout. ``aggregate`` and ``series`` compute the
API's aggregation and ``didban.events``' series from those tables. Nothing here holds a
rule of its own: equality with the embedded path is tested on ``local[2]``.

Modules: ``session`` (a SparkSession, loopback-only in local mode), ``wide`` (one Arrow
row per record: its three tables' rows nested), ``ingest``, ``queries``, ``cli``
(``didban scale ingest|aggregate|series``; ``python -m didban.scale`` for spark-submit).
"""
