"""Read endpoints: measurements, one measurement, aggregation, services per country, exports.

Parameter names follow OONI's API (``ooni-backend.md`` §9). The handlers only parse and
check parameters and shape responses; the queries live in ``didban.store.queries``.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from didban.api import params as P
from didban.store import queries
from didban.store.schema import TABLES
from didban.store.store import Store

_UID: Final = re.compile(r"^[A-Za-z0-9_.\-]{10,120}$")
MAX_LIMIT: Final = 100_000


def _filters(
    probe_cc: str | None,
    probe_asn: str | None,
    test_name: str | None,
    domain: str | None,
    input: str | None,
    category_code: str | None,
    since: datetime | None,
    until: datetime | None,
    anomaly: str | None = None,
    confirmed: str | None = None,
    failure: str | None = None,
    service: str | None = None,
    report_id: str | None = None,
) -> queries.Filters:
    if since and until and since > until:
        raise P.BadParam("since must not be after until")
    return queries.Filters(
        probe_cc=P.ccs("probe_cc", probe_cc),
        probe_asn=P.asns("probe_asn", probe_asn),
        test_name=P.test_names("test_name", test_name),
        domain=[d.lower() for d in P.comma(domain)],
        service=P.comma(service),
        input=input or None,
        report_id=report_id or None,
        category_code=P.category("category_code", category_code),
        since=since,
        until=until,
        anomaly=P.boolean("anomaly", anomaly),
        confirmed=P.boolean("confirmed", confirmed),
        failure=P.boolean("failure", failure),
    )


class _Drain:
    """A write-only file that hands its bytes to a generator (streamed Parquet)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.pos = 0
        self.closed = False

    def write(self, b: bytes) -> int:
        self.buf.write(b)
        self.pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = self.buf.getvalue()
        self.buf = io.BytesIO()
        return data


