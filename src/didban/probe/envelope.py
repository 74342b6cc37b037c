"""The OONI base envelope (df-000) the probe writes around every experiment's test keys.

Owns the report-id format, OONI's time format, the probe's identity fields (country, ASN,
network name — never its IP) and the annotations; experiments only fill ``test_keys``.
"""

from __future__ import annotations

import datetime as dt
import platform
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from didban import __version__
from didban.model.ooni import SCRUBBED_IP, Measurement

# OONI report ids: ``20220815T190043Z_webconnectivity_IR_197207_n1_cCbffjGasS4tFgb2``
# (ooni-methodology.md §4.1): UTC start, test name without underscores, CC, ASN number,
# "n1" (the collector generation), 16 random letters and digits.
REPORT_ID_RE = re.compile(r"^\d{8}T\d{6}Z_[a-z0-9]+_[A-Z]{2}_\d+_n1_[A-Za-z0-9]{16}$")
_ALPHABET = string.ascii_letters + string.digits

WEB_CONNECTIVITY_VERSION = "0.5.0-didban.1"
DNSCHECK_VERSION = "0.9.2-didban.1"


def ooni_time(t: dt.datetime) -> str:
    """``YYYY-MM-DD hh:mm:ss`` in UTC, OONI's measurement_start_time format."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_report_id(test_name: str, probe_cc: str, probe_asn: str, when: dt.datetime) -> str:
    """A fresh OONI-format report id for one run of ``test_name``."""
    asn = probe_asn[2:] if probe_asn.upper().startswith("AS") else probe_asn
    rand = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    stamp = when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}_{test_name.replace('_', '')}_{probe_cc}_{int(asn or 0)}_n1_{rand}"


@dataclass(slots=True)
class ProbeIdentity:
    """What the envelope says about the vantage point (an offline lookup, never the IP)."""

    probe_cc: str = "ZZ"
    probe_asn: str = "AS0"
    probe_network_name: str | None = None
    network_type: str = "unknown"
    notes: list[str] = field(default_factory=list)


def build_annotations(identity: ProbeIdentity, lab: str | None) -> dict[str, str]:
    out = {
        "architecture": platform.machine() or "unknown",
        "engine_name": "didban",
        "engine_version": __version__,
        "platform": platform.system().lower() or "unknown",
        "network_type": identity.network_type,
        "python_version": platform.python_version(),
    }
    if lab:
        out["x_didban_lab_profile"] = lab
    return out


def envelope(
    *,
    test_name: str,
    test_version: str,
    input_: str | None,
    report_id: str,
    identity: ProbeIdentity,
    test_start: dt.datetime,
    measurement_start: dt.datetime,
    runtime: float,
    test_keys: Any,
    extensions: dict[str, int],
    test_helpers: dict[str, Any],
    options: list[str],
    lab_profile: str | None = None,
) -> Measurement:
    """Assemble one measurement; the probe and resolver IPs are always the scrubbed value."""
    return Measurement(
        test_name=test_name,
        test_version=test_version,
        input=input_,
        report_id=report_id,
        measurement_start_time=ooni_time(measurement_start),
        test_start_time=ooni_time(test_start),
        probe_cc=identity.probe_cc,
        probe_asn=identity.probe_asn,
        probe_network_name=identity.probe_network_name,
        probe_ip=SCRUBBED_IP,
        resolver_ip=SCRUBBED_IP,
        software_version=__version__,
        annotations=build_annotations(identity, lab_profile),
        extensions=dict(extensions),
        test_helpers=test_helpers,
        options=options,
        test_runtime=round(runtime, 6),
        test_keys=test_keys,
    )
