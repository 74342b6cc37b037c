"""The read endpoints' query parameters, parsed in one place (datasette's ``filters.py``).

Each parameter has a type here: an ``Annotated`` type whose validator turns the text of the
URL into a typed value, or refuses it with one sentence that names the parameter, and
whose JSON schema (the pattern or the enum it enforces) is what ``/openapi.json`` shows.
An endpoint takes one query model — ``ListingQuery``, ``AggregationQuery``,
``ServicesQuery``, ``ExportQuery`` — which FastAPI builds from the URL; a refusal becomes a
400 whose ``detail`` is that sentence (``app.py``). ``store_filters`` turns a model into
the ``didban.store.queries.Filters`` the queries take.

Parameter names and forms follow OONI's API (``ooni-backend.md`` §9): comma lists
(``probe_cc=IR,TM``; spaces and empty items are ignored), ``AS``-prefixed or bare AS
numbers, dates or ISO 8601 times, ``true``/``false`` (also ``t``/``f``, ``1``/``0``,
``yes``/``no``, any case).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Final, Literal, get_args

from fastapi import Path
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from didban.events.record import KINDS
from didban.model import admission
from didban.store import queries
from didban.store.schema import TABLES

MAX_LIMIT: Final = 100_000
MAX_OFFSET: Final = 10**9

# The stored values' own patterns (model.admission), so whatever is stored can be asked for.
_CC: Final = admission.PROBE_CC
_TEST: Final = admission.TEST_NAME
_ASN: Final = re.compile(r"^([Aa][Ss])?([0-9]{1,10})$")
_CATEGORY: Final = re.compile(r"^[A-Z]+$")
_UID: Final = re.compile(r"^[A-Za-z0-9_.\-]{10,120}$")
# RFC 3339 full-date or date-time: what OpenAPI's "date" and "date-time" formats mean
_ISO: Final = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2}))?$"
)
_INTEGER: Final = re.compile(r"^-?[0-9]{1,19}$")
_AGGREGATION_FORMATS: Final = ("JSON", "CSV", "json", "csv")
_EXPORT_FORMATS: Final = ("parquet", "csv", "PARQUET", "CSV")
_TRUE: Final = "true"
_FALSE: Final = "false"


def _items(value: object) -> list[str]:
    """The items of a comma list (FastAPI hands list-typed parameters over as a list of
    every occurrence in the URL); spaces around items and empty items are ignored."""
    texts = value if isinstance(value, list) else [value]
    return [v.strip(" ") for t in texts if isinstance(t, str) for v in t.split(",") if v.strip(" ")]


def _comma_list(convert: Callable[[str, str], Any]) -> BeforeValidator:
    """A comma-list parameter, each item checked and converted by ``convert(name, item)``."""

    def parse(value: object, info: ValidationInfo) -> list[Any]:
        return [convert(str(info.field_name), item) for item in _items(value)]

    return BeforeValidator(parse)


def _list_schema(pattern: re.Pattern[str], example: str) -> WithJsonSchema:
    """A comma list of ``pattern`` items, as OpenAPI shows it (one string; spaces around
    items and empty items allowed, as ``_items`` ignores them)."""
    item = f"(?:{pattern.pattern.strip('^$')})?"
    return WithJsonSchema(
        {"type": "string", "pattern": f"^ *{item} *(?:, *{item} *)*$", "examples": [example]}
    )


def _country(name: str, item: str) -> str:
    if not _CC.fullmatch(item):
        raise ValueError(f"{name} must be two-letter country codes like 'IR', not {item!r}")
    return item


def _asn(name: str, item: str) -> int:
    m = _ASN.fullmatch(item)
    if not m:
        raise ValueError(f"{name} must be AS numbers like 'AS197207' or '197207', not {item!r}")
    return int(m.group(2))


def _test_name(name: str, item: str) -> str:
    if not _TEST.fullmatch(item):
        raise ValueError(f"{name} must be test names like 'web_connectivity', not {item!r}")
    return item


def _input(value: object) -> str | None:
    if value is None or value == "":
        return None
    text = str(value)
    if len(text) > admission.MAX_INPUT:
        raise ValueError(
            f"input is {len(text)} characters long; the limit is {admission.MAX_INPUT}"
        )
    return text


def _report_id(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not admission.REPORT_ID.fullmatch(value):
        raise ValueError(
            "report_id must be letters, digits, '_', '.' or '-' (at most 128), "
            f"not {admission.show(value)}"
        )
    return value


def _text(value: object) -> object:
    return value or None


def _category(value: object, info: ValidationInfo) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _CATEGORY.fullmatch(value):
        raise ValueError(
            f"{info.field_name} must be a category code in capitals like 'NEWS', not {value!r}"
        )
    return value


def _flag(value: object, info: ValidationInfo) -> bool | None:
    if value is None or value == "":
        return None
    if value in (_TRUE, True):
        return True
    if value in (_FALSE, False):
        return False
    raise ValueError(f"{info.field_name} must be true or false, not {value!r}")


def _iso(value: object, info: ValidationInfo, what: str) -> datetime | None:
    """An RFC 3339 date or date-time as a naive UTC datetime (a date means its midnight);
    a time beyond the calendar's ends once moved to UTC is held at that end."""
    if value is None or value == "":
        return None
    text = str(value)
    try:
        if not _ISO.fullmatch(text):
            raise ValueError
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time())
        t = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{info.field_name} must be {what}, not {value!r}") from None
    try:
        return t.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return datetime.max if t.year > 1 else datetime.min


