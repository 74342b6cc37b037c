"""The collector: OONI's report protocol (bk-003) and single-call submission (bk-006).

* ``POST /report`` opens a report and returns a ``report_id`` in OONI's format
  (``{YYYYMMDDTHHMMSSZ}_{testname}_{CC}_{asn}_n{collector}_{random}``). The id encodes
  what the report is about, so the collector keeps no report state (as OONI's).
* ``POST /report/{report_id}`` takes ``{"format": "json", "content": {measurement}}``;
  the measurement must pass ``model.validate.problems`` and agree with the report id on
  test name, country and network, else 400 and nothing is stored.
* ``POST /report/{report_id}/close`` returns ``{}``.
* ``POST /api/v1/submit_measurement`` takes ``{"format": "json", "content": "<JSON
  string or object>"}``; a missing ``report_id`` is generated.

A 200 carrying a ``measurement_uid`` means the measurement is fsynced in the archive and
indexed. Submitting the same content again returns the same uid and stores nothing new.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from fastapi import APIRouter, HTTPException, Request, Response

from didban import __version__
from didban.api.body import read_json
from didban.model.validate import problems
from didban.store.committer import Committer
from didban.store.rows import text
from didban.store.uid import compact_test_name, content_hash, parse_time

REPORT_ID: Final = re.compile(
    r"^(\d{8}T\d{6}Z)_([a-z0-9]{2,30})_([A-Z]{2})_(\d{1,10})_n(\d+)_([A-Za-z0-9]{4,40})$"
)
COLLECTOR_ID: Final = 0
_CC: Final = re.compile(r"^[A-Z]{2}$")
_ASN: Final = re.compile(r"^AS[0-9]{1,10}$")


def new_report_id(
    test_name: str, cc: str, asn: str, when: datetime | None = None, rand: str | None = None
) -> str:
    """OONI's report id; ``rand`` defaults to 12 random bytes in base64 ("oo" altchars)."""
    t = when or datetime.now(UTC)
    rand = rand or base64.b64encode(os.urandom(12), altchars=b"oo").decode()
    asn_int = int(asn[2:]) if _ASN.match(asn) else 0
    cc = cc if _CC.match(cc) else "ZZ"
    return (
        f"{t:%Y%m%dT%H%M%SZ}_{compact_test_name(test_name)}_{cc}_{asn_int}_n{COLLECTOR_ID}_{rand}"
    )


def _problem_message(found: list[str]) -> str:
    head = "; ".join(found[:3])
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    return f"the measurement does not follow the OONI data format: {head}{more}"


