"""Parsing and checking query parameters the way OONI's API spells them.

Every function raises ``BadParam`` with one sentence naming the parameter, which the
app turns into a 400.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Final

_CC: Final = re.compile(r"^[A-Z]{2}$")
_ASN: Final = re.compile(r"^(AS)?(\d{1,10})$", re.IGNORECASE)
_TEST: Final = re.compile(r"^[a-z0-9_]{2,40}$")
_CATEGORY: Final = re.compile(r"^[A-Z]+$")


class BadParam(ValueError):
    """A query parameter the API cannot use; the message says which and why."""


def comma(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def ccs(name: str, value: str | None) -> list[str]:
    out = comma(value)
    for cc in out:
        if not _CC.match(cc):
            raise BadParam(f"{name} must be two-letter country codes like 'IR', not {cc!r}")
    return out


def asns(name: str, value: str | None) -> list[int]:
    out: list[int] = []
    for a in comma(value):
        m = _ASN.match(a)
        if not m:
            raise BadParam(f"{name} must be AS numbers like 'AS197207' or '197207', not {a!r}")
        out.append(int(m.group(2)))
    return out


def test_names(name: str, value: str | None) -> list[str]:
    out = comma(value)
    for t in out:
        if not _TEST.match(t):
            raise BadParam(f"{name} must be test names like 'web_connectivity', not {t!r}")
    return out


def category(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not _CATEGORY.match(value):
        raise BadParam(f"{name} must be a category code in capitals like 'NEWS', not {value!r}")
    return value


def boolean(name: str, value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    v = value.lower()
    if v in ("true", "t", "1", "yes"):
        return True
    if v in ("false", "f", "0", "no"):
        return False
    raise BadParam(f"{name} must be true or false, not {value!r}")


def when(name: str, value: str | None) -> datetime | None:
    """An ISO date or datetime, as a naive UTC datetime (dates mean midnight)."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time())
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadParam(
            f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 time, not {value!r}"
        ) from None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def day(name: str, value: str | None) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise BadParam(f"{name} must be a date (YYYY-MM-DD), not {value!r}") from None


def choice(
    name: str, value: str | None, allowed: tuple[str, ...], default: str | None
) -> str | None:
    if value is None or value == "":
        return default
    if value not in allowed:
        raise BadParam(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def bounded(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise BadParam(f"{name} must be between {low} and {high}, not {value}")
    return value
