"""What a measurement must be for didban to keep it: one set of rules for every entry.

The collector (``POST /report/{id}``, ``POST /api/v1/submit_measurement``), the report
opening (``POST /report``) and ``didban ingest`` call these functions, so a record is
refused or kept by the same rules whichever door it comes in by, and every value kept
is one the read API's parameters (``api/filters.py``, built from the patterns below)
can ask for. Each function answers with the *first* problem as one sentence, or None.

The rules are OONI's where OONI has one (``ooni-backend.md`` §3.1: ``probe_cc``
``^[A-Z]{2}$``, ``probe_asn`` ``AS`` and digits, a lowercase ``test_name``, the start
time ``YYYY-MM-DD hh:mm:ss`` UTC) and otherwise only what storing and querying need:
nothing about ``input``'s presence, ``data_format_version`` or the test keys' shape, so
every measurement OONI's collector takes is taken here. On top of OONI's:

* nesting: at most ``MAX_DEPTH`` levels of objects and arrays (the measurement is level
  1; real ones reach 9). Deeper values cannot be serialised or analysed safely;
* ``input``: a string of at most ``MAX_INPUT`` characters, or null/absent;
* ``report_id``: letters, digits, ``_ . -`` (at most 128), or empty/null/absent;
* ``measurement_start_time``: a real time from ``EARLIEST`` to ``FUTURE_SLACK`` after
  now (a probe's clock may be a little ahead; OONI flags times more than an hour ahead);
* not a didban verdict record (``model.verdict.is_verdict_record``).

Pure functions over decoded JSON (no I/O); ``now`` is passed in or read from the clock.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from didban.model.verdict import NOT_A_MEASUREMENT, is_verdict_record

MAX_DEPTH: Final = 64
TOO_DEEP: Final = f"the measurement nests more than {MAX_DEPTH} levels of objects and arrays"
MAX_INPUT: Final = 2048
EARLIEST: Final = date(2012, 1, 1)  # before OONI's first published measurement
FUTURE_SLACK: Final = timedelta(days=1)

TEST_NAME: Final = re.compile(r"^[a-z0-9_]{2,40}$")
PROBE_CC: Final = re.compile(r"^[A-Z]{2}$")
PROBE_ASN: Final = re.compile(r"^AS[0-9]{1,10}$")
REPORT_ID: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
OONI_TIME: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")

REQUIRED: Final = ("test_name", "probe_cc", "probe_asn", "measurement_start_time")
REPORT_REQUIRED: Final = (
    "probe_cc",
    "probe_asn",
    "software_name",
    "software_version",
    "test_name",
    "test_start_time",
    "test_version",
)


def show(value: Any, width: int = 40) -> str:
    """``repr(value)``, cut to ``width`` characters so a sentence stays one line."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds more than ``limit`` levels of objects and arrays (``{}`` is
    one level, a scalar none). Iterative, and it stops at the first path past ``limit``."""
    if type(value) is not dict and type(value) is not list:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if level > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, level + 1))
    return False


def _field(name: str, value: Any) -> str | None:
    """The problem with one of the identifying fields (their patterns are the read API's)."""
    if name == "test_name" and not (isinstance(value, str) and TEST_NAME.fullmatch(value)):
        return (
            "test_name must be a test name like 'web_connectivity' (2-40 lowercase letters, "
            f"digits and '_'), not {show(value)}"
        )
    if name == "probe_cc" and not (isinstance(value, str) and PROBE_CC.fullmatch(value)):
        return f"probe_cc must be two capital letters like 'IR' ('ZZ': unknown), not {show(value)}"
    if name == "probe_asn" and not (isinstance(value, str) and PROBE_ASN.fullmatch(value)):
        return f"probe_asn must look like 'AS197207' ('AS0': unknown), not {show(value)}"
    return None


def time_refusal(name: str, value: Any, now: datetime | None = None) -> str | None:
    """Why ``value`` is not a start time didban keeps (see the module docstring), or None."""
    if not isinstance(value, str) or not OONI_TIME.fullmatch(value):
        return f"{name} must be a UTC time 'YYYY-MM-DD hh:mm:ss', not {show(value)}"
    try:
        t = datetime(
            int(value[0:4]), int(value[5:7]), int(value[8:10]),
            int(value[11:13]), int(value[14:16]), int(value[17:19]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return f"{name} {value!r} is not a real date and time"
    if t.date() < EARLIEST:
        return f"{name} {value!r} is before {EARLIEST}"
    latest = (now or datetime.now(UTC)) + FUTURE_SLACK
    if t > latest:
        return f"{name} {value!r} is in the future (later than {latest:%Y-%m-%d %H:%M:%S} UTC)"
    return None


def measurement_refusal(m: Any, now: datetime | None = None) -> str | None:
    """Why ``m`` (a decoded record) cannot be stored, as one sentence, or None."""
    if not isinstance(m, dict):
        return "a measurement must be a JSON object"
    if nests_deeper_than(m, MAX_DEPTH):
        return TOO_DEEP
    if is_verdict_record(m):
        return NOT_A_MEASUREMENT
    for name in REQUIRED:
        if name not in m:
            return f"missing field '{name}'"
    for name in ("test_name", "probe_cc", "probe_asn"):
        problem = _field(name, m[name])
        if problem:
            return problem
    problem = time_refusal("measurement_start_time", m["measurement_start_time"], now)
    if problem:
        return problem
    inp = m.get("input")
    if inp is not None and not isinstance(inp, str):
        return f"input must be a string or null, not {type(inp).__name__}"
    if inp is not None and len(inp) > MAX_INPUT:
        return f"input is {len(inp)} characters long; the limit is {MAX_INPUT}"
    rid = m.get("report_id")
    if rid not in (None, "") and not (isinstance(rid, str) and REPORT_ID.fullmatch(rid)):
        return f"report_id must be letters, digits, '_', '.' or '-' (at most 128), not {show(rid)}"
    return None


def report_refusal(body: Any, now: datetime | None = None) -> str | None:
    """Why ``body`` cannot open a report (``POST /report``, OONI bk-003), or None.

    The fields a report's measurements will carry follow the measurement rules, so a
    report is never opened for measurements that would all be refused."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    fmt = body.get("format", "json")
    if fmt != "json":
        return f"format {show(fmt)} is not supported; use 'json'"
    for name in REPORT_REQUIRED:
        if name not in body:
            return f"missing field '{name}'"
    for name in ("test_name", "probe_cc", "probe_asn"):
        problem = _field(name, body[name])
        if problem:
            return problem
    for name in ("software_name", "software_version", "test_version"):
        if not isinstance(body[name], str):
            return f"{name} must be a string, not {type(body[name]).__name__}"
    if "data_format_version" in body and not isinstance(body["data_format_version"], str):
        return "data_format_version must be a string"
    return time_refusal("test_start_time", body["test_start_time"], now)


# ------------------------------------------------------------------ the time rule as a regex


def _one_of(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "(?:" + "|".join(items) + ")"


def _days(first: int, last: int) -> str:
    """Two-digit day numbers ``first``..``last`` (1 <= first <= last <= 31) as a regex."""
    parts = []
    for tens in range(first // 10, last // 10 + 1):
        low, high = max(first, tens * 10) % 10, min(last, tens * 10 + 9) % 10
        if tens * 10 + low <= last:
            parts.append(f"{tens}{low}" if low == high else f"{tens}[{low}-{high}]")
    return _one_of(parts)


def _months_of(year: int, months: range) -> str:
    """``MM-DD`` of every day of ``months`` in ``year``, grouped by month length."""
    by_length: dict[int, list[str]] = {}
    for month in months:
        by_length.setdefault(calendar.monthrange(year, month)[1], []).append(f"{month:02d}")
    return _one_of([f"{_one_of(ms)}-{_days(1, n)}" for n, ms in sorted(by_length.items())])


def time_pattern(last: date) -> str:
    """A regex matching exactly the ``YYYY-MM-DD hh:mm:ss`` times from ``EARLIEST`` to the
    end of ``last`` (the JSON Schema form of ``time_refusal``'s range, for OpenAPI)."""
    whole = range(EARLIEST.year, last.year)
    parts = []
    for leap in (False, True):
        years = [str(y) for y in whole if calendar.isleap(y) == leap]
        if years:
            parts.append(f"{_one_of(years)}-{_months_of(2012 if leap else 2013, range(1, 13))}")
    tail = [f"{last.month:02d}-{_days(1, last.day)}"]
    if last.month > 1:
        tail.insert(0, _months_of(last.year, range(1, last.month)))
    parts.append(f"{last.year}-{_one_of(tail)}")
    clock = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    return f"^{_one_of(parts)} {clock}$"