def _instant(value: object, info: ValidationInfo) -> datetime | None:
    """An ISO date or time as a naive UTC datetime (a date means its midnight)."""
    return _iso(value, info, "a date (YYYY-MM-DD) or an ISO 8601 time")


def _day(value: object, info: ValidationInfo) -> date | None:
    """A date; an ISO 8601 time stands for its own date (as written, not moved to UTC)."""
    if value is None or value == "":
        return None
    _iso(value, info, "a date (YYYY-MM-DD)")
    return date.fromisoformat(str(value)[:10])


def _choice(
    allowed: tuple[str, ...], default: str | None, fold: Callable[[str], str] = str
) -> BeforeValidator:
    """One of the spellings ``allowed``, as ``fold`` writes it; empty or absent means
    ``default``."""

    def parse(value: object, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            return default
        text = str(value)
        if text not in allowed:
            raise ValueError(f"{info.field_name} must be one of {', '.join(allowed)}; got {text!r}")
        return fold(text)

    return BeforeValidator(parse)


def _enum_schema(allowed: tuple[str, ...], default: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(allowed), "default": default})


def _integer(low: int, high: int, default: int) -> BeforeValidator:
    """A whole number from ``low`` to ``high``; empty means ``default``."""

    def parse(value: object, info: ValidationInfo) -> int:
        if value is None or value == "":
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _INTEGER.fullmatch(value):
            number = int(value)
        else:
            raise ValueError(f"{info.field_name} must be a whole number, not {value!r}")
        if not low <= number <= high:
            raise ValueError(f"{info.field_name} must be between {low} and {high}, not {number}")
        return number

    return BeforeValidator(parse)


def _int_schema(low: int, high: int, default: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "integer", "minimum": low, "maximum": high, "default": default})


def _required_day(value: object, info: ValidationInfo) -> date:
    day = _day(value, info)
    if day is None:
        raise ValueError("since and until are required (YYYY-MM-DD)")
    return day


class NotFound(ValueError):
    """A path names something that does not exist: the app answers 404, not 400."""


def _table(value: object) -> str:
    if value not in TABLES:
        raise NotFound(f"no table {value!r}; tables: {', '.join(TABLES)}")
    return str(value)


def _one_country(value: object) -> str:
    codes = [_country("probe_cc", item) for item in _items(value)]
    if len(codes) != 1:
        raise ValueError("give one country code, e.g. /api/v1/services/IR")
    return codes[0]


def _measurement_uid(value: object) -> str:
    if not isinstance(value, str) or not _UID.match(value):
        raise ValueError(f"{value!r} is not a measurement uid")
    return value


_DATE_OR_TIME: Final = {
    "oneOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
}
_DATE: Final = {"type": "string", "format": "date"}

