"""Languages of the pages: English and Farsi — the catalogue, digits, dates, direction.

Interface strings are gettext messages (``_("…")`` in templates and here) whose Farsi
lives in ``locale/fa/LC_MESSAGES/messages.po``, a file a translator edits with any PO
editor; it is read at start-up (no compiled ``.mo`` to go stale). ``python -m
didban.web.i18n`` (``make i18n``) extracts the messages of the templates, of this package
and of the method table (``model.verdict.METHODS``) into ``messages.pot`` and merges them
into the ``.po``; a test fails while a message lacks its Farsi.

Numbers and dates are written in the page's digits (Persian digits ۰–۹ in Farsi, with
Babel's separators); dates are given in both calendars, the Solar Hijri one from
``persiantools``. Measured text (titles, blockpages, AS names) is not translated and is
wrapped in ``<bdi>`` by the templates.
"""

from __future__ import annotations

import io
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from persiantools.jdatetime import JalaliDate

from didban.model.verdict import METHODS

LANGS: Final = ("en", "fa")
DEFAULT: Final = "en"
HERE: Final = Path(__file__).parent
LOCALE_DIR: Final = HERE / "locale"
PO_FILE: Final = LOCALE_DIR / "fa" / "LC_MESSAGES" / "messages.po"
POT_FILE: Final = LOCALE_DIR / "messages.pot"
_FA_DIGITS: Final = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
# Unicode's directional isolates (the plain-text ``<bdi dir=rtl|ltr>``): a Farsi date
# keeps its order beside Latin text (Persian digits are European numbers to the bidi
# algorithm, so ``IR · ۱۶ آذر`` would pull ``۱۶`` into the Latin run), and its
# Gregorian part reads year-month-day from the left as ISO 8601 does. Strings, not
# markup, so they hold in ``title`` attributes too.
_RLI: Final = "\u2067"
_LRI: Final = "\u2066"
_PDI: Final = "\u2069"
_GREGORIAN_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


# Words the views compute (states, layers, event kinds): translated where shown.
WORDS: Final = (
    N_("ok"),
    N_("blocked"),
    N_("down"),
    N_("inconclusive"),
    N_("no data"),
    N_("unclassified"),
    N_("block"),
    N_("unblock"),
    N_("shutdown"),
    N_("outage"),
    N_("nin"),
    N_("known"),
    N_("detected"),
)
# The words of a measurement step's result (``web/evidence.py`` writes them in English,
# the data's language; ``Lang.step_result`` shows them in the page's).
STEP_WORDS: Final = (N_("connected"), N_("bytes"), N_("certificate(s)"))
_COUNTED: Final = re.compile(r"\b(\d+) (bytes|certificate\(s\))")
# The names of the pages' downloadable tables (``?table=``), shown beside their links.
TABLE_NAMES: Final = (
    N_("grid"), N_("blocks"), N_("networks"), N_("calendar"), N_("countries"), N_("events"),
    N_("latest"), N_("days"), N_("inputs"), N_("witnesses"), N_("asns"), N_("steps"),
    N_("control"), N_("entries"), N_("methods"), N_("rules"),
)  # fmt: skip


@cache
def translations(lang: str) -> NullTranslations:
    """The catalogue of ``lang`` (English is the source language: no catalogue)."""
    if lang != "fa":
        return NullTranslations()
    with PO_FILE.open("rb") as fh:
        catalog = read_po(fh, locale="fa")
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


