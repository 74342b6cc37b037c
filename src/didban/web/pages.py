"""One view, many renderings (datasette's idea): a view computes a ``Page`` once and
``render`` answers it as HTML (the whole page, or for htmx the fragment the filters
replace), JSON, CSV or Parquet — by the URL's extension (``/country/IR.csv``) or the
``Accept`` header. CSV and Parquet carry one of the page's tables (``?table=``, default
the first), with the page's own parameters, so a download is exactly what the page shows.

The templates (``templates/*.j2``) are rendered by one Jinja2 environment per language
(autoescaping on: measured content is attacker-controlled), with the language's
messages installed and its filters: ``num``, ``pct``, ``day``, ``time``, ``short_day``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import jinja2
import msgspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from didban.web.i18n import LANGS, Lang, translations

TEMPLATES: Final = Path(__file__).parent / "templates"
FORMATS: Final = ("json", "csv", "parquet")
MEDIA: Final = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
VARY: Final = "Accept, HX-Request, Cookie"


class PageError(Exception):
    """A request the page cannot answer: ``status`` and one sentence for the reader."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence


@dataclass
class Page:
    template: str  # the whole page (extends base.html.j2)
    title: str
    context: dict[str, Any]  # what the page shows: the JSON body
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # downloadable
    name: str = "didban"  # download file stem
    partial: str | None = None  # the fragment htmx swaps when a filter changes
    status: int = 200


@dataclass(frozen=True)
class Where:
    """Where the page is: its language, its path without language or extension, its
    query, and the server's base URL (for permalinks)."""

    lang: Lang
    path: str
    query: dict[str, str]
    base: str

    def url(self, path: str, **params: Any) -> str:
        """A link to ``path`` in this language, with the non-empty ``params``."""
        kept = {k: v for k, v in params.items() if v not in (None, "", [])}
        return f"{self.lang.prefix}{path}" + (f"?{urlencode(kept, doseq=True)}" if kept else "")

    def here(self, **changes: Any) -> str:
        """This page with some parameters changed (None removes one)."""
        return self.url(self.path, **{**self.query, **changes})

    def download(self, fmt: str, table: str | None = None) -> str:
        """This page's data as ``fmt`` with the same parameters (``table`` picks one)."""
        params = {k: v for k, v in self.query.items() if k not in ("lang", "table")}
        if table:
            params["table"] = table
        return f"{self.path}.{fmt}" + (f"?{urlencode(params)}" if params else "")

    def other_lang(self) -> str:
        """The same page in the other language (the choice is remembered)."""
        if self.lang.code == "fa":
            return self.path + "?" + urlencode({**self.query, "lang": "en"})
        return "/fa" + self.path + (f"?{urlencode(self.query)}" if self.query else "")

    def permalink(self, path: str | None = None) -> str:
        return self.base + self.lang.prefix + (path or self.path)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def script_json(value: Any) -> Markup:
    """``value`` as JSON safe inside a ``<script>`` element (no ``<``, ``>``, ``&``)."""
    text = to_json(value).decode()
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return Markup(text)


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
        writer.writerow({k: _json_default(v) if isinstance(v, date) else v for k, v in row.items()})
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


def _filters(lang: Lang) -> dict[str, Callable[..., str]]:
    return {
        "num": lang.num,
        "day": lang.day,
        "time": lang.time,
        "short_day": lang.short_day,
        "digits": lambda v: lang.digits(str(v)),
        "json": script_json,
        "t": lang.gettext,
    }


@cache
def environment(code: str) -> jinja2.Environment:
    """The Jinja2 environment of one language (built once; safe across threads)."""
    if code not in LANGS:
        raise ValueError(code)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(code), newstyle=True)  # type: ignore[attr-defined]
    lang = Lang(code)
    env.filters.update(_filters(lang))
    env.globals["lang"] = lang
    env.globals["one_day"] = timedelta(days=1)
    return env