CountryCodes = Annotated[list[str], _comma_list(_country), _list_schema(_CC, "IR,TM")]
ASNumbers = Annotated[list[int], _comma_list(_asn), _list_schema(_ASN, "AS197207,58224")]
TestNames = Annotated[list[str], _comma_list(_test_name), _list_schema(_TEST, "web_connectivity")]
Names = Annotated[list[str], BeforeValidator(_items), WithJsonSchema({"type": "string"})]
Text = Annotated[str | None, BeforeValidator(_text), WithJsonSchema({"type": "string"})]
Input = Annotated[
    str | None,
    BeforeValidator(_input),
    WithJsonSchema({"type": "string", "maxLength": admission.MAX_INPUT}),
]
ReportId = Annotated[
    str | None,
    BeforeValidator(_report_id),
    WithJsonSchema({"type": "string", "pattern": admission.REPORT_ID.pattern}),
]
Category = Annotated[
    str | None,
    BeforeValidator(_category),
    WithJsonSchema({"type": "string", "pattern": _CATEGORY.pattern, "examples": ["NEWS"]}),
]
Flag = Annotated[bool | None, BeforeValidator(_flag), WithJsonSchema({"type": "boolean"})]
Instant = Annotated[datetime | None, BeforeValidator(_instant), WithJsonSchema(_DATE_OR_TIME)]
# a day parameter takes an ISO 8601 time too (its date), so OpenAPI shows both forms
Day = Annotated[date | None, BeforeValidator(_day), WithJsonSchema(_DATE_OR_TIME)]
RequiredDay = Annotated[date, BeforeValidator(_required_day), WithJsonSchema(_DATE_OR_TIME)]


CountryPath = Annotated[
    str,
    Path(description="A two-letter country code, e.g. IR"),
    BeforeValidator(_one_country),
    WithJsonSchema({"type": "string", "pattern": _CC.pattern, "examples": ["IR"]}),
]
MeasurementUid = Annotated[
    str,
    BeforeValidator(_measurement_uid),
    WithJsonSchema({"type": "string", "pattern": _UID.pattern}),
]
Table = Literal["measurements", "observations", "verdicts"]  # store.schema.TABLES
TablePath = Annotated[Table, Path(description="The table to export"), BeforeValidator(_table)]


def _not_reversed(since: date | None, until: date | None) -> None:
    if since is not None and until is not None and since > until:
        raise ValueError("since must not be after until")


class _Filters(BaseModel):
    """The filters every listing and aggregation takes (OONI's names, plus ``service``)."""

    probe_cc: CountryCodes = Field(default_factory=list, description="Comma list, e.g. IR,TM")
    probe_asn: ASNumbers = Field(default_factory=list, description="Comma list, AS197207 or 197207")
    test_name: TestNames = Field(default_factory=list, description="Comma list")
    domain: Names = Field(default_factory=list, description="Comma list of hostnames")
    input: Input = Field(None, description="Exact input (overrides domain and category_code)")
    category_code: Category = None
    service: Names = Field(default_factory=list, description="didban: catalog service ids")

    def store_filters(self, **more: Any) -> queries.Filters:
        """The store's filters for these parameters (and ``more`` of the store's fields)."""
        return queries.Filters(
            probe_cc=self.probe_cc,
            probe_asn=self.probe_asn,
            test_name=self.test_name,
            domain=[d.lower() for d in self.domain],
            service=self.service,
            input=self.input,
            category_code=self.category_code,
            **more,
        )


class ListingQuery(_Filters):
    """``/api/v1/measurements``: the filters, a time window, the OONI flags, one page."""

    report_id: ReportId = None
    since: Instant = Field(None, description="ISO date or time (inclusive)")
    until: Instant = Field(None, description="ISO date or time (exclusive)")
    anomaly: Flag = None
    confirmed: Flag = None
    failure: Flag = None
    order_by: Annotated[queries.OrderBy, _choice(queries.ORDER_BY, "measurement_start_time")] = (
        "measurement_start_time"
    )
    order: Annotated[queries.Order, _choice(get_args(queries.Order), "desc")] = "desc"
    limit: Annotated[int, _integer(1, MAX_LIMIT, 100), _int_schema(1, MAX_LIMIT, 100)] = 100
    offset: Annotated[int, _integer(0, MAX_OFFSET, 0), _int_schema(0, MAX_OFFSET, 0)] = 0

    @model_validator(mode="after")
    def _window(self) -> ListingQuery:
        _not_reversed(self.since, self.until)
        return self

    def filters(self) -> queries.Filters:
        return self.store_filters(
            report_id=self.report_id,
            since=self.since,
            until=self.until,
            anomaly=self.anomaly,
            confirmed=self.confirmed,
            failure=self.failure,
        )


