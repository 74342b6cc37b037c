"""Column schemas of the three Parquet tables: ``measurements``, ``observations``, ``verdicts``.

All three are hive-partitioned by ``day`` (the UTC date of ``measurement_start_time``);
the partition column lives in the directory name (``day=2026-11-21``), not in the files.
Times are UTC timestamps without zone, microsecond precision.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from didban.analysis.output import verdict_schema

TS = pa.timestamp("us")

MEASUREMENTS: Final = pa.schema(
    [
        ("measurement_uid", pa.string()),
        ("report_id", pa.string()),
        ("input", pa.string()),
        ("domain", pa.string()),
        ("service", pa.string()),
        ("category_code", pa.string()),
        ("probe_cc", pa.string()),
        ("probe_asn", pa.int64()),
        ("probe_network_name", pa.string()),
        ("resolver_asn", pa.int64()),
        ("test_name", pa.string()),
        ("test_version", pa.string()),
        ("software_name", pa.string()),
        ("software_version", pa.string()),
        ("measurement_start_time", TS),
        ("test_start_time", TS),
        ("test_runtime", pa.float64()),
        ("received_at", TS),
        ("state", pa.string()),
        ("layer", pa.string()),
        ("method", pa.string()),
        ("blocking_type", pa.string()),
        ("anomaly", pa.bool_()),
        ("confirmed", pa.bool_()),
        ("failure", pa.bool_()),
        ("rules_version", pa.string()),
    ]
)

OBSERVATIONS: Final = pa.schema(
    [
        ("measurement_uid", pa.string()),
        ("probe_cc", pa.string()),
        ("probe_asn", pa.int64()),
        ("test_name", pa.string()),
        ("input", pa.string()),
        ("domain", pa.string()),
        ("service", pa.string()),
        ("measurement_start_time", TS),
        ("layer", pa.string()),  # dns | tcp | tls | http
        ("idx", pa.int32()),  # position in the test_keys list
        ("transaction_id", pa.int64()),
        ("hostname", pa.string()),
        ("query_type", pa.string()),
        ("engine", pa.string()),
        ("resolver_address", pa.string()),
        ("answer_type", pa.string()),
        ("ip", pa.string()),
        ("port", pa.int32()),
        ("ip_asn", pa.int64()),
        ("ip_as_org", pa.string()),
        ("ip_cc", pa.string()),  # country of the address, when the mapping knows it (lab)
        ("server_name", pa.string()),
        ("tls_version", pa.string()),
        ("url", pa.string()),
        ("status_code", pa.int32()),
        ("body_length", pa.int64()),
        ("failure", pa.string()),
        ("success", pa.bool_()),
        ("t0", pa.float64()),
        ("t", pa.float64()),
        ("asn_db", pa.string()),  # the IP→ASN snapshot that produced ip_asn
    ]
)

VERDICTS: Final = verdict_schema(TS)

TABLES: Final[dict[str, pa.Schema]] = {
    "measurements": MEASUREMENTS,
    "observations": OBSERVATIONS,
    "verdicts": VERDICTS,
}
