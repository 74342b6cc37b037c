"""Schemathesis hooks: the rules of the API that OpenAPI cannot state, told to the generator.

JSON Schema describes each parameter and body on its own; three rules of didban's API tie
two values together, and a request breaking one is refused with a 400 that says so (see
docs/api.md). Without these hooks schemathesis would call such a request "schema-valid"
and its refusal a failure. The hooks only *shape* what is generated; every check still
runs on every request.

* ``POST /report/{report_id}``: the measurement's ``report_id``, ``test_name``,
  ``probe_cc`` and ``probe_asn`` are those the URL's report id carries (OONI's rule). A
  schema-valid case gets them from its URL, as a real probe's measurement has them.
* ``since`` must not be after ``until`` (listing, aggregation, services, export).
* ``axis_x`` and ``axis_y`` must differ (aggregation).

Loaded by ``schemathesis run`` through ``SCHEMATHESIS_HOOKS`` (``test_schemathesis.py``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import schemathesis

_REPORT = re.compile(r"^[0-9]{8}T[0-9]{6}Z_([a-z0-9]+)_([A-Z]{2})_([0-9]+)_n[0-9]+_[A-Za-z0-9]+$")
_DAY = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})")


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A positive case of ``POST /report/{report_id}`` carries its URL's identity (in every
    phase: set just before the request, once the URL is final)."""
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive:
        _carry_identity(case)


def _carry_identity(case: Any) -> Any:
    if case.operation.path != "/report/{report_id}" or case.method.upper() != "POST":
        return case
    rid = (case.path_parameters or {}).get("report_id")
    m = _REPORT.match(rid) if isinstance(rid, str) else None
    body = case.body
    if m is None or not isinstance(body, dict) or not isinstance(body.get("content"), dict):
        return case
    test_name, cc, asn = m.groups()
    body["content"].update(report_id=rid, test_name=test_name, probe_cc=cc, probe_asn=f"AS{asn}")
    return case


def _day(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    m = _DAY.match(value)
    if m is None:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    """No generated query breaks a rule between two parameters (with the server's
    defaults: ``until`` is tomorrow for the aggregation, now for services)."""
    query = case.query or {}
    since, until = _day(query.get("since")), _day(query.get("until"))
    path = case.operation.path
    if until is None and path in ("/api/v1/aggregation", "/api/v1/services/{probe_cc}"):
        until = datetime.now(UTC).date() + timedelta(days=1 if "aggregation" in path else 0)
    if since is not None and until is not None and since > until:
        return False
    axis_x, axis_y = query.get("axis_x"), query.get("axis_y")
    return not (axis_x and axis_x == axis_y)
