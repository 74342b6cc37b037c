"""The store: raw append-only archive, hive-partitioned Parquet tables queried with DuckDB,
ingestion of OONI archives, IP to ASN/country enrichment. Contains no rules."""
