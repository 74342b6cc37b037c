"""Citizen Lab's category codes (``category-codes.csv``): which codes a test list's
``category_code`` and ``--category`` may name.

The current codes (``replaced_by`` empty) and the older ones lists may still carry, each
with the code that replaced it; sources in ``category-codes.md``.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources
from typing import Final

FILE: Final = "category-codes.csv"


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str
    replaced_by: str  # '' for a current code


@functools.cache
def categories() -> dict[str, Category]:
    """Every known code, current ones first (the file's order)."""
    text = resources.files(__package__).joinpath(FILE).read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return {r["code"]: Category(r["code"], r["name"], r["replaced_by"]) for r in rows}


def current() -> list[str]:
    """The codes in use today, in order."""
    return [c.code for c in categories().values() if not c.replaced_by]


def category_problem(code: str) -> str | None:
    """Why ``code`` is not a Citizen Lab category code, or None."""
    if code in categories():
        return None
    return f"{code!r} is not a Citizen Lab category code (one of: {', '.join(current())})"
