"""One view, many renderings (datasette's idea): a view computes a ``pages.Page`` once and
``render`` answers it as HTML (the whole page, or for htmx the fragment the filters
replace), JSON, CSV or Parquet — by the URL's extension (``/country/IR.csv``) or the
``Accept`` header. CSV and Parquet carry one of the page's tables (``?table=``, default
the first), with the page's own parameters, so a download is exactly what the page shows.
Every answer says ``Vary: Accept, HX-Request, Cookie``.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from didban.web.pages import Page, PageError, Where, environment, json_default, to_json

FORMATS: Final = ("json", "csv", "parquet")
MEDIA: Final = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
VARY: Final = "Accept, HX-Request, Cookie"


def _cell(value: Any) -> Any:
    """A table cell as CSV and Parquet hold it: nested values as JSON text."""
    if isinstance(value, list | dict | tuple):
        return to_json(value).decode()
    return value


def _flat(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    return columns, [{c: _cell(row.get(c)) for c in columns} for row in rows]


def _pick_table(page: Page, request: Request) -> tuple[str, list[dict[str, Any]]]:
    wanted = request.query_params.get("table") or next(iter(page.tables), "")
    if wanted not in page.tables:
        names = ", ".join(page.tables) or "none"
        raise PageError(404, f"this page has no table {wanted!r} (its tables: {names})")
    return wanted, page.tables[wanted]


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    columns, flat = _flat(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in flat:
        writer.writerow({k: json_default(v) if isinstance(v, date) else v for k, v in row.items()})
    return out.getvalue().encode()


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    columns, flat = _flat(rows)
    table = pa.Table.from_pylist(flat) if flat else pa.table({c: pa.array([]) for c in columns})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def negotiate(request: Request, fmt: str | None) -> str:
    """``fmt`` from the URL, else the format the ``Accept`` header names first."""
    if fmt:
        return fmt
    first = request.headers.get("accept", "").split(",")[0].split(";")[0].strip()
    return {"application/json": "json", "text/csv": "csv"}.get(first, "html")


def render(request: Request, page: Page, where: Where, fmt: str) -> Response:
    headers = {"Vary": VARY}
    if fmt == "json":
        body = {**page.context, "tables": page.tables}
        return Response(to_json(body), page.status, headers, MEDIA["json"])
    if fmt in ("csv", "parquet"):
        name, rows = _pick_table(page, request)
        data = csv_bytes(rows) if fmt == "csv" else parquet_bytes(rows)
        headers["Content-Disposition"] = f'attachment; filename="{page.name}-{name}.{fmt}"'
        return Response(data, page.status, headers, MEDIA[fmt])
    partial = (
        page.partial is not None
        and request.headers.get("hx-request") == "true"
        and request.headers.get("hx-request-type", "partial") == "partial"
    )
    template = environment(where.lang.code).get_template(
        page.partial if partial and page.partial else page.template
    )
    html = template.render(page.context, page=page, where=where, lang=where.lang)
    return HTMLResponse(html, page.status, headers)