class AggregationQuery(_Filters):
    """``/api/v1/aggregation``: the filters, whole days, up to two axes, JSON or CSV."""

    since: Day = Field(None, description="date, default: 30 days before until")
    until: Day = Field(None, description="date (exclusive), default: tomorrow")
    axis_x: Annotated[queries.Axis | None, _choice(queries.AXES, None)] = None
    axis_y: Annotated[queries.Axis | None, _choice(queries.AXES, None)] = None
    time_grain: Annotated[queries.TimeGrain, _choice(queries.TIME_GRAINS, "auto")] = "auto"
    format: Annotated[
        Literal["JSON", "CSV"],
        _choice(_AGGREGATION_FORMATS, "JSON", str.upper),
        _enum_schema(_AGGREGATION_FORMATS, "JSON"),
    ] = "JSON"
    download: Flag = None

    @model_validator(mode="after")
    def _window(self) -> AggregationQuery:
        if self.until is None:
            self.until = queries.default_window()[1]
        if self.since is None:
            self.since = queries.days_before(self.until, 30)
        _not_reversed(self.since, self.until)
        if self.axis_x and self.axis_x == self.axis_y:
            raise ValueError("axis_x and axis_y must differ")
        return self

    def days(self) -> tuple[date, date]:
        assert self.since is not None and self.until is not None
        return self.since, self.until

    def grain(self) -> queries.TimeGrain:
        """The time grain, ``auto`` resolved from the window's length."""
        if self.time_grain == "auto":
            return queries.auto_grain(*self.days())
        return self.time_grain

    def filters(self) -> queries.Filters:
        since, until = self.days()
        return self.store_filters(
            since=datetime.combine(since, time()), until=datetime.combine(until, time())
        )


class ServicesQuery(BaseModel):
    """``/api/v1/services/{probe_cc}``: networks and a time window (default: the last week)."""

    probe_asn: ASNumbers = Field(default_factory=list, description="Comma list")
    since: Instant = Field(None, description="default: 7 days before until")
    until: Instant = Field(None, description="default: now")

    @model_validator(mode="after")
    def _window(self) -> ServicesQuery:
        if self.until is None:
            self.until = datetime.now(UTC).replace(tzinfo=None)
        if self.since is None:
            self.since = max(self.until, datetime.min + timedelta(days=7)) - timedelta(days=7)
        _not_reversed(self.since, self.until)
        return self

    def window(self) -> tuple[datetime, datetime]:
        assert self.since is not None and self.until is not None
        return self.since, self.until


class ExportQuery(BaseModel):
    """``/api/v1/export/{table}``: a range of days (both inclusive), countries, a format."""

    since: RequiredDay = Field(description="first day, YYYY-MM-DD")
    until: RequiredDay = Field(description="last day (inclusive), YYYY-MM-DD")
    probe_cc: CountryCodes = Field(default_factory=list, description="Comma list")
    format: Annotated[
        Literal["parquet", "csv"],
        _choice(_EXPORT_FORMATS, "parquet", str.lower),
        _enum_schema(_EXPORT_FORMATS, "parquet"),
    ] = "parquet"

    @model_validator(mode="after")
    def _window(self) -> ExportQuery:
        _not_reversed(self.since, self.until)
        return self


# --- events (api/events.py, api/feeds.py) ------------------------------------------------

MAX_EVENTS_LIMIT: Final = 1000
_EVENT_ID: Final = re.compile(r"^ev-[0-9a-f]{16}$")
_TARGET: Final = re.compile(r"^[a-z0-9][a-z0-9_\-]*(\.[a-z0-9_\-]+)*$")


def _kind(name: str, item: str) -> str:
    if item not in KINDS:
        raise ValueError(f"{name} must be event kinds ({', '.join(KINDS)}), not {item!r}")
    return item