def _body_doc(content: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI text for a JSON body the handler reads itself (to enforce the size limit)."""
    schema = {"type": "object", "properties": content, "example": example}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_MEASUREMENT = {"type": "object", "description": "an OONI measurement (df-000)"}
_OPEN = _body_doc(
    {k: {"type": "string"} for k in ("format", "probe_cc", "probe_asn", "software_name",
     "software_version", "test_name", "test_start_time", "test_version", "data_format_version")},
    {"format": "json", "probe_cc": "IR", "probe_asn": "AS197207", "software_name": "didban",
     "software_version": "0.1.0", "test_name": "web_connectivity",
     "test_start_time": "2026-11-21 09:00:00", "test_version": "0.4.3",
     "data_format_version": "0.2.0"},
)  # fmt: skip
_SUBMIT = _body_doc(
    {"format": {"type": "string", "enum": ["json"]}, "content": _MEASUREMENT},
    {"format": "json", "content": {"test_name": "web_connectivity", "...": "..."}},
)
_SUBMIT_V1 = _body_doc(
    {
        "format": {"type": "string", "enum": ["json"]},
        "content": {"type": "string", "description": "the measurement as a JSON string"},
    },
    {"format": "json", "content": '{"test_name": "web_connectivity", "...": "..."}'},
)


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def router(committer: Committer, max_body: int) -> APIRouter:
    r = APIRouter(tags=["collector"])

    async def store(m: dict[str, Any]) -> str:
        found = problems(m)
        if found:
            raise HTTPException(400, _problem_message(found))
        try:
            added = await asyncio.wrap_future(committer.submit(m))
        except Exception as exc:  # disk full, I/O error: nothing acknowledged, retry later
            raise HTTPException(
                503, f"the measurement could not be stored ({exc}); retry later"
            ) from None
        return added.measurement_uid

    @r.post("/report", summary="Open a report (OONI bk-003)", openapi_extra=_OPEN)
    async def open_report(request: Request) -> dict[str, Any]:
        body = await read_json(request, max_body)
        if not isinstance(body, dict):
            raise HTTPException(400, "the body must be a JSON object")
        fmt = body.get("format", "json")
        if fmt != "json":
            raise HTTPException(400, f"format {fmt!r} is not supported; use 'json'")
        test_name = body.get("test_name")
        if not isinstance(test_name, str) or not re.fullmatch(r"[a-z0-9_]{2,30}", test_name):
            raise HTTPException(400, "test_name is missing or not a test name")
        for key in ("software_name", "software_version", "test_version", "test_start_time"):
            if not isinstance(body.get(key), str):
                raise HTTPException(400, f"missing field '{key}'")
        cc = text(body.get("probe_cc"), "ZZ")
        asn = text(body.get("probe_asn"), "AS0")
        return {
            "backend_version": __version__,
            "report_id": new_report_id(test_name, cc, asn),
            "supported_formats": ["json"],
        }

    @r.post(
        "/report/{report_id}",
        summary="Submit a measurement to a report (OONI bk-003)",
        response_model=None,
        openapi_extra=_SUBMIT,
    )
    async def submit_to_report(report_id: str, request: Request) -> Response:
        m = REPORT_ID.match(report_id)
        if not m:
            raise HTTPException(400, f"{report_id!r} is not a report id issued by POST /report")
        body = await read_json(request, max_body)
        if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
            raise HTTPException(400, "the body must be {'format': 'json', 'content': {...}}")
        if body.get("format", "json") != "json":
            raise HTTPException(400, "format must be 'json'")
        content: dict[str, Any] = body["content"]
        if content.get("report_id") != report_id:
            raise HTTPException(400, "inconsistent measurement: its report_id differs from the URL")
        _, tn, cc, asn, _, _ = m.groups()
        if (
            compact_test_name(str(content.get("test_name", ""))) != tn
            or content.get("probe_cc") != cc
            or content.get("probe_asn") != f"AS{asn}"
        ):
            raise HTTPException(
                400,
                "inconsistent measurement: test_name, probe_cc or probe_asn differ from the report",
            )
        return _json({"measurement_uid": await store(content)})

    @r.post("/report/{report_id}/close", summary="Close a report (OONI bk-003)")
    async def close_report(report_id: str) -> dict[str, Any]:
        if not REPORT_ID.match(report_id):
            raise HTTPException(400, f"{report_id!r} is not a report id issued by POST /report")
        return {}

    @r.post(
        "/api/v1/submit_measurement",
        summary="Submit one measurement (OONI bk-006)",
        response_model=None,
        openapi_extra=_SUBMIT_V1,
    )
    async def submit_measurement(request: Request) -> Response:
        body = await read_json(request, max_body)
        if not isinstance(body, dict) or "content" not in body:
            raise HTTPException(400, "the body must be {'format': 'json', 'content': ...}")
        if body.get("format", "json") != "json":
            raise HTTPException(400, "format must be 'json'")
        content = body["content"]
        if isinstance(content, str):
            try:
                content = orjson.loads(content)
            except orjson.JSONDecodeError as exc:
                raise HTTPException(400, f"content is not valid JSON ({exc})") from None
        if not isinstance(content, dict):
            raise HTTPException(400, "content must be a measurement (a JSON object)")
        if not content.get("report_id"):
            # Derived from the content, so a resubmission gets the same id (and is a duplicate).
            content["report_id"] = new_report_id(
                str(content.get("test_name", "unknown")),
                str(content.get("probe_cc", "ZZ")),
                str(content.get("probe_asn", "AS0")),
                when=parse_time(content.get("test_start_time")),
                rand=content_hash(content)[:16],
            )
        uid = await store(content)
        return _json(
            {
                "measurement_uid": uid,
                "verification_status": "unverified",
                "submit_response": "ok",
                "protocol_version": 0,
                "error": None,
                "report_id": content["report_id"],
            }
        )

    return r
