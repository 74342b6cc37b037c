"""Checks that a decoded measurement has the shape the OONI data format requires.

Pure functions over plain dicts: the collector uses them to reject bad submissions
(with the first problem as a clear sentence), tests use them on the probe's output.
"""

from __future__ import annotations

import re
from typing import Any

from didban.model.ooni import REQUIRED_ENVELOPE_FIELDS

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_ASN = re.compile(r"^AS\d+$")
_CC = re.compile(r"^[A-Z]{2}$")

_WC_LISTS = ("queries", "tcp_connect", "tls_handshakes", "requests", "network_events")


def problems(m: Any) -> list[str]:
    """Every way ``m`` departs from OONI df-000 (and ts-017 for web_connectivity)."""
    if not isinstance(m, dict):
        return ["a measurement must be a JSON object"]
    out: list[str] = []
    for field, types in REQUIRED_ENVELOPE_FIELDS.items():
        if field not in m:
            out.append(f"missing field '{field}'")
        elif not isinstance(m[field], types):
            out.append(f"field '{field}' has the wrong type ({type(m[field]).__name__})")
    if out:
        return out
    if m["data_format_version"] != "0.2.0":
        out.append(f"data_format_version must be '0.2.0', not {m['data_format_version']!r}")
    for field in ("measurement_start_time", "test_start_time"):
        if not _TIME.match(m[field]):
            out.append(f"{field} must be 'YYYY-MM-DD hh:mm:ss' UTC, not {m[field]!r}")
    if not _ASN.match(m["probe_asn"]):
        out.append(f"probe_asn must look like 'AS1234', not {m['probe_asn']!r}")
    if not _CC.match(m["probe_cc"]):
        out.append(f"probe_cc must be two capital letters, not {m['probe_cc']!r}")
    if m["test_name"] == "web_connectivity":
        tk = m["test_keys"]
        for key in _WC_LISTS:
            if key in tk and tk[key] is not None and not isinstance(tk[key], list):
                out.append(f"test_keys.{key} must be a list")
        for i, q in enumerate(tk.get("queries") or []):
            if not isinstance(q, dict) or "hostname" not in q or "failure" not in q:
                out.append(f"test_keys.queries[{i}] needs 'hostname' and 'failure'")
        for i, c in enumerate(tk.get("tcp_connect") or []):
            if not isinstance(c, dict) or not isinstance(c.get("status"), dict):
                out.append(f"test_keys.tcp_connect[{i}] needs a 'status' object")
    return out


def is_valid(m: Any) -> bool:
    return not problems(m)