@dataclass(frozen=True)
class Lang:
    """What a page in one language needs: its code, direction, messages and formats."""

    code: str

    @property
    def dir(self) -> str:
        return "rtl" if self.code == "fa" else "ltr"

    @property
    def prefix(self) -> str:
        """The URL prefix of this language (``/fa``; English has none)."""
        return "" if self.code == DEFAULT else f"/{self.code}"

    def gettext(self, message: str) -> str:
        return translations(self.code).gettext(message)

    def digits(self, text: str) -> str:
        return text.translate(_FA_DIGITS) if self.code == "fa" else text

    def num(self, value: Any, places: int | None = None) -> str:
        """A number in this language's digits and separators (``12,345`` / ``۱۲٬۳۴۵``)."""
        if value is None:
            return "–"
        if places is not None:
            value = round(float(value), places)
        if self.code == "fa":
            return self.digits(format_decimal(value, locale="fa", numbering_system="default"))
        return format_decimal(value, locale="en")

    def pct(self, part: float, whole: float) -> str:
        if not whole:
            return "–"
        text = f"{100 * part / whole:.0f}"
        return self.digits(text) + ("٪" if self.code == "fa" else "%")

    def day(self, value: date | datetime | str | None) -> str:
        """A day in both calendars: ``21 Nov 2026 · 30 Aban 1405`` /
        ``۳۰ آبان ۱۴۰۵ · ۲۰۲۶-۱۱-۲۱``."""
        d = as_date(value)
        if d is None:
            return "–"
        jalali = JalaliDate(d)  # type: ignore[no-untyped-call]
        if self.code == "fa":
            return self._fa_day(d, self.digits(d.isoformat()))
        return f"{d.day} {_GREGORIAN_MONTHS[d.month - 1]} {d.year} · {jalali.strftime('%d %B %Y')}"

    def _fa_day(self, d: date, gregorian: str) -> str:
        jalali = JalaliDate(d).strftime("%d %B %Y", locale="fa")  # type: ignore[no-untyped-call]
        return f"{_RLI}{jalali} · {_LRI}{gregorian}{_PDI}{_PDI}"

    def time(self, value: datetime | str | None) -> str:
        """A UTC time with its day in both calendars."""
        t = as_datetime(value)
        if t is None:
            return "–"
        if self.code == "fa":
            return self._fa_day(t.date(), self.digits(t.strftime("%Y-%m-%d %H:%M")) + " UTC")
        return f"{self.day(t)} {t.strftime('%H:%M')} UTC"

    def step_result(self, text: str) -> str:
        """A step's result (``connected``, ``ok``, ``403 · 337 bytes``, ``TLSv1.3 h2 · 1
        certificate(s)``) with its words in this language; a counted word keeps its
        number beside it (isolated: the result is shown left to right)."""
        if self.code == DEFAULT:
            return text
        if text in ("connected", "ok"):
            return self.gettext(text)

        def counted(found: re.Match[str]) -> str:
            return f"{_RLI}{self.digits(found[1])} {self.gettext(found[2])}{_PDI}"

        return _COUNTED.sub(counted, text)

    def when(self, text: str) -> str:
        """A date of the known events' precision: a year (``2009``), a month (``2009-06``),
        a day or a time; a day or a time in both calendars."""
        if len(text) > 10:
            return self.time(text)
        if len(text) == 10:
            return self.day(text)
        return self._ltr_run(text)

    def short_day(self, value: date | datetime | str | None) -> str:
        """``2026-11-21`` in this language's digits (table cells, axes)."""
        d = as_date(value)
        if d is None:
            return "–"
        return self._ltr_run(d.isoformat())

    def _ltr_run(self, text: str) -> str:
        """Latin-ordered text (a date, a year) in this language's digits; in Farsi isolated
        left to right, so it keeps its order beside the page's Persian words."""
        return f"{_LRI}{self.digits(text)}{_PDI}" if self.code == "fa" else text


def as_date(value: date | datetime | str | None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    t = as_datetime(value)
    return None if t is None else t.date()


def as_datetime(value: datetime | date | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = value.replace("Z", "").replace("T", " ")
    try:
        return datetime.fromisoformat(text[:19]) if len(text) > 10 else datetime.fromisoformat(text)
    except ValueError:
        return None


def pick(path_lang: str | None, query_lang: str | None, cookie_lang: str | None) -> Lang:
    """The page's language: the ``/fa`` prefix, else ``?lang=``, else the remembered one."""
    for choice in (path_lang, query_lang, cookie_lang):
        if choice in LANGS:
            return Lang(choice)
    return Lang(DEFAULT)


# --- the catalogue: extraction and merge (``make i18n``) ------------------------------


def extract() -> Catalog:
    """Every message of the templates, of this package's Python and of the method table."""
    from babel.messages.extract import extract_from_dir

    catalog = Catalog(project="didban", msgid_bugs_address="", charset="utf-8")
    mapping = [("**/templates/**.j2", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**.j2": {"extensions": "jinja2.ext.i18n"}}
    for filename, lineno, message, comments, context in extract_from_dir(
        str(HERE),
        method_map=mapping,
        options_map=options,
        keywords={"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)},
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    for name, text in METHODS.items():
        catalog.add(text, None, [("model/verdict.py", 0)], auto_comments=[f"method {name}"])
    return catalog


def update() -> tuple[int, int]:
    """Write ``messages.pot`` and merge it into the Farsi ``.po``; returns (messages,
    untranslated)."""
    from babel.messages.pofile import write_po

    template = extract()
    with POT_FILE.open("wb") as fh:
        write_po(fh, template, omit_header=True, sort_output=True)
    with PO_FILE.open("rb") as fh:
        catalog = read_po(fh, locale="fa")
    catalog.update(template, no_fuzzy_matching=True)
    with PO_FILE.open("wb") as fh:
        write_po(fh, catalog, omit_header=False, sort_output=True, ignore_obsolete=True)
    missing = sum(1 for m in catalog if m.id and not m.string)
    return len(template), missing


if __name__ == "__main__":  # pragma: no cover - make i18n
    total, untranslated = update()
    print(f"{total} messages; {untranslated} without Farsi in {PO_FILE}")
    sys.exit(1 if untranslated else 0)
