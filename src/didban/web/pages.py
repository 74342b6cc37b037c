"""What a view returns and how it becomes HTML: the ``Page`` (template, title, context,
tables), where it is (``Where``: language, path, query, permalinks), and the Jinja2
templates (``render.py`` answers a page in each format; the report renders its own page
with the same environment).

The templates (``templates/*.j2``) are rendered by one Jinja2 environment per language
(autoescaping on: measured content is attacker-controlled), with the language's
messages installed and its filters: ``num``, ``pct``, ``day``, ``time``, ``short_day``, ``when``.
"""

from __future__ import annotations

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
from markupsafe import Markup

from didban.web.i18n import LANGS, Lang, translations

TEMPLATES: Final = Path(__file__).parent / "templates"


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


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(value: Any) -> bytes:
    return orjson.dumps(value, default=json_default, option=orjson.OPT_NON_STR_KEYS)


def script_json(value: Any) -> Markup:
    """``value`` as JSON safe inside a ``<script>`` element (no ``<``, ``>``, ``&``)."""
    text = to_json(value).decode()
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return Markup(text)


def _filters(lang: Lang) -> dict[str, Callable[..., str]]:
    return {
        "num": lang.num,
        "day": lang.day,
        "time": lang.time,
        "short_day": lang.short_day,
        "when": lang.when,
        "step_result": lang.step_result,
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
