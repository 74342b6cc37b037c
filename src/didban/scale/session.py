"""A SparkSession for didban: in local mode bound to loopback, without the web UI, and with
executors running this interpreter (so they import this didban)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkMissing(RuntimeError):
    """pyspark or Java is not installed (one sentence for the user)."""


def is_local(master: str | None) -> bool:
    return master is not None and (master == "local" or master.startswith("local["))


def session(master: str | None = "local[2]", app: str = "didban") -> SparkSession:
    """A session on ``master`` (``local[N]``, ``spark://host:7077``, ``yarn``, ``k8s://…``;
    None: the one ``spark-submit --master`` gave).

    Local mode contacts no network: the driver binds to 127.0.0.1, the UI is off, and
    Python workers talk to the JVM over loopback. Times are UTC; timestamps without a
    zone are written as such (as the store's own Parquet files)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkMissing(
            "pyspark is not installed; install the spark extra ('make deps-spark', or "
            "'uv sync --extra spark') and a Java runtime (Debian: openjdk-17-jre-headless)"
        ) from None
    builder = SparkSession.builder if master is None else SparkSession.builder.master(master)
    builder = (
        builder.appName(app)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.parquet.compression.codec", "zstd")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if is_local(master):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.showConsoleProgress", "false")
        )
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM could not start: most often no Java
        if "JAVA_HOME" in str(exc) or "Java gateway" in str(exc):
            raise SparkMissing(
                f"Spark could not start its JVM ({exc}); install a Java runtime "
                "(Debian: openjdk-17-jre-headless)"
            ) from None
        raise
    spark.sparkContext.setLogLevel("ERROR")
    return spark
