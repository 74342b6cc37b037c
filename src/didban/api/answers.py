"""The shapes of the API's JSON answers, as OpenAPI response models.

The handlers build their answers as plain dicts (serialised by orjson, see ``data.py``);
these models only *describe* them in ``/openapi.json``, and the schemathesis run
(``tests/api/test_schemathesis.py``) checks every answer against them. Field names follow
OONI's API where it has one (``ooni-backend.md`` §9).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ServiceInfo(BaseModel):
    service: Literal["didban"]
    version: str
    docs: str


# ---------------------------------------------------------------- collector


class OpenedReport(BaseModel):
    backend_version: str
    report_id: str
    supported_formats: list[Literal["json"]]


class StoredMeasurement(BaseModel):
    measurement_uid: str


class ClosedReport(BaseModel):
    """An empty object, as OONI's collector answers."""

    model_config = ConfigDict(extra="forbid")


class SubmittedMeasurement(BaseModel):
    """OONI's ``SubmitMeasurementResponse`` (bk-006) without anonymous credentials."""

    measurement_uid: str
    verification_status: Literal["unverified"]
    submit_response: Literal["ok"]
    protocol_version: Literal[0]
    error: None
    report_id: str


# ---------------------------------------------------------------- reading


class Scores(BaseModel):
    blocking_type: str | None
    state: str | None


class ListedMeasurement(BaseModel):
    measurement_uid: str
    measurement_url: str
    report_id: str | None
    probe_cc: str
    probe_asn: str
    test_name: str | None
    measurement_start_time: str | None
    input: str | None
    domain: str | None
    service: str | None
    category_code: str | None
    anomaly: bool
    confirmed: bool
    failure: bool
    state: str | None
    layer: str | None
    method: str | None
    rules_version: str | None
    scores: Scores


class PageMetadata(BaseModel):
    count: int
    current_page: int
    limit: int
    next_url: str | None
    offset: int
    pages: int
    query_time: float


class MeasurementsPage(BaseModel):
    metadata: PageMetadata
    results: list[ListedMeasurement]


class EvidenceItem(BaseModel):
    pointer: str
    summary: str
    observed: Any = None
    expected: Any = None


class StoredVerdict(BaseModel):
    """A row of the verdicts table (``store/schema.py``), ``blocking`` and ``evidence``
    decoded from their JSON text."""

    measurement_uid: str
    report_id: str | None
    input: str | None
    test_name: str | None
    probe_cc: str | None
    probe_asn: str | None
    measurement_start_time: str | None
    state: str
    rule_id: str | None
    rules_version: str | None
    confidence: float | None
    layer: str | None
    method: str | None
    fingerprint_id: str | None
    confirmed: bool | None
    service: str | None
    domain: str | None
    blocking: str | bool | None
    accessible: bool | None
    evidence: list[EvidenceItem]
    reason: str | None


class MeasurementDetail(BaseModel):
    measurement_uid: str
    measurement: dict[str, Any]
    verdict: StoredVerdict | None
    evidence: list[EvidenceItem]


class Counts(BaseModel):
    measurement_count: int
    ok_count: int
    anomaly_count: int
    confirmed_count: int
    failure_count: int
    down_count: int


class AggregationCell(Counts):
    """One cell: the counts and the value of each requested axis (only those)."""

    measurement_start_day: str | None = None
    probe_cc: str | None = None
    probe_asn: int | None = None
    test_name: str | None = None
    domain: str | None = None
    input: str | None = None
    category_code: str | None = None
    blocking_type: str | None = None
    service: str | None = None
    method: str | None = None
    layer: str | None = None
    state: str | None = None


class DbStats(BaseModel):
    row_count: int
    elapsed_seconds: float


class Aggregation(BaseModel):
    """``result`` is a list of cells, or one cell when no axis is given."""

    v: Literal[0]
    dimension_count: int
    time_grain: Literal["hour", "day", "week", "month", "year"]
    since: str
    until: str
    db_stats: DbStats
    result: list[AggregationCell] | Counts


class Witness(BaseModel):
    measurement_uid: str
    measurement_start_time: str | None
    input: str | None
    probe_asn: str
    rules_version: str | None


class InputState(BaseModel):
    input: str | None
    state: str
    method: str | None
    measurement_uid: str
    measurement_start_time: str | None


class ServiceState(BaseModel):
    service: str
    name: str
    category_code: str | None
    state: Literal["blocked", "down", "ok", "inconclusive", "no_data"]
    method: str | None
    layer: str | None
    witness: Witness | None
    counts: dict[str, int]
    inputs: list[InputState]


class Services(BaseModel):
    probe_cc: str
    since: str
    until: str
    services: list[ServiceState]
