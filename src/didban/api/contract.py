"""The API's contract as OpenAPI states it: error answers, request bodies, the document itself.

``/openapi.json`` is meant to be the truth a generated client or a fuzzer can rely on
(``tests/api/test_schemathesis.py`` checks it with schemathesis): every operation lists the
statuses it really answers, each 4xx/5xx with the ``Problem`` body; the request bodies the
collector reads itself are described here from the rules it enforces
(``model.admission``'s patterns and limits), so a body the document calls valid is stored
and one it calls invalid is refused. FastAPI's default 422 never happens (``app.py`` turns
parameter errors into 400) and is taken out of the document.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from didban.model import admission


class Problem(BaseModel):
    """Every error answer: one sentence saying what is wrong."""

    detail: str = Field(examples=["probe_cc must be two capital letters like 'IR', not 'Iran'"])


_WHY: Final = {
    400: "A parameter or the body is wrong; `detail` says which and why. Nothing was stored.",
    404: "The path names something that does not exist.",
    413: "The body is larger than the server's limit (also after decompression).",
    415: "The body's Content-Encoding is not zstd, gzip or identity.",
    503: "The measurement could not be stored (disk full, I/O error); nothing was "
    "acknowledged: send it again later.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries of an operation's error statuses."""
    return {code: {"model": Problem, "description": _WHY[code]} for code in codes}


BODY_ERRORS: Final = (400, 413, 415)


# ---------------------------------------------------------------- request bodies


def _string(pattern: str, example: str) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "examples": [example]}


def measurement_schema(today: date) -> dict[str, Any]:
    """JSON Schema of a measurement the collector stores (``admission.measurement_refusal``)."""
    verdict_record = {
        "properties": {
            "rule_id": {"type": "string"},
            "rules_version": {"type": "string"},
            "test_keys": {"type": "null"},
        },
        "required": ["rule_id", "rules_version"],
    }
    return {
        "type": "object",
        "description": "An OONI measurement (df-000). Only the fields below are checked; any "
        f"other field is kept as sent. At most {admission.MAX_DEPTH} levels of objects and "
        "arrays. measurement_start_time may be up to one day ahead of the server's clock; "
        "the pattern shown is written for the day the server started. A didban verdict "
        "record (rule_id and rules_version, no test_keys) is not a measurement.",
        "required": list(admission.REQUIRED),
        "properties": {
            "test_name": _string(admission.TEST_NAME.pattern, "web_connectivity"),
            "probe_cc": _string(admission.PROBE_CC.pattern, "IR"),
            "probe_asn": _string(admission.PROBE_ASN.pattern, "AS197207"),
            "measurement_start_time": _string(admission.time_pattern(today), "2026-11-21 09:00:00"),
            "input": {
                "type": ["string", "null"],
                "maxLength": admission.MAX_INPUT,
                "examples": ["https://www.instagram.com/"],
            },
            "report_id": {
                "type": ["string", "null"],
                "pattern": f"^(?:{admission.REPORT_ID.pattern.strip('^$')})?$",
            },
            "test_keys": {"description": "the test's results (any JSON value)"},
        },
        "not": verdict_record,
    }


def open_report_schema(today: date) -> dict[str, Any]:
    """JSON Schema of ``POST /report``'s body (``admission.report_refusal``)."""
    text = {"type": "string"}
    return {
        "type": "object",
        "required": list(admission.REPORT_REQUIRED),
        "properties": {
            "format": {"type": "string", "enum": ["json"], "default": "json"},
            "probe_cc": _string(admission.PROBE_CC.pattern, "IR"),
            "probe_asn": _string(admission.PROBE_ASN.pattern, "AS197207"),
            "software_name": {**text, "examples": ["ooniprobe"]},
            "software_version": {**text, "examples": ["3.20.0"]},
            "test_name": _string(admission.TEST_NAME.pattern, "web_connectivity"),
            "test_start_time": _string(admission.time_pattern(today), "2026-11-21 09:00:00"),
            "test_version": {**text, "examples": ["0.4.3"]},
            "data_format_version": {**text, "examples": ["0.2.0"]},
        },
    }


def submission_schema(today: date, content_description: str) -> dict[str, Any]:
    """JSON Schema of ``{"format": "json", "content": {measurement}}``."""
    content = {**measurement_schema(today), "description": content_description}
    return {
        "type": "object",
        "required": ["content"],
        "properties": {
            "format": {"type": "string", "enum": ["json"], "default": "json"},
            "content": content,
        },
    }


EXAMPLE_REPORT_ID: Final = "20261121T090000Z_webconnectivity_IR_197207_n0_AbCdEfGhIjKl"


def example_measurement(report_id: str | None = None) -> dict[str, Any]:
    """A small measurement that every body schema here accepts (the documented example)."""
    m: dict[str, Any] = {
        "data_format_version": "0.2.0",
        "input": "https://www.instagram.com/",
        "measurement_start_time": "2026-11-21 09:00:05",
        "probe_asn": "AS197207",
        "probe_cc": "IR",
        "software_name": "ooniprobe",
        "software_version": "3.20.0",
        "test_name": "web_connectivity",
        "test_start_time": "2026-11-21 09:00:00",
        "test_version": "0.4.3",
        "test_keys": {"queries": [], "tcp_connect": [], "requests": []},
    }
    if report_id:
        m["report_id"] = report_id
    return m


def body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a JSON body the handler reads itself (to bound its size)."""
    media = {"schema": schema, "example": example}
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


# ---------------------------------------------------------------- the document


def install(app: FastAPI) -> None:
    """Serve an OpenAPI document without FastAPI's 422 (never answered: ``app.py`` turns
    parameter errors into a documented 400) and without its validation-error schemas, and
    with ``allowEmptyValue`` on every optional query parameter (``api.filters`` reads an
    empty one as absent)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for path in doc.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
                for parameter in operation.get("parameters", []):
                    # api.filters: an optional parameter given empty is the same as absent
                    if parameter.get("in") == "query" and not parameter.get("required"):
                        parameter["allowEmptyValue"] = True
        schemas = doc.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
