"""The collector: OONI's report protocol (bk-003) and single-call submission (bk-006).

* ``POST /report`` opens a report and returns a ``report_id`` in OONI's format
  (``{YYYYMMDDTHHMMSSZ}_{testname}_{CC}_{asn}_n{collector}_{random}``). The id encodes
  what the report is about, so the collector keeps no report state (as OONI's).
* ``POST /report/{report_id}`` takes ``{"format": "json", "content": {measurement}}``;
  the measurement must pass ``model.admission.measurement_refusal`` (the rules every entry
  applies) and agree with the report id on test name, country and network, else 400 and
  nothing is stored.
* ``POST /report/{report_id}/close`` returns ``{}``.
* ``POST /report`` refuses what ``model.admission.report_refusal`` refuses (a country,
  network or test name no measurement could carry), instead of opening a report whose
  every measurement would be refused as inconsistent.
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
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BeforeValidator, WithJsonSchema

from didban import __version__
from didban.api import answers, contract
from didban.api.body import decode_content, read_json
from didban.model.admission import measurement_refusal, report_refusal, show, time_refusal
from didban.store.committer import Committer
from didban.store.uid import compact_test_name, content_hash, parse_time

REPORT_ID: Final = re.compile(
    r"^([0-9]{8}T[0-9]{6}Z)_([a-z0-9]{2,40})_([A-Z]{2})_([0-9]{1,10})_n([0-9]{1,10})"
    r"_([A-Za-z0-9]{4,40})$"
)
COLLECTOR_ID: Final = 0
_CC: Final = re.compile(r"^[A-Z]{2}$")
_ASN: Final = re.compile(r"^AS[0-9]{1,10}$")


def _report_id(value: object) -> str:
    if not isinstance(value, str) or not REPORT_ID.fullmatch(value):
        raise ValueError(f"{show(value)} is not a report id issued by POST /report")
    return value


ReportIdPath = Annotated[
    str,
    Path(description="A report id issued by POST /report"),
    BeforeValidator(_report_id),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": REPORT_ID.pattern,
            "examples": [contract.EXAMPLE_REPORT_ID],
        }
    ),
]


def new_report_id(
    test_name: str, cc: str, asn: str, when: datetime | None = None, rand: str | None = None
) -> str:
    """OONI's report id; ``rand`` defaults to 12 random bytes in base64 ("oo" altchars)."""
    t = when or datetime.now(UTC)
    rand = rand or base64.b64encode(os.urandom(12), altchars=b"oo").decode()
    asn_int = int(asn[2:]) if _ASN.fullmatch(asn) else 0
    cc = cc if _CC.fullmatch(cc) else "ZZ"
    return (
        f"{t:%Y%m%dT%H%M%SZ}_{compact_test_name(test_name)}_{cc}_{asn_int}_n{COLLECTOR_ID}_{rand}"
    )


def _start_of_test(m: dict[str, Any]) -> str:
    """The test's start time when it is a time the rules accept, else the measurement's."""
    given = m.get("test_start_time")
    if isinstance(given, str) and time_refusal("test_start_time", given) is None:
        return given
    return str(m["measurement_start_time"])


