"""Measurement identity: the content hash used for de-duplication and OONI's ``measurement_uid``.

OONI's collector names a measurement ``{upload time %Y%m%d%H%M%S.%f}_{CC}_{testname}_{hash}``
where ``testname`` has its underscores removed and ``hash`` is the first 16 hex digits of
SHA-512 over the body (ooni/backend ``reports.py``; reference ``ooni-backend.md`` §3.1).
didban hashes the *canonical* JSON of the measurement (keys sorted, no whitespace, our own
``measurement_uid`` key left out), so the same measurement re-serialised differently is
still recognised as the same one: that hash is the de-duplication key.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Final

import orjson

UID_RE: Final = re.compile(r"^(\d{14}\.\d{6})_([A-Z]{2})_([a-z0-9]+)_([0-9a-f]{16})$")
_OONI_TIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def canonical(measurement: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of a measurement without our ``measurement_uid`` key."""
    body = {k: v for k, v in measurement.items() if k != "measurement_uid"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def content_hash(measurement: dict[str, Any]) -> str:
    """Hex SHA-512 of the canonical JSON: equal for equal content, whatever the spelling."""
    return hashlib.sha512(canonical(measurement)).hexdigest()


def compact_test_name(test_name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", test_name.lower()) or "unknown"


def make_uid(when: datetime, probe_cc: str, test_name: str, digest: str) -> str:
    """OONI's uid scheme, e.g. ``20210208220710.181572_MA_ndt_7888edc7748936bf``."""
    cc = probe_cc if re.fullmatch(r"[A-Z]{2}", probe_cc or "") else "ZZ"
    return f"{when:%Y%m%d%H%M%S.%f}_{cc}_{compact_test_name(test_name)}_{digest[:16]}"


def uid_time(uid: str) -> datetime | None:
    """The upload time a uid carries, or None when ``uid`` is not in OONI's scheme."""
    m = UID_RE.match(uid)
    if not m:
        return None
    t = m.group(1)
    try:
        return datetime(
            int(t[0:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]), int(t[12:14]),
            int(t[15:21]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None


def parse_time(text: Any) -> datetime | None:
    """OONI's ``YYYY-MM-DD hh:mm:ss`` (UTC) as an aware datetime; ISO 8601 is tolerated."""
    return _parse_time(text) if isinstance(text, str) else None


def _parse_time(text: str) -> datetime | None:
    if _OONI_TIME.match(text):
        try:
            return datetime(
                int(text[0:4]), int(text[5:7]), int(text[8:10]),
                int(text[11:13]), int(text[14:16]), int(text[17:19]), tzinfo=UTC,
            )  # fmt: skip
        except ValueError:
            return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