def _event_id(value: object) -> str:
    if not isinstance(value, str) or not _EVENT_ID.match(value):
        raise NotFound(f"there is no event {value!r} (event ids look like ev-3e99eeb8ad76504a)")
    return value


def _target(value: object) -> str:
    text = str(value).lower()
    if len(text) > 253 or not _TARGET.match(text):
        raise ValueError(
            f"a target is a service id or a domain like 'instagram' or 'www.instagram.com', "
            f"not {value!r}"
        )
    return text


def _confidence(value: object, info: ValidationInfo) -> float:
    """A number from 0 to 1; empty means the default, 0.5."""
    if value is None or value == "":
        return 0.5
    try:
        number = float(value) if isinstance(value, str | int | float) else float("nan")
    except ValueError:
        number = float("nan")
    if isinstance(value, bool) or number != number:  # NaN: not a number at all
        raise ValueError(f"{info.field_name} must be a number from 0 to 1, not {value!r}")
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{info.field_name} must be between 0 and 1, not {number}")
    return number


EventKinds = Annotated[
    list[str],
    _comma_list(_kind),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^({'|'.join(KINDS)})(,({'|'.join(KINDS)}))*$",
            "examples": ["block,shutdown"],
        }
    ),
]
Confidence = Annotated[
    float,
    BeforeValidator(_confidence),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1, "default": 0.5}),
]
EventIdPath = Annotated[
    str,
    Path(description="An event id, e.g. ev-3e99eeb8ad76504a"),
    BeforeValidator(_event_id),
    WithJsonSchema({"type": "string", "pattern": _EVENT_ID.pattern}),
]
TargetPath = Annotated[
    str,
    Path(description="A catalog service id or a domain, e.g. instagram or www.instagram.com"),
    BeforeValidator(_target),
    WithJsonSchema({"type": "string", "pattern": _TARGET.pattern, "examples": ["instagram"]}),
]


class _EventFilters(BaseModel):
    """What selects events besides the country: the aggregation's names where they apply
    (``probe_asn``, ``domain``, ``service``, ``since``, ``until``), ``min_confidence``."""

    probe_asn: ASNumbers = Field(default_factory=list, description="Comma list, AS197207 or 197207")
    domain: Names = Field(default_factory=list, description="Comma list of hostnames")
    service: Names = Field(default_factory=list, description="didban: catalog service ids")
    since: Instant = Field(None, description="events active at or after (date or ISO time)")
    until: Instant = Field(None, description="events begun before (date or ISO time)")
    min_confidence: Confidence = Field(0.5, description="0-1; suspected artefacts are 0.2")

    @model_validator(mode="after")
    def _window(self) -> _EventFilters:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since must not be after until")
        return self

    def targets(self) -> list[str]:
        """The wanted targets (a domain also matches its catalog service's events)."""
        return [d.lower() for d in self.domain] + self.service


class EventsQuery(_EventFilters):
    """``/api/v1/events``: countries, the event filters, ``kind``, one page."""

    probe_cc: CountryCodes = Field(default_factory=list, description="Comma list, e.g. IR,TM")
    kind: EventKinds = Field(default_factory=list, description="Comma list of event kinds")
    limit: Annotated[
        int, _integer(1, MAX_EVENTS_LIMIT, 100), _int_schema(1, MAX_EVENTS_LIMIT, 100)
    ] = 100
    offset: Annotated[int, _integer(0, MAX_OFFSET, 0), _int_schema(0, MAX_OFFSET, 0)] = 0


def _required_country(value: object) -> str:
    codes = [_country("probe_cc", item) for item in _items(value)]
    if len(codes) != 1:
        raise ValueError("probe_cc is required: one country code, e.g. probe_cc=IR")
    return codes[0]


class TimelineQuery(_EventFilters):
    """``/api/v1/timeline``: one country (required), its targets, a window."""

    probe_cc: Annotated[
        str,
        BeforeValidator(_required_country),
        WithJsonSchema({"type": "string", "pattern": _CC.pattern, "examples": ["IR"]}),
    ] = Field(description="One country code, e.g. IR (required)")