def _parquet_stream(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    sink = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    try:
        for batch in batches:
            writer.write_batch(batch.cast(schema) if batch.schema != schema else batch)
            chunk = sink.take()
            if chunk:
                yield chunk
    finally:
        writer.close()
    yield sink.take()


def _csv_stream(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    header = True
    for batch in batches:
        out = io.BytesIO()
        pacsv.write_csv(
            pa.Table.from_batches([batch]),
            out,
            write_options=pacsv.WriteOptions(include_header=header),
        )
        header = False
        yield out.getvalue()
    if header:
        yield (",".join(f.name for f in schema) + "\n").encode()


def _json(body: Any) -> Response:
    """A JSON response serialised by orjson (FastAPI's encoder costs tens of ms on big lists)."""
    return Response(orjson.dumps(body), media_type="application/json")


def router(store: Store) -> APIRouter:
    r = APIRouter(tags=["data"])
    q = store.reader

    @r.get(
        "/api/v1/measurements", summary="List measurements (OONI parameters)", response_model=None
    )
    async def list_measurements(
        request: Request,
        probe_cc: str | None = Query(None, description="Comma list, e.g. IR,TM"),
        probe_asn: str | None = Query(None, description="Comma list, AS197207 or 197207"),
        test_name: str | None = Query(None, description="Comma list"),
        domain: str | None = Query(None, description="Comma list of hostnames"),
        input: str | None = Query(None, description="Exact input (overrides domain)"),
        category_code: str | None = Query(None),
        service: str | None = Query(None, description="didban: catalog service ids"),
        report_id: str | None = Query(None),
        since: str | None = Query(None, description="ISO date or time (inclusive)"),
        until: str | None = Query(None, description="ISO date or time (exclusive)"),
        anomaly: str | None = Query(None),
        confirmed: str | None = Query(None),
        failure: str | None = Query(None),
        order_by: str | None = Query(None, description="measurement_start_time (default)"),
        order: str | None = Query(None, description="asc or desc (default)"),
        limit: int = Query(100, description=f"1..{MAX_LIMIT}"),
        offset: int = Query(0, ge=0),
    ) -> Response:
        t0 = time.perf_counter()
        f = _filters(
            probe_cc, probe_asn, test_name, domain, input, category_code,
            P.when("since", since), P.when("until", until),
            anomaly, confirmed, failure, service, report_id,
        )  # fmt: skip
        ob = P.choice("order_by", order_by, queries.ORDER_BY, "measurement_start_time")
        od = P.choice("order", order, ("asc", "desc"), "desc")
        P.bounded("limit", limit, 1, MAX_LIMIT)
        P.bounded("offset", offset, 0, 10**9)
        rows, total = await run_in_threadpool(
            queries.list_measurements, q, f, str(ob), str(od), limit, offset
        )
        base = str(request.base_url).rstrip("/")
        for row in rows:
            row["measurement_url"] = f"{base}/api/v1/measurement/{row['measurement_uid']}"
        pages = (total + limit - 1) // limit
        next_url = None
        if offset + limit < total:
            next_url = str(request.url.include_query_params(offset=offset + limit))
        return _json(
            {
                "metadata": {
                    "count": total,
                    "current_page": offset // limit + 1,
                    "limit": limit,
                    "next_url": next_url,
                    "offset": offset,
                    "pages": pages,
                    "query_time": round(time.perf_counter() - t0, 4),
                },
                "results": rows,
            }
        )

    @r.get("/api/v1/measurement/{measurement_uid}", summary="One measurement, verdict, evidence")
    async def one_measurement(measurement_uid: str) -> dict[str, Any]:
        if not _UID.match(measurement_uid):
            raise P.BadParam(f"{measurement_uid!r} is not a measurement uid")
        raw = await run_in_threadpool(store.get, measurement_uid)
        if raw is None:
            raise HTTPException(404, f"no measurement with uid {measurement_uid!r}")
        loc = store.index.locate(measurement_uid)
        verdict = None
        if loc is not None:
            verdict = await run_in_threadpool(queries.verdict_for, q, measurement_uid, loc.day)
        return {
            "measurement_uid": measurement_uid,
            "measurement": raw,
            "verdict": verdict,
            "evidence": verdict["evidence"] if verdict else [],
        }

    @r.get("/api/v1/raw_measurement", summary="The raw measurement body (OONI)")
    async def raw_measurement(measurement_uid: str) -> dict[str, Any]:
        if not _UID.match(measurement_uid):
            raise P.BadParam(f"{measurement_uid!r} is not a measurement uid")
        raw = await run_in_threadpool(store.get, measurement_uid)
        if raw is None:
            raise HTTPException(404, f"no measurement with uid {measurement_uid!r}")
        return raw

    @r.get("/api/v1/aggregation", summary="Counts by axis (OONI parameters)", response_model=None)
    async def aggregation(
        probe_cc: str | None = Query(None),
        probe_asn: str | None = Query(None),
        test_name: str | None = Query(None),
        domain: str | None = Query(None),
        input: str | None = Query(None),
        category_code: str | None = Query(None),
        service: str | None = Query(None, description="didban: catalog service ids"),
        since: str | None = Query(None, description="date, default: 30 days before until"),
        until: str | None = Query(None, description="date (exclusive), default: tomorrow"),
        axis_x: str | None = Query(None, description=", ".join(queries.AXES)),
        axis_y: str | None = Query(None, description=", ".join(queries.AXES)),
        time_grain: str | None = Query(None, description=", ".join(queries.TIME_GRAINS)),
        format: str | None = Query(None, description="JSON (default) or CSV"),
        download: str | None = Query(None),
    ) -> Any:
        t0 = time.perf_counter()
        _, d_until = queries.default_window()
        u = P.day("until", until) or d_until
        s = P.day("since", since) or (u - timedelta(days=30))
        if s > u:
            raise P.BadParam("since must not be after until")
        ax = P.choice("axis_x", axis_x, queries.AXES, None)
        ay = P.choice("axis_y", axis_y, queries.AXES, None)
        if ax and ax == ay:
            raise P.BadParam("axis_x and axis_y must differ")
        grain = P.choice("time_grain", time_grain, queries.TIME_GRAINS, "auto")
        if grain == "auto":
            grain = queries.auto_grain(s, u)
        fmt = P.choice("format", (format or "JSON").upper(), ("JSON", "CSV"), "JSON")
        f = _filters(
            probe_cc, probe_asn, test_name, domain, input, category_code,
            datetime.combine(s, datetime.min.time()), datetime.combine(u, datetime.min.time()),
            service=service,
        )  # fmt: skip
        rows = await run_in_threadpool(queries.aggregate, q, f, ax, ay, str(grain))
        names = [a for a in (ax, ay) if a]
        if fmt == "CSV":
            out = io.StringIO()
            cols = [*names, "measurement_count", "ok_count", "anomaly_count",
                    "confirmed_count", "failure_count", "down_count"]  # fmt: skip
            w = csv.DictWriter(out, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
            headers = {}
            if P.boolean("download", download):
                headers["Content-Disposition"] = 'attachment; filename="didban-aggregation.csv"'
            return Response(out.getvalue(), media_type="text/csv", headers=headers)
        result: Any = rows if names else (rows[0] if rows else {})
        return _json(
            {
                "v": 0,
                "dimension_count": len(names),
                "time_grain": grain,
                "since": s.isoformat(),
                "until": u.isoformat(),
                "db_stats": {
                    "row_count": len(rows),
                    "elapsed_seconds": round(time.perf_counter() - t0, 4),
                },
                "result": result,
            }
        )

    @r.get("/api/v1/services/{probe_cc}", summary="Current state of every catalog service")
    async def services(
        probe_cc: str,
        probe_asn: str | None = Query(None),
        since: str | None = Query(None, description="default: 7 days before until"),
        until: str | None = Query(None, description="default: now"),
    ) -> dict[str, Any]:
        cc = P.ccs("probe_cc", probe_cc)
        if len(cc) != 1:
            raise P.BadParam("give one country code, e.g. /api/v1/services/IR")
        u = P.when("until", until) or datetime.now(UTC).replace(tzinfo=None)
        s = P.when("since", since) or (u - timedelta(days=7))
        if s > u:
            raise P.BadParam("since must not be after until")
        states = await run_in_threadpool(
            queries.service_states, q, cc[0], s, u, P.asns("probe_asn", probe_asn)
        )
        return {
            "probe_cc": cc[0],
            "since": s.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "until": u.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "services": states,
        }

    @r.get("/api/v1/export/{table}", summary="Stream a date range of a table (Parquet or CSV)")
    async def export(
        table: str,
        since: str = Query(..., description="first day, YYYY-MM-DD"),
        until: str = Query(..., description="last day (inclusive), YYYY-MM-DD"),
        probe_cc: str | None = Query(None),
        format: str | None = Query(None, description="parquet (default) or csv"),
    ) -> StreamingResponse:
        if table not in TABLES:
            raise HTTPException(404, f"no table {table!r}; tables: {', '.join(TABLES)}")
        s, u = P.day("since", since), P.day("until", until)
        if s is None or u is None:
            raise P.BadParam("since and until are required (YYYY-MM-DD)")
        if s > u:
            raise P.BadParam("since must not be after until")
        fmt = P.choice("format", (format or "parquet").lower(), ("parquet", "csv"), "parquet")
        schema, batches = queries.export_batches(q, table, s, u, P.ccs("probe_cc", probe_cc))
        name = f"didban-{table}-{s}-{u}.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if fmt == "csv":
            return StreamingResponse(
                _csv_stream(schema, batches), media_type="text/csv", headers=headers
            )
        return StreamingResponse(
            _parquet_stream(schema, batches),
            media_type="application/vnd.apache.parquet",
            headers=headers,
        )

    return r
