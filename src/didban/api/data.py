"""Read endpoints: measurements, one measurement, aggregation, services per country, exports.

Parameter names follow OONI's API (``ooni-backend.md`` §9). The parameters are parsed by
the query models of ``api.filters``; the handlers shape responses; the queries live in
``didban.store.queries``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pyarrow import csv as arrow_csv
from starlette.concurrency import run_in_threadpool

from didban.api import answers
from didban.api.contract import errors
from didban.api.filters import (
    AggregationQuery,
    CountryPath,
    ExportQuery,
    ListingQuery,
    MeasurementUid,
    ServicesQuery,
    TablePath,
)
from didban.store import queries
from didban.store.store import Store

PARQUET = "application/vnd.apache.parquet"


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
        arrow_csv.write_csv(
            pa.Table.from_batches([batch]),
            out,
            write_options=arrow_csv.WriteOptions(include_header=header),
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
    reader = store.reader

    @r.get(
        "/api/v1/measurements",
        summary="List measurements (OONI parameters)",
        response_model=None,
        responses={200: {"model": answers.MeasurementsPage}, **errors(400)},
    )
    async def list_measurements(
        request: Request, params: Annotated[ListingQuery, Query()]
    ) -> Response:
        t0 = time.perf_counter()
        limit, offset = params.limit, params.offset
        rows, total = await run_in_threadpool(
            queries.list_measurements,
            reader,
            params.filters(),
            params.order_by,
            params.order,
            limit,
            offset,
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

    async def archived(measurement_uid: str) -> dict[str, Any]:
        raw = await run_in_threadpool(store.get, measurement_uid)
        if raw is None:
            raise HTTPException(404, f"no measurement with uid {measurement_uid!r}")
        return raw

    @r.get(
        "/api/v1/measurement/{measurement_uid}",
        summary="One measurement, verdict, evidence",
        response_model=answers.MeasurementDetail,
        responses=errors(400, 404),
    )
    async def one_measurement(measurement_uid: MeasurementUid) -> dict[str, Any]:
        raw = await archived(measurement_uid)
        loc = store.index.locate(measurement_uid)
        verdict = None
        if loc is not None:
            verdict = await run_in_threadpool(queries.verdict_for, reader, measurement_uid, loc.day)
        return {
            "measurement_uid": measurement_uid,
            "measurement": raw,
            "verdict": verdict,
            "evidence": verdict["evidence"] if verdict else [],
        }

    @r.get(
        "/api/v1/raw_measurement",
        summary="The raw measurement body (OONI)",
        response_model=dict[str, Any],
        responses=errors(400, 404),
    )
    async def raw_measurement(
        measurement_uid: Annotated[MeasurementUid, Query()],
    ) -> dict[str, Any]:
        return await archived(measurement_uid)

    @r.get(
        "/api/v1/aggregation",
        summary="Counts by axis (OONI parameters)",
        response_model=None,
        responses={
            200: {
                "model": answers.Aggregation,
                "description": "JSON, or with format=CSV one header row (the axes, then the "
                "counts) and one row per cell",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            **errors(400),
        },
    )
    async def aggregation(params: Annotated[AggregationQuery, Query()]) -> Any:
        t0 = time.perf_counter()
        since, until = params.days()
        grain = params.grain()
        ax, ay = params.axis_x, params.axis_y
        rows = await run_in_threadpool(queries.aggregate, reader, params.filters(), ax, ay, grain)
        names = [a for a in (ax, ay) if a]
        if params.format == "CSV":
            out = io.StringIO()
            cols = [*names, "measurement_count", "ok_count", "anomaly_count",
                    "confirmed_count", "failure_count", "down_count"]  # fmt: skip
            w = csv.DictWriter(out, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
            headers = {}
            if params.download:
                headers["Content-Disposition"] = 'attachment; filename="didban-aggregation.csv"'
            return Response(out.getvalue(), media_type="text/csv", headers=headers)
        result: Any = rows if names else (rows[0] if rows else {})
        return _json(
            {
                "v": 0,
                "dimension_count": len(names),
                "time_grain": grain,
                "since": since.isoformat(),
                "until": until.isoformat(),
                "db_stats": {
                    "row_count": len(rows),
                    "elapsed_seconds": round(time.perf_counter() - t0, 4),
                },
                "result": result,
            }
        )

    @r.get(
        "/api/v1/services/{probe_cc}",
        summary="Current state of every catalog service",
        response_model=answers.Services,
        responses=errors(400),
    )
    async def services(
        probe_cc: CountryPath, params: Annotated[ServicesQuery, Query()]
    ) -> dict[str, Any]:
        since, until = params.window()
        states = await run_in_threadpool(
            queries.service_states, reader, probe_cc, since, until, params.probe_asn
        )
        return {
            "probe_cc": probe_cc,
            "since": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "services": states,
        }

    @r.get(
        "/api/v1/export/{table}",
        summary="Stream a date range of a table (Parquet or CSV)",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "The table's rows as an attachment (format=parquet or csv)",
                "content": {
                    PARQUET: {"schema": {"type": "string", "format": "binary"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            **errors(400, 404),
        },
    )
    async def export(
        table: TablePath, params: Annotated[ExportQuery, Query()]
    ) -> StreamingResponse:
        since, until = params.since, params.until
        schema, batches = queries.export_batches(reader, table, since, until, params.probe_cc)
        name = f"didban-{table}-{since}-{until}.{params.format}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if params.format == "csv":
            return StreamingResponse(
                _csv_stream(schema, batches), media_type="text/csv", headers=headers
            )
        return StreamingResponse(
            _parquet_stream(schema, batches),
            media_type=PARQUET,
            headers=headers,
        )

    return r