def _refused(problem: str) -> HTTPException:
    return HTTPException(400, f"the measurement is refused: {problem}")


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def router(committer: Committer, max_body: int) -> APIRouter:
    r = APIRouter(tags=["collector"])
    today = datetime.now(UTC).date()

    async def store(m: dict[str, Any]) -> str:
        try:
            added = await asyncio.wrap_future(committer.submit(m))
        except Exception as exc:  # disk full, I/O error: nothing acknowledged, retry later
            raise HTTPException(
                503, f"the measurement could not be stored ({exc}); retry later"
            ) from None
        return added.measurement_uid

    @r.post(
        "/report",
        summary="Open a report (OONI bk-003)",
        response_model=answers.OpenedReport,
        responses=contract.errors(*contract.BODY_ERRORS),
        openapi_extra=contract.body(
            contract.open_report_schema(today),
            {
                "format": "json",
                "probe_cc": "IR",
                "probe_asn": "AS197207",
                "software_name": "ooniprobe",
                "software_version": "3.20.0",
                "test_name": "web_connectivity",
                "test_start_time": "2026-11-21 09:00:00",
                "test_version": "0.4.3",
                "data_format_version": "0.2.0",
            },
        ),
    )
    async def open_report(request: Request) -> dict[str, Any]:
        body = await read_json(request, max_body)
        problem = report_refusal(body)
        if problem:
            raise HTTPException(400, f"the report cannot be opened: {problem}")
        return {
            "backend_version": __version__,
            "report_id": new_report_id(body["test_name"], body["probe_cc"], body["probe_asn"]),
            "supported_formats": ["json"],
        }

    @r.post(
        "/report/{report_id}",
        summary="Submit a measurement to a report (OONI bk-003)",
        description="The measurement's report_id must be the URL's, and its test_name, "
        "probe_cc and probe_asn those the report id carries (as OONI's collector checks).",
        response_model=None,
        responses={
            200: {"model": answers.StoredMeasurement, "description": "Stored"},
            **contract.errors(*contract.BODY_ERRORS, 503),
        },
        openapi_extra=contract.body(
            contract.submission_schema(today, "the measurement (an object)"),
            {
                "format": "json",
                "content": contract.example_measurement(contract.EXAMPLE_REPORT_ID),
            },
        ),
    )
    async def submit_to_report(report_id: ReportIdPath, request: Request) -> Response:
        m = REPORT_ID.fullmatch(report_id)
        assert m is not None  # checked by ReportIdPath
        body = await read_json(request, max_body)
        if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
            raise HTTPException(400, "the body must be {'format': 'json', 'content': {...}}")
        if body.get("format", "json") != "json":
            raise HTTPException(400, "format must be 'json'")
        content: dict[str, Any] = body["content"]
        problem = measurement_refusal(content)
        if problem:
            raise _refused(problem)
        if content.get("report_id") != report_id:
            raise HTTPException(400, "inconsistent measurement: its report_id differs from the URL")
        _, tn, cc, asn, _, _ = m.groups()
        if (
            compact_test_name(content["test_name"]) != tn
            or content["probe_cc"] != cc
            or content["probe_asn"] != f"AS{asn}"
        ):
            raise HTTPException(
                400,
                "inconsistent measurement: test_name, probe_cc or probe_asn differ from the report",
            )
        return _json({"measurement_uid": await store(content)})

    @r.post(
        "/report/{report_id}/close",
        summary="Close a report (OONI bk-003)",
        response_model=answers.ClosedReport,
        responses=contract.errors(400),
    )
    async def close_report(report_id: ReportIdPath) -> dict[str, Any]:
        return {}

    @r.post(
        "/api/v1/submit_measurement",
        summary="Submit one measurement (OONI bk-006)",
        description="OONI probes send `content` as a JSON string holding the measurement; "
        "the object itself is accepted too, and both follow the schema below. A missing or "
        "empty report_id is derived from the content.",
        response_model=None,
        responses={
            200: {"model": answers.SubmittedMeasurement, "description": "Stored"},
            **contract.errors(*contract.BODY_ERRORS, 503),
        },
        openapi_extra=contract.body(
            contract.submission_schema(
                today, "the measurement, as an object or as a JSON string holding it"
            ),
            {"format": "json", "content": contract.example_measurement()},
        ),
    )
    async def submit_measurement(request: Request) -> Response:
        body = await read_json(request, max_body)
        if not isinstance(body, dict) or "content" not in body:
            raise HTTPException(400, "the body must be {'format': 'json', 'content': ...}")
        if body.get("format", "json") != "json":
            raise HTTPException(400, "format must be 'json'")
        content = body["content"]
        if isinstance(content, str):
            content = decode_content(content)
        problem = measurement_refusal(content)
        if problem:
            raise _refused(problem)
        if not content.get("report_id"):
            # Derived from the content, so a resubmission gets the same id (and is a duplicate).
            content["report_id"] = new_report_id(
                content["test_name"],
                content["probe_cc"],
                content["probe_asn"],
                when=parse_time(_start_of_test(content)),
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
